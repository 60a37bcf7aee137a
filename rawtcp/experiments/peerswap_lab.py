"""The lab of the Linux run of ``--peer-swap``: a Linux socket where rawtcp was.

    with SwapLab() as lab:                     # namespaces <tag>k and <tag>l
        relay = lab.start_relay(pcap, models, delays)
        srv = lab.server("echo", port=7)       # the same kernel peer as in the rawtcp run
        s = lab.linux_socket()                 # a socket of the kernel in <tag>l
        ...
        relay.stop()

Two namespaces with the rawtcp run's addresses: the peer kernel (``<tag>k``, 10.77.0.1, as in
:class:`rawtcp.lab.TunLab`) and the Linux socket in rawtcp's place (``<tag>l``, 10.77.0.2).
Each has a TUN device; a userspace relay thread joins them. The relay is the wire: it writes
every packet to a pcap (what crossed, with the time it crossed), holds packets the translated
delay rules name, and asks the Python model of each nftables table
(:class:`rawtcp.experiments.peerswap_rules.TableModel`) which packet the table is about to
drop, so the ladder can mark it (the nft counters check the model afterwards). This kernel
has no netem qdisc, so a delay cannot be done in the kernel; the drops are nftables'.
"""

from __future__ import annotations

import errno
import heapq
import selectors
import socket
import struct
import threading
import time

from rawtcp.experiments.peerswap_rules import TableModel, Translation
from rawtcp.host.netns import exec_prefix, in_netns
from rawtcp.host.system import run
from rawtcp.lab.base import Lab
from rawtcp.lab.kernel import kernel_sockets
from rawtcp.link.tun import TunLink
from rawtcp.trace import PcapRecorder

__all__ = ["Relay", "SsSampler", "SwapLab", "now_us", "tcp_fields"]

KERNEL_ADDR, LINUX_ADDR = "10.77.0.1", "10.77.0.2"


def now_us() -> int:
    """The clock of the Linux run: wall-clock microseconds (pcap timestamps and ss samples)."""
    return time.time_ns() // 1000


def tcp_fields(pkt: bytes) -> tuple[str, int, str, int, int, int, int] | None:
    """(src, sport, dst, dport, seq, ack, flags) of an IPv4 TCP packet, else None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 20:
        return None
    sport, dport, seq, ack, _off, flags = struct.unpack_from("!HHIIBB", pkt, ihl)
    src = socket.inet_ntoa(pkt[12:16])
    dst = socket.inet_ntoa(pkt[16:20])
    return src, sport, dst, dport, seq, ack, flags


class SwapLab(Lab):
    """Attributes: kernel_netns (= netns), linux_netns, kernel_addr, linux_addr
    (= rawtcp_addr, for Lab.client), kernel_addrs, tun_k, tun_l."""

    _need_tun = True

    def __init__(self) -> None:
        super().__init__()
        self.kernel_netns = self.netns = self.tag + "k"
        self.linux_netns = self.tag + "l"
        self.kernel_addr, self.linux_addr = KERNEL_ADDR, LINUX_ADDR
        self.rawtcp_addr = self.linux_addr
        self.kernel_addrs = [KERNEL_ADDR]
        self.tun_k: TunLink | None = None
        self.tun_l: TunLink | None = None

    def _build(self) -> None:
        k = self._new_netns(self.kernel_netns)
        n = self._new_netns(self.linux_netns)
        self.tun_k = TunLink([LINUX_ADDR], [KERNEL_ADDR], name=self.tag + "k", netns=k)
        self._track(self.tun_k)
        self.tun_l = TunLink([KERNEL_ADDR], [LINUX_ADDR], name=self.tag + "l", netns=n)
        self._track(self.tun_l)

    def linux_socket(self) -> socket.socket:
        """A TCP socket of the kernel in the Linux namespace (it stays there)."""
        self._require_built()
        with in_netns(self.linux_netns):
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def sysctl(self, netns: str, key: str, value: str) -> None:
        """Set a per-namespace sysctl (``net.ipv4.tcp_fin_timeout``) in one of the lab's
        namespaces; it goes with the namespace."""
        if netns not in (self.kernel_netns, self.linux_netns):
            raise OSError(errno.EINVAL, f"{netns!r} is not a namespace of this lab")
        run(exec_prefix(netns) + ["sysctl", "-q", "-w", f"{key}={value}"])


class Relay:
    """The wire between the two TUN devices (see the module docstring). ``marks``: one dict
    per packet a model says nftables drops: ``t`` (us), ``dir`` ("out": from the Linux
    socket), ``seq``, ``ack``, ``flags`` (int) and ``rule`` (translation index). Bounded:
    it stops by itself after ``max_s`` seconds."""

    def __init__(self, lab: SwapLab, pcap_path: str, models: dict[str, TableModel],
                 delays: list[Translation], max_s: float = 60.0) -> None:
        assert lab.tun_k is not None and lab.tun_l is not None
        self.lab, self.models, self.delays, self.max_s = lab, models, delays, max_s
        self.pcap = PcapRecorder(pcap_path)
        self.pcap_path = pcap_path
        self.marks: list[dict] = []
        self.packets = 0
        self.errors: list[str] = []
        # (due us, order, dir, packet, time recorded)
        self._held: list[tuple[int, int, str, bytes, int]] = []
        self._order = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="swap-relay")

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.pcap.close()

    def _delay_us(self, d: str, flags: int) -> int:
        for t in self.delays:
            if t.dir in (d, "any") and (t.flags is None or t.flags(flags)):
                return round((t.ms or 0) * 1000)
        return 0

    def _loop(self) -> None:
        lab = self.lab
        assert lab.tun_k is not None and lab.tun_l is not None
        sel = selectors.DefaultSelector()
        sel.register(lab.tun_l.fileno(), selectors.EVENT_READ, "out")
        sel.register(lab.tun_k.fileno(), selectors.EVENT_READ, "in")
        deadline = time.monotonic() + self.max_s
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                wait = 0.05
                if self._held:
                    wait = max(0.0, min(wait, (self._held[0][0] - now_us()) / 1e6))
                for key, _ in sel.select(wait):
                    link = lab.tun_l if key.data == "out" else lab.tun_k
                    for pkt in link.recv_batch():
                        self._take(key.data, pkt)
                while self._held and self._held[0][0] <= now_us():
                    _, _, d, pkt, t_out = heapq.heappop(self._held)
                    self._deliver(d, pkt, t_out)
        except Exception as e:  # noqa: BLE001 - reported with the run
            self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            sel.close()

    def _take(self, d: str, pkt: bytes) -> None:
        f = tcp_fields(pkt)
        flags = f[6] if f else 0
        delay = self._delay_us(d, flags) if f else 0
        t_out = self._record(pkt) if d == "out" else 0    # the Linux socket sent it now
        if f:
            # the table on the sending side sees it leave (its output hook)
            side = "linux" if d == "out" else "peer"
            self.models[side].leaving(self._flow(f, d), flags)
        if delay:
            self._order += 1
            heapq.heappush(self._held, (now_us() + delay, self._order, d, pkt, t_out))
        else:
            self._deliver(d, pkt, t_out)

    def _deliver(self, d: str, pkt: bytes, t_out: int = 0) -> None:
        lab = self.lab
        assert lab.tun_k is not None and lab.tun_l is not None
        f = tcp_fields(pkt)
        # "in": recorded when it reaches the Linux socket's namespace (after any delay), as
        # rawtcp's trace records an incoming segment when its core gets it
        t = self._record(pkt) if d == "in" else t_out
        if f:
            side = "peer" if d == "out" else "linux"   # the receiving side's prerouting
            rule = self.models[side].arriving(self._flow(f, d), f[6])
            if rule is not None:
                self.marks.append({"t": t, "dir": d, "seq": f[4], "ack": f[5],
                                   "flags": f[6], "rule": rule})
        (lab.tun_k if d == "out" else lab.tun_l).send(pkt)

    def _record(self, pkt: bytes) -> int:
        t = now_us()
        self.pcap.record(pkt, t)
        self.packets += 1
        return t

    @staticmethod
    def _flow(f: tuple, d: str) -> tuple:
        src, sport, dst, dport = f[0], f[1], f[2], f[3]
        return (src, sport, dst, dport) if d == "out" else (dst, dport, src, sport)


class SsSampler:
    """Samples ``ss`` in one namespace for sockets on ``port`` (every ``interval`` s plus the
    time ss takes, for at most ``duration`` s) and keeps one event per change, stamped with
    :func:`now_us`: ``{"ev": kind, "state", "conn"}`` (``kind`` "state" gets ``new``/``old``
    too, for the ladder's left column; "kernel" is the right column). A socket that vanishes
    is reported as CLOSED."""

    def __init__(self, netns: str, port: int, kind: str, interval: float = 0.005,
                 duration: float = 60.0) -> None:
        self.netns, self.port, self.kind = netns, port, kind
        self.interval, self.duration = interval, duration
        self.events: list[dict] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"ss-{kind}")

    def start(self) -> SsSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _loop(self) -> None:
        t0 = time.monotonic()
        last: dict[tuple[str, str], str] = {}
        while not self._stop.is_set() and time.monotonic() - t0 < self.duration:
            try:
                socks = kernel_sockets(self.netns, self.port)
            except Exception as e:  # noqa: BLE001 - reported with the run
                self.errors.append(str(e))
                break
            t = now_us()
            cur = {(s["local"], s["remote"]): s["state"] for s in socks
                   if s["state"] != "LISTEN"}
            for key, st in cur.items():
                if last.get(key) != st:
                    self._emit(t, key, last.get(key, "CLOSED"), st)
            for key in last.keys() - cur.keys():
                self._emit(t, key, last[key], "CLOSED")
            last = cur
            self._stop.wait(self.interval)

    def _emit(self, t: int, key: tuple[str, str], old: str, new: str) -> None:
        ev: dict = {"t": t, "ev": self.kind, "conn": f"{key[0]}>{key[1]}", "source": "ss"}
        if self.kind == "state":
            ev.update({"old": old, "new": new, "reason": "ss"})
        else:
            ev["state"] = new
        self.events.append(ev)

    def states(self) -> list[str]:
        return [str(e.get("new") or e.get("state")) for e in self.events]
