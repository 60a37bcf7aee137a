"""An echo server inside a link: rawtcp's own cost per connection, without a kernel.

:class:`EchoPeerLink` is a :class:`~rawtcp.link.base.Link` whose far end answers every
segment the way a Linux echo server (``accept``, ``recv``, ``sendall`` back, ``close`` at
EOF) answers rawtcp's client in the connection-rate test, and does it inside ``send_many``:

- SYN: SYN-ACK with the options Linux offers back (MSS for the link's MTU, SACK-permitted,
  timestamps and window scale 7, each only if the SYN offered it; RFC 7323, RFC 2018);
- data: an ACK at once (Linux's quick ACKs at the start of a connection), then the same
  bytes back (the server's write), PSH set;
- FIN: FIN-ACK (the server reads EOF and closes at once);
- the ACK of that FIN, or an RST: the connection is forgotten.

Everything else (a segment of no connection it knows, a bad packet) is ignored and counted.
The answers wait in a queue that ``recv_batch`` hands out, and the link's fd (an eventfd) is
readable while they wait, as a TUN device's fd is: a thread that owns the receive side reads
them right after its write, and the loop thread finds what a timer's segment caused.

Nothing here is a kernel: no retransmission, no windows, no congestion control. What it
measures is the CPU rawtcp spends per connection (its sockets, runtime, core and codec)
without the kernel's share and its noise: ``scripts/bench_connpath.py --virtual``.
"""

from __future__ import annotations

from rawtcp.core.segment import ACK, FIN, NO_OPTIONS, PSH, RST, SYN, Options, Packet, Segment
from rawtcp.link.memory import MemoryLink
from rawtcp.wire import ParseError, decode_ip, encode_ip

MAX_CONNECTIONS = 65_536     # the peer forgets the oldest half beyond this (bounded memory)
WINDOW = 502                 # the window field it sends (x 128: Linux's first few windows)
WSCALE = 7
MASK = 0xFFFFFFFF


class EchoPeerLink(MemoryLink):
    """A link to an in-process echo server at ``peer`` (any port) for ``local``: a
    MemoryLink whose far end is the server (its answers wait in this link's queue)."""

    def __init__(self, local: str = "10.9.0.1", peer: str = "10.9.0.2", mtu: int = 1500) -> None:
        super().__init__(local, name=f"echo-peer-{peer}", mtu=mtu)
        self.peer_addr = peer
        # (peer port, our port) -> [next seq we send, next seq we expect, FIN sent]
        self._conns: dict[tuple[int, int], list] = {}
        self._clock = 1            # the peer's timestamp clock: one tick per segment it sends
        self._iss = 0x10000

    def send(self, ip_packet: bytes) -> None:
        self._check_open()
        self._check_size(ip_packet)
        self.counters["tx_packets"] += 1
        try:
            pkt = decode_ip(ip_packet)
        except ParseError:
            self.counters["peer_ignored"] += 1
            return
        for answer in self._answer(pkt):
            self._deliver(answer)

    @property
    def connections(self) -> int:
        """Connections the peer still knows (opened and not yet closed both ways)."""
        return len(self._conns)

    # ------------------------------------------------------------------ the echo server
    def _answer(self, pkt: Packet) -> list[bytes]:
        s = pkt.segment
        if pkt.dst != self.peer_addr:
            self.counters["peer_ignored"] += 1
            return []
        key = (s.dst_port, s.src_port)
        f = s.flags
        if f & RST:
            self._conns.pop(key, None)
            return []
        if f & SYN:
            if f & ACK:
                self.counters["peer_ignored"] += 1
                return []
            return [self._syn_ack(pkt, key)]
        c = self._conns.get(key)
        if c is None or not f & ACK:
            self.counters["peer_ignored"] += 1
            return []
        out = []
        n = len(s.payload)
        if n and s.seq == c[1]:
            c[1] = (c[1] + n) & MASK
            out.append(self._reply(pkt, c, ACK))        # quick ACK, before the server reads
            out.append(self._reply(pkt, c, ACK | PSH, bytes(s.payload)))
            c[0] = (c[0] + n) & MASK
        if f & FIN and (s.seq + n) & MASK == c[1]:
            c[1] = (c[1] + 1) & MASK
            out.append(self._reply(pkt, c, FIN | ACK))
            c[0] = (c[0] + 1) & MASK
            c[2] = True
        elif not n and c[2] and s.ack == c[0]:
            del self._conns[key]            # the ACK of our FIN: closed
        return out

    def _syn_ack(self, pkt: Packet, key: tuple[int, int]) -> bytes:
        s = pkt.segment
        o = s.options
        if len(self._conns) >= MAX_CONNECTIONS:
            for k in list(self._conns)[: MAX_CONNECTIONS // 2]:
                del self._conns[k]
        self._iss = (self._iss + 0x10001) & MASK
        c = self._conns[key] = [self._iss, (s.seq + 1) & MASK, False]
        self._clock += 1
        opts = Options(
            mss=self.mtu - 40,
            wscale=WSCALE if o.wscale is not None else None,
            sack_permitted=o.sack_permitted,
            timestamps=(self._clock, o.timestamps[0]) if o.timestamps is not None else None,
        )
        c[0] = (c[0] + 1) & MASK
        seg = Segment(s.dst_port, s.src_port, self._iss, c[1], SYN | ACK, 65535, opts)
        return encode_ip(Packet(pkt.dst, pkt.src, seg))

    def _reply(self, pkt: Packet, c: list, flags: int, payload: bytes = b"") -> bytes:
        s = pkt.segment
        ts = s.options.timestamps
        self._clock += 1
        opts = Options(timestamps=(self._clock, ts[0])) if ts is not None else NO_OPTIONS
        seg = Segment(s.dst_port, s.src_port, c[0], c[1], flags, WINDOW, opts, payload)
        return encode_ip(Packet(pkt.dst, pkt.src, seg))

