"""The bench's measurements: each figure of rawtcp and its reference, in private labs.

Every measurement builds its own lab (removed afterwards, also on errors and Ctrl-C), runs
one transfer or one connection loop bounded by `timeout` seconds, and returns a `Measure`.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawtcp.bench.bare import BareReceiver, BareSender, BareStream
from rawtcp.bench.common import CHUNK, MB, Progress, bytes_progress, conn_loop, stream_chunks
from rawtcp.bench.kpeer import CLIENT_EVENTS
from rawtcp.core.config import Config
from rawtcp.lab import TunLab, VethLab
from rawtcp.lab.peers import KernelPeer
from rawtcp.link.tun import TunLink
from rawtcp.runtime import Stack

# the rawtcp receiver reads as the kernel reference's (kpeer fetch) does: up to CHUNK (1 MiB)
# a call; a reader that asks for less makes more calls for the same bytes
RECV_CHUNK = CHUNK


def exec_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def _sysctl(netns: str, setting: str) -> None:
    p = subprocess.run(exec_prefix(netns) + ["sysctl", "-q", "-w", setting],
                       capture_output=True, text=True, timeout=10, check=False)
    if p.returncode:
        raise OSError(errno.EIO, f"sysctl -w {setting} failed: {p.stderr.strip()}")


@dataclass
class Measure:
    """One side of a figure: the value (unit of the figure), sha256 verdict, details."""

    value: float
    sha_ok: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


class BenchPeer(KernelPeer):
    """A rawtcp.bench.kpeer process in `netns` (see kpeer for roles and events)."""

    def __init__(self, netns: str | None, role: str, timeout: float, **opts: Any) -> None:
        super().__init__(netns, [])
        args = [role, "--timeout", str(timeout)]
        for k, v in opts.items():
            args += ["--" + k, str(v)]
        self.argv = exec_prefix(netns) + [sys.executable, "-m", "rawtcp.bench.kpeer"] + args
        self.ready_event = CLIENT_EVENTS.get(role, "listening")

    def port(self) -> int:
        return int(self.wait_ready()["port"])


# ------------------------------------------------------------------------ offload


def offload_available() -> bool:
    """True when this rawtcp's TunLink takes `offload=` (TUN GSO/GRO, rawtcp.link.vnet)."""
    return "offload" in inspect.signature(TunLink).parameters


def _open_tun(lab: TunLab, offload: bool) -> TunLink:
    return lab.open_link(offload=True) if offload else lab.open_link()


#: With offload, segments are up to 64 KB: a 256 KB window holds four of them, and the
#: window, not the CPU, sets the rate. Linux autotunes its buffers up to 6 MB (tcp_rmem);
#: the offload runs use 4 MiB.
OFFLOAD_BUFFER = 4 << 20


#: The connection-rate client's source ports: every port but the well-known ones. Each of
#: rawtcp's connections stays in TIME_WAIT for 2*MSL (60 s by default, kept as it is: its cost
#: is part of the figure), so the default range (32768..60999, 28,232 ports) runs out after
#: ~28,000 connections at anything above 470 conn/s; this range holds 1,075 conn/s for ever.
CONN_PORTS = (1024, 65535)


def _conn_config(mtu: int) -> Config:
    lo, hi = CONN_PORTS
    return Config(mss=mtu - 40, ephemeral_low=lo, ephemeral_high=hi)


def _config(mtu: int, offload: bool) -> Config:
    if offload:
        return Config(mss=mtu - 40, offload=True, rcvbuf=OFFLOAD_BUFFER, sndbuf=OFFLOAD_BUFFER)
    return Config(mss=mtu - 40)


def _link_details(link: TunLink) -> dict[str, Any]:
    """What the link did: super-segments in (gro_*), large segments out (gso_*)."""
    if not link.offload:
        return {"offload": False}
    c = link.counters
    return {"offload": True, **{k: int(c[k]) for k in ("gro_packets", "gro_bytes",
                                                       "gso_packets", "gso_bytes",
                                                       "rx_packets", "tx_packets")}}


def _deadline_left(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise OSError(errno.ETIMEDOUT, f"{what}: not finished within --timeout")
    return left


def _rate(nbytes: int, seconds: float) -> float:
    return nbytes / MB / seconds if seconds > 0 else 0.0


# ------------------------------------------------------------------- bulk receive


def recv_rawtcp(mtu: int, nbytes: int, timeout: float, progress: Progress,
                offload: bool = False, io_size: int = RECV_CHUNK) -> Measure:
    """kernel source -> rawtcp socket: MB/s from connect() to EOF, sha256 of what arrived.
    The program reads up to ``io_size`` bytes a call."""
    deadline = time.monotonic() + timeout
    show = bytes_progress(progress, "bulk receive, rawtcp", nbytes)
    with TunLab(family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.netns, "source", timeout, size=nbytes) as src:
        port = src.port()
        link = _open_tun(lab, offload)
        with Stack(link, _config(mtu, offload), name="bench-recv") as st:
            s = st.socket()
            s.settimeout(min(timeout, 60))
            h, n, next_show = hashlib.sha256(), 0, 0
            t0 = time.monotonic()
            s.connect((lab.kernel_addr, port))
            while data := s.recv(io_size):
                h.update(data)
                n += len(data)
                if n >= next_show:
                    show(n)
                    next_show = n + MB
                    _deadline_left(deadline, "bulk receive (rawtcp)")
            t1 = time.monotonic()
            info = s.tcp_info()
            s.close()
        sent = src.wait_event("sent", _deadline_left(deadline, "bulk receive (rawtcp)"))
    ok = n == nbytes == sent["bytes"] and h.hexdigest() == sent["sha256"]
    return Measure(_rate(n, t1 - t0), ok, {"bytes": n, "seconds": round(t1 - t0, 4),
                                            "retransmits": info.get("total_retrans"),
                                            **_link_details(link)})


def recv_bare(mtu: int, nbytes: int, timeout: float, progress: Progress) -> Measure:
    """kernel source -> BareReceiver on the TUN fd: MB/s from SYN to the peer's FIN."""
    deadline = time.monotonic() + timeout
    show = bytes_progress(progress, "bulk receive, bare Python", nbytes)
    with TunLab(family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.netns, "source", timeout, size=nbytes) as src:
        port = src.port()
        link = lab.open_link()
        rx = BareReceiver(link.fileno(), lab.rawtcp_addr, lab.kernel_addr, port, mtu,
                          rcv_buffer=Config().rcvbuf, deadline=deadline)
        h = hashlib.sha256()
        t0 = time.monotonic()
        n = rx.run(h.update, show)
        t1 = rx.fin_at
        sent = src.wait_event("sent", _deadline_left(deadline, "bulk receive (bare)"))
    ok = n == nbytes == sent["bytes"] and h.hexdigest() == sent["sha256"]
    return Measure(_rate(n, t1 - t0), ok, {"bytes": n, "seconds": round(t1 - t0, 4),
                                            **dict(rx.counters)})


# ---------------------------------------------------------------------- bulk send


def send_rawtcp(mtu: int, nbytes: int, expect_sha: str, timeout: float, progress: Progress,
                offload: bool = False, io_size: int = CHUNK) -> Measure:
    """rawtcp socket -> kernel sink: MB/s from connect() to the sink's EOF. The program
    writes ``io_size`` bytes a call (sendall)."""
    deadline = time.monotonic() + timeout
    show = bytes_progress(progress, "bulk send, rawtcp", nbytes)
    with TunLab(family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.netns, "sink", timeout) as sink:
        port = sink.port()
        link = _open_tun(lab, offload)
        with Stack(link, _config(mtu, offload), name="bench-send") as st:
            s = st.socket()
            s.settimeout(min(timeout, 60))
            n = 0
            t0 = time.monotonic()
            s.connect((lab.kernel_addr, port))
            for piece in stream_chunks(nbytes, io_size):
                s.sendall(piece)
                n += len(piece)
                show(n)
                _deadline_left(deadline, "bulk send (rawtcp)")
            s.close()
            eof = sink.wait_event("eof", _deadline_left(deadline, "bulk send (rawtcp)"))
            rtx = sum(int(t.info().get("total_retrans", 0)) for t in st.core.connections())
    t1 = float(eof["mono"])
    ok = eof["bytes"] == nbytes and eof["sha256"] == expect_sha
    return Measure(_rate(nbytes, t1 - t0), ok, {"bytes": int(eof["bytes"]),
                                                 "seconds": round(t1 - t0, 4),
                                                 "retransmits": rtx,
                                                 **_link_details(link)})


def send_bare(mtu: int, nbytes: int, expect_sha: str, timeout: float,
              progress: Progress) -> Measure:
    """BareSender on the TUN fd -> kernel sink: MB/s from SYN to the sink's EOF."""
    deadline = time.monotonic() + timeout
    show = bytes_progress(progress, "bulk send, bare Python", nbytes)
    with TunLab(family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.netns, "sink", timeout) as sink:
        port = sink.port()
        link = lab.open_link()
        tx = BareSender(link.fileno(), lab.rawtcp_addr, lab.kernel_addr, port, mtu,
                        rcv_buffer=Config().rcvbuf, deadline=deadline)
        t0 = time.monotonic()
        tx.run(nbytes, show)
        eof = sink.wait_event("eof", _deadline_left(deadline, "bulk send (bare)"))
    t1 = float(eof["mono"])
    ok = eof["bytes"] == nbytes and eof["sha256"] == expect_sha
    return Measure(_rate(nbytes, t1 - t0), ok, {"bytes": int(eof["bytes"]),
                                                 "seconds": round(t1 - t0, 4),
                                                 **dict(tx.counters)})


def recv_kernel(mtu: int, nbytes: int, timeout: float, progress: Progress) -> Measure:
    """Kernel source (one namespace) -> kernel client (another) over a veth of the same MTU:
    MB/s from connect() to EOF, as rawtcp's receive is measured."""
    progress.show("bulk receive, kernel <-> kernel: running", force=True)
    with VethLab(mode="rawip", family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.kernel_netns, "source", timeout, size=nbytes) as src:
        port = src.port()
        with BenchPeer(lab.rawtcp_netns, "fetch", timeout, port=port,
                       connect=lab.kernel_addr) as cl:
            got = _client_event(cl, timeout)
        sent = src.wait_event("sent", 10)
    ok = got["bytes"] == nbytes == sent["bytes"] and got["sha256"] == sent["sha256"]
    seconds = float(got["seconds"])
    return Measure(_rate(int(got["bytes"]), seconds), ok,
                   {"bytes": int(got["bytes"]), "seconds": round(seconds, 4)})


def send_kernel(mtu: int, nbytes: int, expect_sha: str, timeout: float,
                progress: Progress) -> Measure:
    """Kernel client -> kernel sink over a veth of the same MTU: MB/s from connect() to the
    sink's EOF, as rawtcp's send is measured."""
    progress.show("bulk send, kernel <-> kernel: running", force=True)
    with VethLab(mode="rawip", family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.kernel_netns, "sink", timeout) as sink:
        port = sink.port()
        with BenchPeer(lab.rawtcp_netns, "push", timeout, size=nbytes, port=port,
                       connect=lab.kernel_addr) as cl:
            pushed = _client_event(cl, timeout)
        eof = sink.wait_event("eof", 10)
    seconds = float(eof["mono"]) - float(pushed["start"])
    ok = eof["bytes"] == nbytes and eof["sha256"] == expect_sha
    return Measure(_rate(nbytes, seconds), ok,
                   {"bytes": int(eof["bytes"]), "seconds": round(seconds, 4)})


def _client_event(cl: BenchPeer, timeout: float) -> dict[str, Any]:
    """A kpeer client's result event, or OSError with what went wrong."""
    try:
        return cl.wait_ready(timeout + 5)
    except OSError as e:
        err = cl.event("error") or cl.event("timeout")
        raise OSError(e.errno, f"kernel client: {err or e.strerror}") from None


# ---------------------------------------------------------------- connection rate


def _conn_progress(progress: Progress, label: str, n: int) -> Callable[[int], None]:
    def cb(i: int) -> None:
        if progress.due():
            progress.show(f"{label}: {i:,} / {n:,} connections")
    return cb


def conn_rawtcp(mtu: int, conns: int, timeout: float, progress: Progress) -> Measure:
    """rawtcp client -> kernel echo server over TUN: common.conn_loop. Value: conn/s."""
    deadline = time.monotonic() + timeout
    with TunLab(family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.netns, "echo", timeout, conns=conns) as srv:
        addr = (lab.kernel_addr, srv.port())
        with Stack(lab.open_link(), _conn_config(mtu), name="bench-conn") as st:
            def connect() -> Any:
                s = st.socket()
                s.settimeout(min(timeout, 60))
                try:
                    s.connect(addr)
                except BaseException:
                    s.close()
                    raise
                return s

            stats = conn_loop(connect, conns, deadline,
                              _conn_progress(progress, "connection rate, rawtcp", conns))
        srv.wait_event("done", _deadline_left(deadline, "connection rate (rawtcp)"))
    return Measure(stats.rate, True, stats.to_dict())


def conn_kernel(conns: int, timeout: float, progress: Progress, mtu: int = 1500) -> Measure:
    """Kernel client (one namespace) -> kernel echo server (another) over a veth of ``mtu``
    (rawtcp's TUN device's), the same common.conn_loop in a kpeer process. The client's
    namespace gets tcp_tw_reuse=1 so long runs do not run out of ephemeral ports while its
    closed connections sit in TIME_WAIT."""
    progress.show("connection rate, kernel <-> kernel: running", force=True)
    with VethLab(mode="rawip", family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.kernel_netns, "echo", timeout, conns=conns) as srv:
        port = srv.port()
        _sysctl(lab.rawtcp_netns, "net.ipv4.tcp_tw_reuse=1")
        with BenchPeer(lab.rawtcp_netns, "conn", timeout, conns=conns, port=port,
                       connect=lab.kernel_addr) as cl:
            ev = _client_event(cl, timeout)
    stats = ev["stats"]
    return Measure(float(stats["rate"]), True, stats)


def conn_bare(mtu: int, conns: int, timeout: float, progress: Progress) -> Measure:
    """BareStream connections (the bare Python client) -> kernel echo server over TUN, in
    the same common.conn_loop as rawtcp's and the kernel's. Each connection takes the next
    source port (no TIME_WAIT is kept). Value: conn/s."""
    deadline = time.monotonic() + timeout
    with TunLab(family="ipv4", mtu=mtu) as lab, \
            BenchPeer(lab.netns, "echo", timeout, conns=conns) as srv:
        port = srv.port()
        link = lab.open_link()
        rcvbuf = Config().rcvbuf
        first = secrets.randbelow(40000)
        counters: Counter[str] = Counter()
        n = 0

        def connect() -> BareStream:
            nonlocal n
            sport = 20000 + (first + n) % 40000      # 20000..59999, each once per 40,000
            n += 1
            return BareStream(link.fileno(), lab.rawtcp_addr, lab.kernel_addr, port, mtu,
                              rcv_buffer=rcvbuf, deadline=deadline, sport=sport,
                              counters=counters)

        stats = conn_loop(connect, conns, deadline,
                          _conn_progress(progress, "connection rate, bare Python", conns))
        srv.wait_event("done", _deadline_left(deadline, "connection rate (bare)"))
    return Measure(stats.rate, True, {**stats.to_dict(), **dict(counters)})
