"""Segment-level test harness (imported as ``core_harness``: a module named ``conftest``
is ambiguous when several test directories have one) in the style of smoltcp's tcp.rs.

``Harness`` wraps one core Stack on a virtual clock. The peer is us, the test: we craft its
segments with ``from_peer(...)`` (peer -> stack) and state what the stack must send with
``to_peer(...)`` (stack -> peer). ``send(seg, at=t)`` delivers; ``recv([...], at=t)`` runs
timers up to t and asserts exactly these segments were sent, nothing else;
``recv_nothing(at=t)``.

Numbers: our ISS is ``ISS`` (injected ISN generator), the peer's is ``PISS``. Fixtures put a
connection in each RFC 9293 state with options off (MSS only), rcvbuf 64000, RTO 200 ms
(rto_min, after one 10 ms RTT sample), delayed ACK 40 ms.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from rawtcp.core.config import MS, SEC, Config
from rawtcp.core.segment import Flags, Options, Packet, Segment, parse_flags
from rawtcp.core.seq import MASK
from rawtcp.core.stack import Stack
from rawtcp.core.tcb import State, Tcb

US = "10.0.0.1"
PEER = "10.0.0.2"
LPORT = 80
RPORT = 49152
ISS = 1000          # ours
PISS = 5000         # the peer's
RCVBUF = 64000
MSS = 1460
RTT = 10 * MS
RTO = 200 * MS


def plain_config(**kw) -> Config:
    base = dict(window_scaling=False, sack=False, timestamps=False, rcvbuf=RCVBUF,
                sndbuf=RCVBUF, msl=30 * SEC, quickack=0)
    base.update(kw)
    # the window scale covers rmem_max (as Linux's covers its largest buffer): keep it at the
    # buffer so the scale these tests expect follows from rcvbuf alone
    base.setdefault("rmem_max", max(2048, base["rcvbuf"]))
    return Config(**base)


def _flags(f: str | Flags) -> Flags:
    return parse_flags(f) if isinstance(f, str) else f


def from_peer(seq: int = PISS + 1, ack: int = ISS + 1, flags: str | Flags = "A",
              win: int = 64000, payload: bytes = b"", opts: Options = Options(),
              sport: int = RPORT, dport: int = LPORT) -> Segment:
    """A segment from the peer to the stack (absolute seq/ack, masked)."""
    return Segment(sport, dport, seq & MASK, ack & MASK, _flags(flags), win, opts, payload)


def to_peer(seq: int = ISS + 1, ack: int = PISS + 1, flags: str | Flags = "A",
            win: int = RCVBUF, payload: bytes = b"", opts: Options = Options(),
            sport: int = LPORT, dport: int = RPORT) -> Segment:
    """A segment the stack must send to the peer."""
    f = _flags(flags)
    return Segment(sport, dport, seq & MASK, (ack & MASK) if f & Flags.ACK else 0, f, win,
                   opts, payload)


class Harness:
    def __init__(self, config: Config | None = None, iss: int = ISS,
                 isn: Callable[..., int] | None = None) -> None:
        """``isn`` (called as the Stack calls its ISN generator) replaces the constant
        ``iss``."""
        self.events: list[dict] = []
        self.stack = Stack(config or plain_config(), isn=isn or (lambda *a: iss),
                           rng=random.Random(7), tracer=self.events.append)
        self.now = 0
        self.tcb: Tcb | None = None
        self.listener = None
        self._pending: list[Packet] = []   # sent by the stack, not yet taken by the test

    # --- driving ---------------------------------------------------------------------
    def _advance(self, at: int | None) -> None:
        if at is None:
            at = self.now
        assert at >= self.now, "time goes forward"
        while True:
            d = self.stack.poll_at()
            if d is None or d > at:
                break
            self.now = max(self.now, d)
            self.stack.on_timer(d)
            self._pending.extend(self.stack.take_packets())
        self.now = at

    def send(self, seg: Segment, at: int | None = None, src: str = PEER, dst: str = US) -> None:
        """Deliver a peer segment at time ``at`` (timers due before it fire first)."""
        self._advance(at)
        self.stack.on_packet(Packet(src, dst, seg), self.now)
        self._pending.extend(self.stack.take_packets())

    def take(self, at: int | None = None) -> list[Segment]:
        self._advance(at)
        self._pending.extend(self.stack.take_packets())
        out = [pk.segment for pk in self._pending]
        self._pending = []
        return out

    def recv(self, expected: list[Segment], at: int | None = None) -> None:
        """Exactly these segments were sent up to time ``at``, nothing else."""
        got = self.take(at)
        assert got == expected, "\n got: " + "\n      ".join(map(str, got)) + \
            "\n want: " + "\n      ".join(map(str, expected))

    def recv_nothing(self, at: int | None = None) -> None:
        self.recv([], at)

    def state_events(self) -> list[tuple[str, str]]:
        return [(e["old"], e["new"]) for e in self.events if e["ev"] == "state"]

    # --- reaching states ----------------------------------------------------------------
    def listen(self, backlog: int = 4):
        self.listener = self.stack.listen(self.stack.bind(US, LPORT), backlog)
        return self.listener

    def passive_open(self) -> Tcb:
        """LISTEN -> SYN_RECEIVED -> ESTABLISHED at t = RTT."""
        self.listen()
        self.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=0)
        self.recv([to_peer(seq=ISS, flags="SA", win=min(RCVBUF, 65535), opts=Options(mss=MSS))])
        self.send(from_peer(), at=RTT)
        self.recv_nothing()
        t = self.listener.accept()
        assert t is not None and t.state is State.ESTABLISHED
        self.tcb = t
        return t

    def connect(self) -> Tcb:
        """CLOSED -> SYN_SENT at the current time: bind US:LPORT and connect to PEER:RPORT.
        The SYN is left for the test to ``recv``."""
        self.tcb = self.stack.connect(self.stack.bind(US, LPORT), US, PEER, RPORT, self.now)
        return self.tcb

    def active_open(self) -> Tcb:
        """CLOSED -> SYN_SENT -> ESTABLISHED at t = RTT (port LPORT is ours, bound)."""
        self.connect()
        self.recv([to_peer(seq=ISS, ack=0, flags="S", win=min(RCVBUF, 65535),
                           opts=Options(mss=MSS))])
        self.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA", opts=Options(mss=MSS)), at=RTT)
        self.recv([to_peer()])
        assert self.tcb.state is State.ESTABLISHED
        return self.tcb
