"""What ``inject`` rules need: the connections as the engine sees them on the wire, the
triggers that are not segments (``on=STATE``, ``at=MS``) and the segments waiting to go.

The :class:`Injector` exists only when an engine has inject rules, so an engine without them
does no per-segment work for it. It learns each connection's numbers from the segments that
pass (rawtcp's side is the local one: ``out`` segments are ours, ``in`` the peer's)::

    snd_nxt  the end of the highest sequence we sent (+SYN, +FIN)
    snd_una  the highest acknowledgment the peer sent
    rcv_nxt  the highest of our acknowledgments and the in-order end of the peer's segments
    rcv_wnd  our last advertised window, scaled (RFC 7323 2.3) once both SYNs had wscale
    snd_wnd  the peer's last advertised window, scaled the same way
    iss/irs  the ISNs of our SYN and of the peer's

These are the values the peer sees, so they stay known after rawtcp's TCB is gone (a segment
aimed at the kernel's TIME-WAIT). Crafted segments wait in a queue per direction and leave
through ``FaultEngine.release_due(now, direction)``: ``out`` ones to the link, ``in`` ones to
rawtcp's stack; they are built when they leave, from the numbers of that moment.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from rawtcp.core.segment import ACK, SYN, Packet, Segment
from rawtcp.faults.forge import craft
from rawtcp.faults.grammar import Rule

__all__ = ["Conn", "Injector"]

_MOD = 1 << 32
_HALF = 1 << 31
MAX_CONNS = 4096
POLL_US = 10_000          # how often on= rules look at connections with no segment passing
MAX_POLLED = 64           # connections looked at per poll
_OPENING = (None, "SYN_SENT", "SYN_RECEIVED")
_SYNCHRONIZED = ("ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",
                 "LAST_ACK", "TIME_WAIT")


def _after(a: int, b: int) -> bool:
    """a is later than b in sequence space (RFC 9293 3.4)."""
    return 0 < (a - b) % _MOD < _HALF


class Conn:
    """One connection as seen on the wire from rawtcp's side."""

    __slots__ = ("addr", "first_t", "fired", "irs", "iss", "our_ws", "peer_wnd", "peer_ws",
                 "rcv_nxt", "snd_nxt", "snd_una", "state", "ts_in", "ts_out", "wnd")

    def __init__(self, addr: tuple[str, int, str, int], now: int) -> None:
        self.addr = addr
        self.first_t = now
        self.fired: set[int] = set()
        self.iss = self.irs = self.snd_nxt = self.snd_una = self.rcv_nxt = None
        self.wnd = self.peer_wnd = 0
        self.our_ws: int | None = None
        self.peer_ws: int | None = None
        self.ts_out: tuple[int, int] | None = None
        self.ts_in: tuple[int, int] | None = None
        self.state: str | None = None

    def saw_out(self, s: Segment) -> None:
        f = s.flags
        if f & SYN:
            self.iss = s.seq
            self.our_ws = s.options.wscale
            if self.snd_una is None:
                self.snd_una = s.seq
        end = (s.seq + s.seq_len) % _MOD
        if self.snd_nxt is None or _after(end, self.snd_nxt):
            self.snd_nxt = end
        if f & ACK:
            if self.rcv_nxt is None or _after(s.ack, self.rcv_nxt):
                self.rcv_nxt = s.ack
            if not f & SYN:
                self.wnd = s.window
        if s.options.timestamps is not None:
            self.ts_out = s.options.timestamps

    def saw_in(self, s: Segment) -> None:
        f = s.flags
        if f & SYN:
            self.irs = s.seq
            self.peer_ws = s.options.wscale
            if self.rcv_nxt is None:
                self.rcv_nxt = (s.seq + 1) % _MOD
        elif self.rcv_nxt is not None and s.seq == self.rcv_nxt and s.seq_len:
            self.rcv_nxt = (s.seq + s.seq_len) % _MOD    # in order: the receiver takes it
        if f & ACK:
            if self.snd_una is None or _after(s.ack, self.snd_una):
                self.snd_una = s.ack
            if not f & SYN:
                self.peer_wnd = s.window
        if s.options.timestamps is not None:
            self.ts_in = s.options.timestamps

    def values(self) -> dict[str, int]:
        scaled = self.our_ws is not None and self.peer_ws is not None
        rcv_wnd = self.wnd << self.our_ws if scaled else self.wnd
        snd_wnd = self.peer_wnd << self.peer_ws if scaled else self.peer_wnd
        snd_nxt = self.snd_nxt or 0
        return {
            "snd_una": self.snd_una if self.snd_una is not None else snd_nxt,
            "snd_nxt": snd_nxt, "rcv_nxt": self.rcv_nxt or 0, "rcv_wnd": rcv_wnd,
            "window": rcv_wnd, "snd_wnd": snd_wnd, "iss": self.iss or 0, "irs": self.irs or 0,
        }


class Injector:
    """The inject side of a FaultEngine (see the module docstring)."""

    def __init__(self, rules: list[tuple[int, Rule]],
                 state_of: Callable[[], Callable[[Packet, str], Any] | None],
                 trace: Callable[[int, Rule, str, Packet, dict], None]) -> None:
        self.timed = [(i, r) for i, r in rules if r.on is not None or r.at is not None]
        self.on_rules = [(i, r) for i, r in self.timed if r.on is not None]
        self.at_rules = [(i, r) for i, r in self.timed if r.at is not None]
        self._state_of = state_of
        self._trace = trace
        self.conns: dict[tuple[str, int, str, int], Conn] = {}
        self._queues: dict[str, list[tuple[int, int, Rule, tuple, int]]] = {"in": [], "out": []}
        self._n = itertools.count()
        self._at: list[tuple[int, int, int, tuple]] = []      # (deadline, n, rule index, conn)
        self._dirty: set[tuple[str, int, str, int]] = set()
        self.check_at: int | None = None
        # on= rules also look every POLL_US at the connections they may still fire for, so
        # that a change made by a timer (TIME_WAIT -> CLOSED) is seen with no segment
        self._poll_at: int | None = None
        self.sent = 0

    # -- learning ---------------------------------------------------------------------------
    def observe(self, direction: str, pkt: Packet, now: int) -> tuple[str, int, str, int]:
        s = pkt.segment
        if direction == "out":
            key = (pkt.src, s.src_port, pkt.dst, s.dst_port)
        else:
            key = (pkt.dst, s.dst_port, pkt.src, s.src_port)
        c = self.conns.get(key)
        if c is None or (s.flags & SYN and not s.flags & ACK and (
                c.iss not in (None, s.seq) if direction == "out"
                else c.irs not in (None, s.seq))):
            c = self._new_conn(key, now)        # a new connection on the same four-tuple
        if direction == "out":
            c.saw_out(s)
        else:
            c.saw_in(s)
        if self.on_rules:
            self._check(key, now)
            if self._poll_at is None and self._waiting():
                self._poll_at = now + POLL_US
            if direction == "in":
                self._dirty.add(key)
                self.check_at = now              # again once the stack took it (release_due)
        return key

    def _new_conn(self, key: tuple[str, int, str, int], now: int) -> Conn:
        c = Conn(key, now)
        self.conns.pop(key, None)
        self.conns[key] = c
        if len(self.conns) > MAX_CONNS:
            self.conns.pop(next(iter(self.conns)))
        for i, r in self.at_rules:
            heapq.heappush(self._at, (now + round((r.at or 0.0) * 1000), next(self._n), i, key))
        return c

    def _check(self, key: tuple[str, int, str, int], now: int) -> None:
        fn = self._state_of()
        c = self.conns.get(key)
        if fn is None or c is None:
            return
        local, lport, remote, rport = key
        st = fn(Packet(local, remote, Segment(lport, rport, 0)), "out")
        name = None if st is None else str(getattr(st, "name", st)).upper()
        if name is None:
            if c.state is None:
                return
            name = "CLOSED"                      # the TCB is gone
        if name == c.state:
            return
        entered = [name]
        if c.state in _OPENING and name in _SYNCHRONIZED and name != "ESTABLISHED":
            entered.insert(0, "ESTABLISHED")     # it went by between two looks
        c.state = name
        for st in entered:
            for i, r in self.on_rules:
                if r.on is not None and st in r.on and i not in c.fired:
                    c.fired.add(i)
                    r.matched += 1
                    self.fire(r, key, now)

    # -- firing -----------------------------------------------------------------------------
    def fire(self, r: Rule, key: tuple[str, int, str, int], now: int) -> None:
        """Queue the rule's segments for this connection (built when they leave)."""
        spec = r.send
        assert spec is not None
        q = self._queues[spec.direction]
        for k in range(spec.count):
            heapq.heappush(q, (now + round(k * spec.every * 1000), next(self._n), r, key, k))

    def _waiting(self) -> list[tuple[str, int, str, int]]:
        """Connections not known to be closed for which an on= rule has not fired yet."""
        n = len(self.on_rules)
        return [k for k, c in self.conns.items() if c.state != "CLOSED" and len(c.fired &
                {i for i, _r in self.on_rules}) < n]

    def next_at(self) -> int | None:
        times = [q[0][0] for q in self._queues.values() if q]
        if self._at:
            times.append(self._at[0][0])
        if self.check_at is not None:
            times.append(self.check_at)
        if self._poll_at is not None:
            times.append(self._poll_at)
        return min(times, default=None)

    def due(self, now: int, direction: str | None, rules: list[Rule]) -> list[Any]:
        """Segments whose time came (for ``direction``, or both), after the state checks
        and ``at=`` triggers due by ``now``."""
        if self.check_at is not None and self.check_at <= now:
            self.check_at = None
            dirty, self._dirty = self._dirty, set()
            for key in dirty:
                self._check(key, now)
        if self._poll_at is not None and self._poll_at <= now:
            waiting = self._waiting()
            for key in waiting[:MAX_POLLED]:
                self._check(key, now)
            self._poll_at = now + POLL_US if self._waiting() else None
        while self._at and self._at[0][0] <= now:
            _t, _n, i, key = heapq.heappop(self._at)
            c = self.conns.get(key)
            if c is not None and i not in c.fired:
                c.fired.add(i)
                r = rules[i]
                r.matched += 1
                self.fire(r, key, now)
        out: list[Any] = []
        for d in (("in", "out") if direction is None else (direction,)):
            q = self._queues[d]
            while q and q[0][0] <= now:
                _t, _n, r, key, k = heapq.heappop(q)
                pkt = self.build(r, key, k)
                if pkt is None:
                    continue
                if r.on is not None or r.at is not None:
                    r.applied += 1 if k == 0 else 0
                self.sent += 1
                self._trace(now, r, d, pkt, {"i": k})
                out.append((now, pkt, False))
        return out

    def build(self, r: Rule, key: tuple[str, int, str, int], k: int) -> Packet | None:
        c = self.conns.get(key)
        spec = r.send
        if c is None or spec is None:
            return None
        out = spec.direction == "out"
        ts = None
        if c.ts_out is not None and c.ts_in is not None:   # timestamps were negotiated
            ts = c.ts_out if out else c.ts_in
        win = c.wnd if out else c.peer_wnd
        return craft(spec, c.values(), key, k, ts, win)
