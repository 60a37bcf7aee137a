"""UDP endpoints (RFC 768) and ICMP errors (RFC 1122 3.2.2, 4.1.3.3, 4.2.3.9; RFC 5927), sans-IO.

One :class:`UdpTable` per core :class:`~rawtcp.core.stack.Stack` (``stack.udp``):

- ``bind(addr, port, reuse)`` -> :class:`UdpEndpoint`. UDP ports are their own space (a TCP
  socket and a UDP socket may hold the same number). Port 0 takes an ephemeral port from
  ``Config.ephemeral_low..high`` (random start, no scan of the endpoints). Two endpoints may
  share a port when both set SO_REUSEADDR (Linux); a datagram then goes to the best match
  (connected to its source > bound to its address > wildcard), the last bound of equals.
- ``connect(ep, addr, port, local)``: the default peer, and a filter: a connected endpoint
  takes datagrams from that peer only. ``disconnect(ep)`` undoes it.
- ``send(ep, payload, dst, src, now)``: one :class:`Datagram` onto the stack's output
  (``take_packets()``, in order with the TCP segments). No fragmentation: a payload larger
  than ``mtu`` - IP header - 8 is EMSGSIZE.
- ``on_datagram(d, now, raw)``: into the endpoint's receive queue, bounded by its
  ``rcvbuf`` in payload bytes (a datagram that does not fit is dropped and counted; an
  empty queue takes one datagram of any size, as Linux). A datagram for a port nobody holds
  is answered with ICMP port unreachable (RFC 1122 4.1.3.1), rate limited by a token bucket:
  ``icmp_burst`` tokens (50), one more every ``icmp_interval`` (1 s), as Linux's
  icmp_ratelimit/icmp_msgs_burst; a suppressed one is counted (``icmp_ratelimited``).
- ``on_icmp(e, now)``: an ICMP error names the packet it is about (its quote). For UDP, a
  hard error (port/protocol unreachable, administratively prohibited) on a *connected*
  endpoint is kept as its pending error, reported by its next call (as Linux without
  IP_RECVERR; unconnected endpoints ignore errors). For TCP (RFC 5927 4.1: only if the quoted
  sequence number is in SND.UNA..SND.NXT): a hard error aborts a connection in SYN-SENT
  (ECONNREFUSED for port unreachable), as Linux does; in every other state an error is only
  soft (RFC 1122 4.2.3.9, RFC 5927 4.2): remembered, and reported instead of ETIMEDOUT if the
  connection then times out (Linux's sk_err_soft). Fragmentation needed / packet too big are
  counted and otherwise ignored (no path MTU discovery).

Counters (``stack.counters``): udp_in, udp_out, udp_dropped_rcvbuf, udp_no_port, icmp_in,
icmp_out, icmp_ratelimited, icmp_ignored, icmp_bad_seq, icmp_pmtu_ignored, icmp_tcp_aborted,
icmp_tcp_soft, icmp_udp_error. Trace events: ``{ev: "udp", dir, src, dst, sport, dport,
len}``, ``{ev: "icmp", dir, src, dst, kind, type, code, proto, qsrc, qdst, qsport, qdport}``
and ``{ev: "drop", proto: "udp", reason, ...}``.
"""

from __future__ import annotations

import collections
import errno
from typing import TYPE_CHECKING, Any

from .config import SEC
from .datagram import PROTO_TCP, PROTO_UDP, Datagram, IcmpError, port_unreachable
from .ports import WILDCARDS, PortTable, canonical_ip
from .seq import unwrap
from .states import SYN_SENT

if TYPE_CHECKING:
    from .stack import Stack
    from .tcb import Tcb

#: kind -> (errno for IPv4, errno for IPv6, hard); as Linux's icmp_err_convert and
#: icmpv6_err_convert. Hard errors end a connection attempt (RFC 1122 4.2.3.9).
ICMP_ERRNO: dict[str, tuple[int, int, bool]] = {
    "port-unreachable": (errno.ECONNREFUSED, errno.ECONNREFUSED, True),
    "proto-unreachable": (errno.ENOPROTOOPT, errno.ECONNREFUSED, True),
    "admin-prohibited": (errno.EHOSTUNREACH, errno.EACCES, True),
    "net-unreachable": (errno.ENETUNREACH, errno.ENETUNREACH, False),
    "host-unreachable": (errno.EHOSTUNREACH, errno.EHOSTUNREACH, False),
    "unreachable": (errno.EHOSTUNREACH, errno.EHOSTUNREACH, False),
    "time-exceeded": (errno.EHOSTUNREACH, errno.EHOSTUNREACH, False),
    "parameter-problem": (errno.EPROTO, errno.EPROTO, False),
}
_PMTU = ("frag-needed", "packet-too-big")
_BROADCAST = "255.255.255.255"


def max_payload(mtu: int, ipv6: bool) -> int:
    """The largest UDP payload one unfragmented packet carries on a link of ``mtu``."""
    return min(mtu, 65535) - (40 if ipv6 else 20) - 8


class UdpEndpoint:
    """One bound UDP socket's core half: address, peer, receive queue, pending error."""

    __slots__ = ("addr", "broadcast", "closed", "dropped", "error", "listening", "peer", "port",
                 "queue", "queued", "rcvbuf", "released", "reuse", "table", "watcher")

    def __init__(self, table: UdpTable, addr: str, port: int, reuse: bool, rcvbuf: int) -> None:
        self.table = table
        self.addr = addr
        self.port = port
        self.reuse = reuse
        self.listening = False           # for PortTable.in_use (UDP never listens)
        self.released = False
        self.peer: tuple[str, int] | None = None
        self.rcvbuf = rcvbuf
        self.queue: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self.queued = 0                  # payload bytes in the queue
        self.dropped = 0                 # datagrams dropped because the queue was full
        self.error: int | None = None    # pending error (ICMP), reported once
        self.broadcast = False           # SO_BROADCAST
        self.closed = False
        self.watcher = None              # the socket layer's readiness hook (see Tcb.watcher)

    @property
    def local(self) -> tuple[str, int]:
        return self.addr, self.port

    @property
    def readable(self) -> bool:
        return bool(self.queue) or self.error is not None

    def recv(self, peek: bool = False) -> tuple[bytes, tuple[str, int]] | None:
        """The oldest datagram and its source, or None (``peek``: leave it queued)."""
        if not self.queue:
            return None
        if peek:
            return self.queue[0]
        item = self.queue.popleft()
        self.queued -= len(item[0])
        return item

    def take_error(self) -> int | None:
        err, self.error = self.error, None
        return err

    def __repr__(self) -> str:
        peer = f" peer={self.peer[0]}:{self.peer[1]}" if self.peer else ""
        return f"<UdpEndpoint {self.addr}:{self.port}{peer} queued={len(self.queue)}>"


class UdpTable:
    """The UDP endpoints of one stack, and its ICMP error handling (see the module doc)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._ports = PortTable()
        #: link MTU (the runtime sets the link's); payloads beyond it minus headers: EMSGSIZE
        self.mtu = stack.config.mss + 40
        self.icmp_burst = 50
        self.icmp_interval = SEC
        self._tokens = float(self.icmp_burst)
        self._tokens_at: int | None = None
        #: TCP connections with a soft ICMP error (reported if they time out)
        self.soft_errors: dict[Tcb, int] = {}

    # ------------------------------------------------------------------ user calls
    def bind(self, addr: str, port: int, reuse: bool = False,
             rcvbuf: int | None = None) -> UdpEndpoint:
        try:
            addr = canonical_ip(addr)
        except ValueError:
            raise OSError(errno.EINVAL, f"{addr!r} is not an IPv4/IPv6 address") from None
        if not 0 <= port <= 65535:
            raise OSError(errno.EINVAL, f"port {port} out of range 0..65535")
        cfg = self.stack.config
        if port == 0:
            port = self._ports.ephemeral(cfg.ephemeral_low, cfg.ephemeral_high, self.stack.rng)
        elif self._ports.in_use(addr, port, reuse, {}):
            raise OSError(errno.EADDRINUSE, f"UDP {addr}:{port} is already in use; choose "
                          "another port or set SO_REUSEADDR on both sockets")
        ep = UdpEndpoint(self, addr, port, reuse, cfg.rcvbuf if rcvbuf is None else rcvbuf)
        self._ports.add_binding(ep)
        return ep

    def connect(self, ep: UdpEndpoint, addr: str, port: int, local: str | None = None) -> None:
        """Set the default peer (and filter). ``local``: the address to send from, taken
        when the endpoint is bound to the wildcard (as Linux's route lookup on connect)."""
        self._check(ep)
        if not 0 < port <= 65535:
            raise OSError(errno.EINVAL, f"connect: port {port} out of range 1..65535")
        addr = canonical_ip(addr)
        if (":" in addr) != (":" in ep.addr):
            raise OSError(errno.EAFNOSUPPORT, f"{addr} is not of the endpoint's family")
        if ep.addr in WILDCARDS and local is not None:
            ep.addr = canonical_ip(local)
        ep.peer = (addr, port)
        ep.error = None

    def disconnect(self, ep: UdpEndpoint) -> None:
        """connect(AF_UNSPEC): no default peer, datagrams from anyone."""
        self._check(ep)
        ep.peer = None

    def close(self, ep: UdpEndpoint) -> None:
        if ep.closed:
            return
        ep.closed = True
        ep.released = True
        ep.queue.clear()
        ep.queued = 0
        self._ports.remove_binding(ep)

    def _check(self, ep: UdpEndpoint) -> None:
        if ep.closed:
            raise OSError(errno.EBADF, "the UDP endpoint is closed")

    def send(self, ep: UdpEndpoint, payload: bytes, dst: tuple[str, int] | None,
             src: str | None, now: int) -> int:
        """Queue one datagram to ``dst`` (None: the connected peer) from ``src`` (used when
        the endpoint is bound to the wildcard). Returns the payload length."""
        self._check(ep)
        err = ep.take_error()
        if err is not None:
            raise OSError(err, f"{errno.errorcode.get(err, err)}: an ICMP error arrived for "
                          "this socket's earlier datagram")
        if dst is None:
            if ep.peer is None:
                raise OSError(errno.EDESTADDRREQ, "no destination: connect() first or use "
                                                  "sendto()")
            dst = ep.peer
        daddr, dport = canonical_ip(dst[0]), dst[1]
        if dport == 0:
            raise OSError(errno.EINVAL, "cannot send to port 0")
        v6 = ":" in daddr
        if v6 != (":" in ep.addr):
            raise OSError(errno.EAFNOSUPPORT, f"{daddr} is not of the endpoint's family")
        limit = max_payload(self.mtu, v6)
        n = len(payload)
        if n > limit:
            raise OSError(errno.EMSGSIZE, f"datagram of {n} bytes exceeds {limit} (link MTU "
                          f"{self.mtu}; rawtcp does not fragment): send smaller datagrams")
        if daddr == _BROADCAST and not ep.broadcast:
            raise OSError(errno.EACCES, "sending to a broadcast address needs SO_BROADCAST")
        saddr = ep.addr
        if saddr in WILDCARDS:
            if src is None:
                raise OSError(errno.EADDRNOTAVAIL, "no source address for this datagram")
            saddr = canonical_ip(src)
        d = Datagram(saddr, daddr, ep.port, dport, bytes(payload))
        self._emit(d, now)
        return n

    # ------------------------------------------------------------------ output
    def _emit(self, d: Datagram, now: int) -> None:
        st = self.stack
        st._out.append(d)   # type: ignore[arg-type]   # beside the TCP packets, in order
        st.counters["udp_out"] += 1
        if st.tracer is not None:
            st._trace_ev(now, "udp", dir="out", src=d.src, dst=d.dst, sport=d.sport,
                         dport=d.dport, len=len(d.payload))

    def _emit_icmp(self, e: IcmpError, now: int) -> None:
        st = self.stack
        st._out.append(e)   # type: ignore[arg-type]
        st.counters["icmp_out"] += 1
        self._trace_icmp("out", e, now)

    def _trace_icmp(self, direction: str, e: IcmpError, now: int) -> None:
        st = self.stack
        if st.tracer is not None:
            st._trace_ev(now, "icmp", dir=direction, src=e.src, dst=e.dst, kind=e.kind,
                         type=e.type, code=e.code, proto=e.proto, qsrc=e.qsrc, qdst=e.qdst,
                         qsport=e.qsport, qdport=e.qdport)

    def _icmp_allowed(self, now: int) -> bool:
        """Token bucket: icmp_burst tokens, one more per icmp_interval."""
        if self._tokens_at is not None:
            self._tokens = min(float(self.icmp_burst),
                               self._tokens + (now - self._tokens_at) / self.icmp_interval)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    # ------------------------------------------------------------------ input
    def _lookup(self, laddr: str, lport: int, raddr: str, rport: int) -> UdpEndpoint | None:
        best: UdpEndpoint | None = None
        score = -1
        for ep in self._ports.bindings.get(lport, ()):
            if ep.addr == laddr:
                s = 2
            elif ep.addr in WILDCARDS and (":" in ep.addr) == (":" in laddr):
                s = 1
            else:
                continue
            if ep.peer is not None:
                if ep.peer != (raddr, rport):
                    continue
                s += 4
            if s >= score:
                best, score = ep, s
        return best

    def _drop(self, d: Datagram, counter: str, reason: str, now: int) -> None:
        st = self.stack
        st.counters[counter] += 1
        if st.tracer is not None:
            st._trace_ev(now, "drop", dir="in", proto="udp", reason=reason,
                         src=d.src, dst=d.dst, sport=d.sport, dport=d.dport,
                         len=len(d.payload))

    def on_datagram(self, d: Datagram, now: int, raw: bytes = b"") -> None:
        """A datagram for us (checksum verified by the codec); ``raw``: its IP packet, which
        an ICMP port unreachable quotes."""
        st = self.stack
        st.counters["udp_in"] += 1
        if st.tracer is not None:
            st._trace_ev(now, "udp", dir="in", src=d.src, dst=d.dst, sport=d.sport,
                         dport=d.dport, len=len(d.payload))
        ep = self._lookup(d.dst, d.dport, d.src, d.sport)
        if ep is None:
            self._drop(d, "udp_no_port", "udp-no-port", now)
            # RFC 1122 4.1.3.1: port unreachable, never for a broadcast or multicast
            # destination (RFC 1122 3.2.2) or source
            if d.dst == _BROADCAST or d.dst.startswith("ff") or d.src == _BROADCAST:
                return
            if self._icmp_allowed(now):
                self._emit_icmp(port_unreachable(raw, d), now)
            else:
                st.counters["icmp_ratelimited"] += 1
            return
        n = len(d.payload)
        if ep.queue and ep.queued + n > ep.rcvbuf:
            ep.dropped += 1
            self._drop(d, "udp_dropped_rcvbuf", "udp-rcvbuf-full", now)
            return
        ep.queue.append((d.payload, (d.src, d.sport)))
        ep.queued += n
        if ep.watcher is not None:
            st.changed.add(ep)

    def on_icmp(self, e: IcmpError, now: int) -> None:
        """An ICMP/ICMPv6 error for us: find the socket its quote names and act (module doc)."""
        st = self.stack
        st.counters["icmp_in"] += 1
        self._trace_icmp("in", e, now)
        kind = e.kind
        if kind in _PMTU:
            st.counters["icmp_pmtu_ignored"] += 1
            return
        conv = ICMP_ERRNO.get(kind)
        if conv is None:
            st.counters["icmp_ignored"] += 1
            return
        err = conv[1] if e.version == 6 else conv[0]
        hard = conv[2]
        if e.proto == PROTO_UDP:
            ep = self._lookup(e.qsrc, e.qsport, e.qdst, e.qdport)
            if ep is None or ep.peer != (e.qdst, e.qdport) or not hard:
                st.counters["icmp_ignored"] += 1
                return
            ep.error = err
            st.counters["icmp_udp_error"] += 1
            st._trace_ev(now, "error", conn=f"udp {ep.addr}:{ep.port}>{e.qdst}:{e.qdport}",
                         errno=err, message=f"{errno.errorcode.get(err, err)}: ICMP {kind}")
            if ep.watcher is not None:
                st.changed.add(ep)
            return
        if e.proto == PROTO_TCP:
            self._tcp_error(e, kind, err, hard, now)
            return
        st.counters["icmp_ignored"] += 1

    def _tcp_error(self, e: IcmpError, kind: str, err: int, hard: bool, now: int) -> None:
        st = self.stack
        tcb = st._tcbs.get((e.qsrc, e.qsport, e.qdst, e.qdport))
        if tcb is None:
            st.counters["icmp_ignored"] += 1
            return
        # RFC 5927 4.1: the quoted sequence number must be one we sent and is unacknowledged
        seq = unwrap(tcb.snd_una, e.qseq)
        if not tcb.snd_una <= seq < max(tcb.snd_max, tcb.snd_una + 1):
            st.counters["icmp_bad_seq"] += 1
            st._trace_ev(now, "drop", dir="in", proto="icmp", reason="icmp-bad-seq",
                         conn=tcb.conn, kind=kind)
            return
        if hard and tcb.state is SYN_SENT:
            # RFC 1122 4.2.3.9: a hard error may abort; Linux does so in SYN-SENT
            st.counters["icmp_tcp_aborted"] += 1
            tcb._fail(err, f"ICMP {kind} in SYN_SENT", now)
            return
        # RFC 5927 4.2 / RFC 1122 4.2.3.9: soft in synchronized states (and soft kinds)
        st.counters["icmp_tcp_soft"] += 1
        self.soft_errors[tcb] = err

    def tcb_closed(self, tcb: Tcb, now: int = 0) -> None:
        """A connection closed: a timeout reports its soft ICMP error instead (Linux's
        tcp_write_err: sk_err_soft ?: ETIMEDOUT)."""
        soft = self.soft_errors.pop(tcb, None)
        if soft is not None and tcb.error == errno.ETIMEDOUT:
            tcb.error = soft

    # ------------------------------------------------------------------ inspection
    def endpoints(self) -> list[UdpEndpoint]:
        return [ep for eps in self._ports.bindings.values() for ep in eps]

    def info(self) -> dict[str, Any]:
        return {"endpoints": len(self.endpoints()), "icmp_tokens": self._tokens}
