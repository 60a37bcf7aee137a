"""The kernel's view of its TCP sockets inside a namespace, read with `ss -tanoiH state all`.

`kernel_sockets(netns, port)` returns one dict per socket:

  state      RFC 9293 name ("ESTABLISHED", "FIN_WAIT_1", "TIME_WAIT", ...)
  ss_state   ss's own name ("ESTAB", "FIN-WAIT-1", ...)
  recv_q, send_q, local, remote ("addr:port" strings, IPv6 as "[addr]:port"),
  local_addr, local_port, remote_addr, remote_port
  timer      {"name": "on"|"keepalive"|"timewait"|"persist"|"off", "expires_ms", "retrans"}
             or None
  rto_ms, rtt_ms, cwnd, mss, retrans (current), total_retrans, unacked, lost, snd_wnd, ...
             where ss printed them (missing keys: not reported)
  info       every `key:value` token of ss's info line, raw

`StatePoller` samples those states in a thread for a bounded time.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Self

from rawtcp.host.netns import exec_prefix

SS_TO_RFC = {
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECEIVED",
    "FIN-WAIT-1": "FIN_WAIT_1", "FIN-WAIT-2": "FIN_WAIT_2", "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK", "LISTEN": "LISTEN",
    "CLOSING": "CLOSING", "UNCONN": "CLOSED", "CLOSED": "CLOSED",
}
CC_ALGOS = frozenset({"cubic", "reno", "bbr", "bic", "htcp", "vegas", "westwood", "dctcp",
                      "highspeed", "hybla", "illinois", "lp", "nv", "scalable", "veno", "yeah",
                      "cdg"})
_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|sec|min|h|d)")
_SEC_DOT_MS = re.compile(r"(?:(\d+)min)?(\d+)\.(\d{3})ms")
_UNIT_MS = {"ms": 1, "sec": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> float | None:
    """ss timer expiry, e.g. "204ms", "59sec", "1min", "1min2sec" -> milliseconds."""
    # iproute2 runs seconds and milliseconds together with a dot: "4.988ms" is 4 s 988 ms.
    m = _SEC_DOT_MS.fullmatch(text)
    if m:
        mins, secs, msecs = m.groups()
        return int(mins or 0) * 60_000 + int(secs) * 1000 + int(msecs)
    parts = _DUR.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_MS[u] for n, u in parts)


def split_endpoint(ep: str) -> tuple[str, int]:
    host, _, port = ep.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%")[0]
    return host, int(port) if port.isdigit() else 0


def _num(v: str) -> int | float | str:
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def parse_timer(text: str) -> dict | None:
    m = re.fullmatch(r"timer:\((\w+),([^,]*),(\d+)\)", text)
    if not m:
        return None
    return {"name": m.group(1), "expires_ms": parse_duration_ms(m.group(2)),
            "retrans": int(m.group(3))}


def parse_info(line: str, sock: dict) -> None:
    info: dict[str, str] = {}
    for tok in line.split():
        if ":" in tok and not tok.startswith("("):
            k, _, v = tok.partition(":")
            info[k] = v
    sock["info"] = info
    for tok in line.split():
        if tok in CC_ALGOS:
            sock["algo"] = tok
    if "rto" in info:
        sock["rto_ms"] = _num(info["rto"])
    if "rtt" in info:
        rtt, _, var = info["rtt"].partition("/")
        sock["rtt_ms"], sock["rttvar_ms"] = _num(rtt), _num(var) if var else None
    if "retrans" in info:
        cur, _, tot = info["retrans"].partition("/")
        sock["retrans"], sock["total_retrans"] = int(cur), int(tot or 0)
    for k in ("cwnd", "mss", "unacked", "lost", "snd_wnd", "rcv_space", "ssthresh",
              "bytes_sent", "bytes_acked", "bytes_received", "bytes_retrans", "segs_out",
              "segs_in", "data_segs_out", "data_segs_in", "backoff", "ato"):
        if k in info:
            sock[k] = _num(info[k])
    sock.setdefault("retrans", 0)


def parse_ss(text: str) -> list[dict]:
    """Parse `ss -tanoiH` output (main lines plus tab-indented info lines)."""
    socks: list[dict] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if raw[0] in " \t":
            if socks:
                parse_info(raw, socks[-1])
            continue
        f = raw.split()
        if len(f) < 5 or f[0] == "State":
            continue
        ss_state = f[0]
        la, lp = split_endpoint(f[3])
        ra, rp = split_endpoint(f[4])
        sock: dict = {"state": SS_TO_RFC.get(ss_state, ss_state), "ss_state": ss_state,
                      "recv_q": int(f[1]), "send_q": int(f[2]), "local": f[3], "remote": f[4],
                      "local_addr": la, "local_port": lp, "remote_addr": ra,
                      "remote_port": rp, "timer": None, "retrans": 0}
        for tok in f[5:]:
            if tok.startswith("timer:"):
                sock["timer"] = parse_timer(tok)
        socks.append(sock)
    return socks


def kernel_sockets(netns: str | None, port: int | None = None) -> list[dict]:
    """TCP sockets of the kernel in `netns` (local or remote port == port, if given)."""
    p = subprocess.run(exec_prefix(netns) + ["ss", "-tanoiH", "state", "all"],
                       capture_output=True, text=True, timeout=10, check=False)
    if p.returncode != 0:
        raise OSError(5, f"ss failed in namespace {netns}: {p.stderr.strip()}")
    socks = parse_ss(p.stdout)
    if port is not None:
        socks = [s for s in socks if port in (s["local_port"], s["remote_port"])]
    return socks


class StatePoller:
    """Samples the kernel's TCP states in a thread; records each change.

    samples: list of {"t": seconds since start, "local", "remote", "state"}; a socket that
    disappears is recorded once with state "GONE". Bounded by `duration` seconds.

        with StatePoller(netns, port=5000, duration=10) as poller:
            ...
        poller.states()  ->  ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", ...]
    """

    def __init__(self, netns: str | None, port: int | None = None, interval: float = 0.02,
                 duration: float = 30.0) -> None:
        self.netns, self.port, self.interval, self.duration = netns, port, interval, duration
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def start(self) -> StatePoller:
        self._thread = threading.Thread(target=self._run, daemon=True, name="ss-poller")
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        last: dict[tuple[str, str], str] = {}
        while not self._stop.is_set() and time.monotonic() - t0 < self.duration:
            try:
                socks = kernel_sockets(self.netns, self.port)
            except (OSError, subprocess.TimeoutExpired) as e:
                self.errors.append(str(e))
                break
            t = time.monotonic() - t0
            now = {(s["local"], s["remote"]): s["state"] for s in socks
                   if s["state"] != "LISTEN"}
            for key, st in now.items():
                if last.get(key) != st:
                    self.samples.append({"t": t, "local": key[0], "remote": key[1], "state": st})
            for key in last.keys() - now.keys():
                self.samples.append({"t": t, "local": key[0], "remote": key[1], "state": "GONE"})
            last = now
            self._stop.wait(self.interval)

    def stop(self) -> list[dict]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        return self.samples

    def states(self, local: str | None = None, remote: str | None = None) -> list[str]:
        return [s["state"] for s in self.samples
                if (local is None or s["local"] == local)
                and (remote is None or s["remote"] == remote)]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ TCP_INFO over sock_diag
# The kernel's congestion state, read the way `ss -ti` reads it (NETLINK_SOCK_DIAG,
# inet_diag_req_v2 with INET_DIAG_INFO and INET_DIAG_CONG), but from this process: one
# netlink socket opened inside the namespace answers a dump in ~100 us, so a sender's cwnd
# can be sampled every millisecond (an `ss` process costs milliseconds per sample).

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_INET_DIAG_INFO, _INET_DIAG_CONG = 2, 4
TCP_STATES = ("", "ESTABLISHED", "SYN_SENT", "SYN_RECEIVED", "FIN_WAIT_1", "FIN_WAIT_2",
              "TIME_WAIT", "CLOSED", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING")
CA_STATES = ("open", "disorder", "cwr", "recovery", "loss")
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF


def _diag_request(family: int, seq: int, sockid: bytes | None = None) -> bytes:
    """A dump of every TCP socket of ``family``, or (``sockid``: the 48-byte
    inet_diag_sockid of a socket a dump returned) the lookup of that one socket: a dump walks
    the kernel's whole (shared) connection hash, a lookup finds one bucket."""
    import struct

    ext = (1 << (_INET_DIAG_INFO - 1)) | (1 << (_INET_DIAG_CONG - 1))
    # inet_diag_req_v2: family, protocol (TCP), ext, pad, states (all), sockid
    req = struct.pack("=BBBxI", family, 6, ext, 0xFFFFFFFF) + (sockid or b"\0" * 48)
    flags = _NLM_F_REQUEST | (0 if sockid else _NLM_F_DUMP)
    return struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, flags, seq, 0) + req


def _endpoint(family: int, raw_addr: bytes, port: int) -> str:
    import ipaddress

    if family == 2:
        return f"{ipaddress.IPv4Address(raw_addr[:4])}:{port}"
    return f"[{ipaddress.IPv6Address(raw_addr[:16])}]:{port}"


def parse_tcp_info(info: bytes) -> dict:
    """The fields of Linux's struct tcp_info (include/uapi/linux/tcp.h) rawtcp plots:
    ``ca`` (open/disorder/cwr/recovery/loss), ``rto``, ``rtt``, ``rttvar`` (us), ``mss``,
    ``cwnd`` and ``ssthresh`` (segments; ssthresh None while infinite), ``unacked``, ``lost``,
    ``retrans``, ``total_retrans``, ``pmtu``; ``options`` (TCPI_OPT_* bits: ECN = 8,
    ECN_SEEN = 16) and ``delivered_ce`` (segments that arrived CE-marked, Linux >= 4.19).
    Short buffers give what they hold."""
    import struct

    out: dict = {}
    if len(info) >= 8:
        ca = info[1]
        out["ca"] = CA_STATES[ca] if ca < len(CA_STATES) else str(ca)
        out["retransmits"] = info[2]
        out["options"] = info[5]
    if len(info) >= 24:
        out["rto"], _ato, out["mss"], _rmss = struct.unpack_from("=IIII", info, 8)
    if len(info) >= 40:
        out["unacked"], out["sacked"], out["lost"], out["retrans"] = \
            struct.unpack_from("=IIII", info, 24)
    if len(info) >= 88:
        (out["pmtu"], _rcv_sst, out["rtt"], out["rttvar"], sst,
         out["cwnd"]) = struct.unpack_from("=IIIIII", info, 60)
        out["ssthresh"] = None if sst >= TCP_INFINITE_SSTHRESH else sst
    if len(info) >= 104:
        out["total_retrans"] = struct.unpack_from("=I", info, 100)[0]
    if len(info) >= 200:
        out["delivered_ce"] = struct.unpack_from("=I", info, 196)[0]
    return out


def parse_diag(data: bytes) -> tuple[list[dict], bool]:
    """Parse a netlink answer to the dump :func:`_diag_request` asks: (sockets, done).
    Each socket: ``state`` (RFC 9293 name), ``local``, ``remote``, ``local_port``,
    ``remote_port``, ``algo`` (congestion control name) and the :func:`parse_tcp_info`
    fields. Raises OSError for a netlink error message."""
    import struct

    socks: list[dict] = []
    off = 0
    while off + 16 <= len(data):
        n, mtype, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
        if n < 16 or off + n > len(data):
            break
        body = data[off + 16:off + n]
        off += (n + 3) & ~3
        if mtype == _NLMSG_DONE:
            return socks, True
        if mtype == _NLMSG_ERROR:
            err = -struct.unpack_from("=i", body)[0] if len(body) >= 4 else 5
            if err:
                raise OSError(err, f"sock_diag dump failed: errno {err}")
            continue
        if mtype != SOCK_DIAG_BY_FAMILY or len(body) < 72:
            continue
        family, state = body[0], body[1]
        sport, dport = struct.unpack_from(">HH", body, 4)
        sock: dict = {"state": TCP_STATES[state] if state < len(TCP_STATES) else str(state),
                      "local": _endpoint(family, body[8:24], sport),
                      "remote": _endpoint(family, body[24:40], dport),
                      "local_port": sport, "remote_port": dport,
                      "family": family, "sockid": bytes(body[4:52])}
        a = 72
        while a + 4 <= len(body):
            alen, atype = struct.unpack_from("=HH", body, a)
            if alen < 4:
                break
            val = body[a + 4:a + alen]
            if atype == _INET_DIAG_INFO:
                sock.update(parse_tcp_info(val))
            elif atype == _INET_DIAG_CONG:
                sock["algo"] = val.split(b"\0")[0].decode("ascii", "replace")
            a += (alen + 3) & ~3
        socks.append(sock)
    return socks, False


class TcpInfoReader:
    """TCP_INFO of every TCP socket in a namespace, read over one sock_diag netlink socket
    opened inside it: ``with TcpInfoReader(netns) as r: r.sockets(port)``."""

    def __init__(self, netns: str | None, families: tuple[str, ...] = ("ipv4", "ipv6")
                 ) -> None:
        import socket

        from rawtcp.host.netns import in_netns

        bad = [f for f in families if f not in ("ipv4", "ipv6")]
        if bad or not families:
            raise OSError(22, f"families must be ipv4 and/or ipv6, not {families!r}")
        self._families = [socket.AF_INET if f == "ipv4" else socket.AF_INET6
                          for f in families]
        with in_netns(netns):
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
        self._sock.settimeout(2.0)
        self._seq = 0

    def lookup(self, sock: dict) -> dict | None:
        """The socket a dump returned (its ``family`` and ``sockid``), read again; None once
        it is gone."""
        self._seq += 1
        self._sock.send(_diag_request(sock["family"], self._seq, sock["sockid"]))
        try:
            socks, _done = parse_diag(self._sock.recv(1 << 16))
        except OSError as e:
            if e.errno == 2:       # ENOENT: closed
                return None
            raise
        return socks[0] if socks else None

    def sockets(self, port: int | None = None) -> list[dict]:
        """Sockets (see :func:`parse_diag`) whose local or remote port is ``port``."""
        out: list[dict] = []
        for family in self._families:
            self._seq += 1
            self._sock.send(_diag_request(family, self._seq))
            for _ in range(10_000):              # bounded: a dump ends with NLMSG_DONE
                socks, done = parse_diag(self._sock.recv(1 << 16))
                out.extend(socks)
                if done:
                    break
        if port is not None:
            out = [s for s in out if port in (s["local_port"], s["remote_port"])]
        return out

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CC_FIELDS = ("cwnd", "ssthresh", "mss", "rtt", "rttvar", "rto", "ca", "algo", "unacked",
             "lost", "total_retrans")


class CcPoller:
    """Samples the kernel's congestion state (TCP_INFO over sock_diag) of the sockets on
    ``port`` in ``netns`` every ``interval`` seconds, for at most ``duration`` seconds, and
    calls ``emit(event)`` with ``{t, ev: "kernel", state, local, remote, retrans,
    total_retrans, cwnd, ssthresh, mss, rtt, rttvar, rto, ca, algo, ...}`` whenever one of
    state, cwnd, ssthresh or ca changed (at most one event per socket and sample; ``t`` from
    ``clock()``, integer us). cwnd and ssthresh are in segments (as Linux counts), times in us.
    Listening sockets are skipped; ``max_events`` bounds the total."""

    def __init__(self, netns: str | None, port: int, clock: Callable[[], int],
                 emit: Callable[[dict], None], interval: float = 0.001,
                 duration: float = 60.0, max_events: int = 200_000,
                 families: tuple[str, ...] = ("ipv4", "ipv6")) -> None:
        self.netns, self.port, self.clock, self.emit = netns, port, clock, emit
        self.interval, self.duration, self.max_events = interval, duration, max_events
        self.count = 0
        self.samples = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._reader = TcpInfoReader(netns, families)
        self._thread = threading.Thread(target=self._run, daemon=True, name="cc-poller")

    def start(self) -> CcPoller:
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        last: dict[tuple[str, str], tuple] = {}
        known: dict[tuple[str, str], dict] = {}
        rounds = 0
        try:
            while not self._stop.is_set() and time.monotonic() - t0 < self.duration:
                try:   # a dump finds new sockets (every 25th round), lookups follow known ones
                    if not known or rounds % 25 == 0:
                        socks = [s for s in self._reader.sockets(self.port)
                                 if s["state"] != "LISTEN"]
                        known = {(s["local"], s["remote"]): s for s in socks}
                    else:
                        socks = []
                        for key, old in list(known.items()):
                            cur = self._reader.lookup(old)
                            if cur is None:
                                del known[key]
                                cur = dict(old, state="CLOSED")
                                for k in CC_FIELDS:
                                    cur[k] = None
                            socks.append(cur)
                except OSError as e:
                    self.errors.append(str(e))
                    break
                rounds += 1
                self.samples += 1
                now = self.clock()
                for s in socks:
                    if s["state"] == "LISTEN" or self.count >= self.max_events:
                        continue
                    key = (s["local"], s["remote"])
                    sig = (s["state"], s.get("cwnd"), s.get("ssthresh"), s.get("ca"))
                    if last.get(key) == sig:
                        continue
                    last[key] = sig
                    ev = {"t": now, "ev": "kernel", "state": s["state"], "local": s["local"],
                          "remote": s["remote"], "retrans": s.get("retrans")}
                    ev.update({k: s.get(k) for k in CC_FIELDS})
                    self.count += 1
                    self.emit(ev)
                self._stop.wait(self.interval)
        finally:
            self._reader.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        elif self._thread.ident is None:      # never started: the reader is still ours
            self._reader.close()

    def __enter__(self) -> CcPoller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ss_cc_fields(sock: dict) -> dict:
    """The congestion fields of a `kernel` event from one :func:`parse_ss` socket, in the
    units :class:`CcPoller` uses: ``cwnd``/``ssthresh`` in segments, ``mss`` in bytes,
    ``rtt``/``rttvar``/``rto`` in us, ``algo``; None where ss printed nothing."""
    def us(ms: object) -> int | None:
        return int(round(float(ms) * 1000)) if isinstance(ms, (int, float)) else None

    return {"cwnd": sock.get("cwnd"), "ssthresh": sock.get("ssthresh"), "mss": sock.get("mss"),
            "rtt": us(sock.get("rtt_ms")), "rttvar": us(sock.get("rttvar_ms")),
            "rto": us(sock.get("rto_ms")), "algo": sock.get("algo")}
