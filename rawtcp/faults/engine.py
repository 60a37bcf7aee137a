"""The fault engine: match rules against packets, apply their actions, keep held packets.

See the package docstring (:mod:`rawtcp.faults`) for the interface and the duties of the
caller; the rule language is :mod:`rawtcp.faults.grammar`.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from rawtcp.core.datagram import Datagram
from rawtcp.core.segment import Flags, Packet, flags_str
from rawtcp.faults.forge import apply_changes
from rawtcp.faults.grammar import Rule
from rawtcp.faults.inject import Injector
from rawtcp.faults.release import Delivery, ReleaseQueue

__all__ = ["Delivery", "FaultEngine"]

_MOD = 1 << 32
_DIRECTIONS = ("in", "out")


class _View:
    """Per-packet lazy facts shared by all rules (state and Scapy packet computed once)."""

    __slots__ = ("_engine", "_scapy", "_state", "_state_done", "direction", "now", "pkt",
                 "proto", "rack", "rseq")

    def __init__(self, engine: FaultEngine, direction: str, pkt: Packet, now: int) -> None:
        self.pkt = pkt
        self.now = now
        self.direction = direction
        self._engine = engine
        self._state_done = False
        self._state: str | None = None
        self._scapy: Any = None
        if type(pkt) is Packet:
            self.proto = "tcp"
            self.rseq, self.rack = engine._relative(pkt)
        else:                       # a UDP datagram or an ICMP error (rawtcp.core.udp)
            self.proto = "udp" if type(pkt) is Datagram else "icmp"
            self.rseq = self.rack = None

    @property
    def state(self) -> str | None:
        if not self._state_done:
            self._state_done = True
            fn = self._engine.state_of
            tcp = self.proto == "tcp"
            st = fn(self.pkt, self.direction) if fn is not None and tcp else None
            self._state = None if st is None else str(getattr(st, "name", st)).upper()
        return self._state

    @property
    def scapy(self) -> Any:
        if self._scapy is None:
            from rawtcp.trace import to_scapy

            self._scapy = to_scapy(self.pkt)
        return self._scapy


@dataclass
class _Verdict:
    """What the rules decided for one packet so far."""

    delay_us: int = 0
    copies: int = 1
    corrupt: bool = False
    dropped: bool = False
    hold: Rule | None = None
    view: _View | None = None        # mangle rewrites view.pkt
    ttl: int | None = None
    inject: list[Rule] | None = None


# ------------------------------------------------------------------------------ the actions
# One function per action: it changes the verdict and returns the extra trace fields.

def _drop(r: Rule, v: _Verdict) -> dict[str, Any]:
    v.dropped = True
    return {}


def _delay(r: Rule, v: _Verdict) -> dict[str, Any]:
    v.delay_us += r.delay_us
    return {"ms": r.ms}


def _duplicate(r: Rule, v: _Verdict) -> dict[str, Any]:
    n = r.copies or 1
    v.copies += n
    return {"copies": n}


def _corrupt(r: Rule, v: _Verdict) -> dict[str, Any]:
    v.corrupt = True
    return {}


def _reorder(r: Rule, v: _Verdict) -> dict[str, Any]:
    if v.hold is not None:       # the first reorder rule holds the packet; later ones count
        return {}
    v.hold = r
    return {"after": r.after or 1, "max_ms": r.max_hold_us / 1000}


def _mangle(r: Rule, v: _Verdict) -> dict[str, Any]:
    view = v.view
    assert view is not None
    old = view.pkt.segment
    pkt, ttl, corrupt = apply_changes(view.pkt, r.changes)
    view.pkt = pkt
    if ttl is not None:
        v.ttl = ttl
    v.corrupt = v.corrupt or corrupt
    new = pkt.segment
    diff: dict[str, Any] = {"set": " ".join(c.text for c in r.changes)}
    for name, a, b in (("seq", old.seq, new.seq), ("ack", old.ack, new.ack),
                       ("win", old.window, new.window), ("len", len(old.payload),
                                                         len(new.payload))):
        if a != b:
            diff[f"{name}_was"] = a
    if old.flags != new.flags:
        diff["flags_was"] = flags_str(old.flags)
    if old.options != new.options:
        diff["options"] = new.options.to_dict()
    if ttl is not None:
        diff["ttl"] = ttl
    return diff


def _inject(r: Rule, v: _Verdict) -> dict[str, Any]:
    if v.inject is None:
        v.inject = []
    v.inject.append(r)
    return {}


_ACTIONS: dict[str, Callable[[Rule, _Verdict], dict[str, Any]]] = {
    "drop": _drop, "delay": _delay, "duplicate": _duplicate, "corrupt": _corrupt,
    "reorder": _reorder, "mangle": _mangle, "inject": _inject,
}


@dataclass
class _Held:
    deadline: int
    remaining: int
    direction: str
    items: list[Delivery]
    rule: Rule


class FaultEngine:
    """``FaultEngine(rules, seed=0, tracer=None, state_of=None, hold_delays=False)``: see the
    package docstring."""

    MAX_ISNS = 65536

    def __init__(
        self,
        rules: Iterable[Rule],
        seed: int = 0,
        tracer: Callable[[dict], None] | None = None,
        state_of: Callable[[Packet, str], str | None] | None = None,
        hold_delays: bool = False,
    ) -> None:
        self.rules: list[Rule] = []
        self._rngs: list[random.Random] = []
        for i, r in enumerate(rules):
            if not isinstance(r, Rule):
                raise OSError(errno.EINVAL, f"fault rule {i} is {type(r).__name__}, not a Rule "
                              "(build rules with parse_rule(action, text))")
            own = replace(r, matched=0, applied=0, errors=0)
            self.rules.append(own)
            rseed: Any = r.seed if r.seed is not None else f"rawtcp-fault:{seed}:{i}"
            self._rngs.append(random.Random(rseed))
        self.seed = seed
        self.tracer = tracer
        self.state_of = state_of
        self.hold_delays = hold_delays
        self._isn: dict[tuple[str, int, str, int], int] = {}
        self._held: list[_Held] = []
        self._delayed = {d: ReleaseQueue() for d in _DIRECTIONS}   # used with hold_delays
        # inject: a segment trigger fires once unless count= says more
        self._limit = [r.count if r.count is not None or r.action != "inject" else 1
                       for r in self.rules]
        # rules that never match a segment (inject on=/at=) stay out of the per-packet loop
        self._seg_rules = [(i, r) for i, r in enumerate(self.rules)
                           if not (r.action == "inject" and (r.on is not None or r.at is not None))]
        injects = [(i, r) for i, r in enumerate(self.rules) if r.action == "inject"]
        self.injector: Injector | None = (
            Injector(injects, lambda: self.state_of, self._trace_inject) if injects else None)
        # TTLs mangle rules set, for whoever encodes the packet: ttl_for(pkt)
        self._ttl: dict[int, tuple[Packet, int]] = {}

    # -- ISN bookkeeping for relative numbers -----------------------------------------------
    def _learn(self, pkt: Packet) -> None:
        if type(pkt) is not Packet:
            return
        s = pkt.segment
        if s.flags & Flags.SYN:
            key = (pkt.src, s.src_port, pkt.dst, s.dst_port)
            self._isn.pop(key, None)
            self._isn[key] = s.seq
            if len(self._isn) > self.MAX_ISNS:
                self._isn.pop(next(iter(self._isn)))

    def _relative(self, pkt: Packet) -> tuple[int | None, int | None]:
        s = pkt.segment
        isn = self._isn.get((pkt.src, s.src_port, pkt.dst, s.dst_port))
        irs = self._isn.get((pkt.dst, s.dst_port, pkt.src, s.src_port))
        rseq = (s.seq - isn) % _MOD if isn is not None else None
        rack = (s.ack - irs) % _MOD if irs is not None and s.flags & Flags.ACK else None
        return rseq, rack

    # -- matching ---------------------------------------------------------------------------
    def _matches(self, r: Rule, v: _View) -> bool:
        if r.dir != "any" and r.dir != v.direction:
            return False
        if r.proto is not None and r.proto != v.proto:
            return False
        if v.proto != "tcp":
            return self._matches_other(r, v)
        s = v.pkt.segment
        if r.flags is not None and not r.flags(int(s.flags)):
            return False
        if r.len is not None and not r.len(len(s.payload)):
            return False
        if r.seq is not None:
            if r.seq.absolute:
                if not r.seq(s.seq):
                    return False
            elif v.rseq is None or not r.seq(v.rseq):
                return False
        if r.states is not None:
            st = v.state
            if st is None or (st in r.states) == r.states_negate:
                return False
        return self._predicate(r, v)

    def _matches_other(self, r: Rule, v: _View) -> bool:
        """A UDP datagram or ICMP error: TCP-only conditions (flags, state, seq) never match;
        len is the UDP payload (the quoted bytes of an ICMP error)."""
        if r.flags is not None or r.seq is not None or r.states is not None:
            return False
        pkt = v.pkt
        n = len(pkt.payload) if v.proto == "udp" else len(pkt.quote)
        if r.len is not None and not r.len(n):
            return False
        return self._predicate(r, v)

    def _predicate(self, r: Rule, v: _View) -> bool:
        if r.predicate is not None:
            try:
                if not r.predicate(v.scapy):
                    return False
            except Exception as e:  # noqa: BLE001 - a user hook must not kill the stack
                # A predicate that raises counts as "no match"; the error is counted and traced.
                r.errors += 1
                if self.tracer is not None:
                    self.tracer({
                        "t": v.now, "ev": "error", "errno": errno.EINVAL,
                        "message": f"fault predicate of {r.action} {r.text!r} raised "
                                   f"{type(e).__name__}: {e}",
                    })
                return False
        return True

    def _fires(self, i: int, r: Rule) -> bool:
        if r.nth is not None and r.matched != r.nth:
            return False
        limit = self._limit[i]
        if limit is not None and r.applied >= limit:
            return False
        return r.p is None or self._rngs[i].random() < r.p

    # -- the interface ----------------------------------------------------------------------
    def process(self, direction: str, pkt: Packet, now: int) -> list[Delivery]:
        """Apply the rules to one packet; returns what to deliver (see the package
        docstring)."""
        if direction not in _DIRECTIONS:
            raise OSError(errno.EINVAL, f"direction must be 'in' or 'out', not {direction!r}")
        if not self.rules:
            return [(now, pkt, False)]
        self._learn(pkt)
        injector = self.injector
        conn = None
        if injector is not None and type(pkt) is Packet:
            conn = injector.observe(direction, pkt, now)
        view = _View(self, direction, pkt, now)
        verdict = _Verdict(view=view)
        for i, r in self._seg_rules:
            if not self._matches(r, view):
                continue
            r.matched += 1
            if not self._fires(i, r):
                continue
            r.applied += 1
            extra = _ACTIONS[r.action](r, verdict)
            if r.action != "inject":   # an inject rule traces the segments it sends
                self._trace(now, r, view, extra)
            if r.action == "mangle":
                view.rseq, view.rack = self._relative(view.pkt)
            if verdict.dropped:
                break
        if verdict.inject and injector is not None and conn is not None:
            for r in verdict.inject:
                injector.fire(r, conn, now)
        if verdict.dropped:
            return []
        pkt = view.pkt
        if verdict.ttl is not None:
            self._ttl[id(pkt)] = (pkt, verdict.ttl)
            if len(self._ttl) > 4096:
                self._ttl.pop(next(iter(self._ttl)))
        items: list[Delivery] = [(now + verdict.delay_us, pkt, verdict.corrupt)
                                 for _ in range(verdict.copies)]
        if verdict.hold is not None:
            deadline = now + verdict.hold.max_hold_us
            self._held.append(_Held(deadline, verdict.hold.after or 1, direction, items,
                                    verdict.hold))
            return []
        out = items
        self._passed(direction, now, out)
        return self._keep_delayed(direction, now, out)

    def _keep_delayed(self, direction: str, now: int, items: list[Delivery]) -> list[Delivery]:
        """With hold_delays, deliveries for later wait here; the rest go out now."""
        if not self.hold_delays:
            return items
        later = [d for d in items if d[0] > now]
        if not later:
            return items
        self._delayed[direction].push(later)
        return [d for d in items if d[0] <= now]

    def _passed(self, direction: str, now: int, out: list[Delivery]) -> None:
        """A packet went by in ``direction`` (``out`` holds it unless it was dropped):
        count it for the held packets and release those whose turn came."""
        keep: list[_Held] = []
        for h in self._held:
            if h.direction == direction:
                h.remaining -= 1
                if h.remaining <= 0:
                    out.extend(self._release(h, now, "after"))
                    continue
            keep.append(h)
        self._held = keep

    def _release(self, h: _Held, now: int, why: str) -> list[Delivery]:
        if self.tracer is not None:
            ev = self._seg_fields(now, h.direction, h.items[0][1])
            ev.update(ev="fault_release", action="reorder", rule=h.rule.text, why=why)
            self.tracer(ev)
        return [(max(t, now), p, c) for t, p, c in h.items]

    def pending_release_at(self) -> int | None:
        """Absolute us when the earliest held packet must go out, or None: reordered ones,
        with hold_delays the delayed ones too, and injected segments (and inject triggers)."""
        times = [h.deadline for h in self._held]
        times += [t for q in self._delayed.values() if (t := q.next_at()) is not None]
        if self.injector is not None and (t := self.injector.next_at()) is not None:
            times.append(t)
        return min(times, default=None)

    def ttl_for(self, pkt: Packet) -> int | None:
        """The IP TTL (hop limit) a mangle rule set for this packet (every copy of it), or
        None (the default). For whoever encodes the packet; the last 4096 are kept."""
        got = self._ttl.get(id(pkt))
        return got[1] if got is not None and got[0] is pkt else None

    def release_due(self, now: int, direction: str | None = None) -> list[Delivery]:
        """Held packets whose time has come (a reordered one's maximum hold, a delayed one's
        release time), in time order; only those of ``direction`` ("in"/"out") when given."""
        def picked(h: _Held) -> bool:
            return h.deadline <= now and (direction is None or h.direction == direction)

        due = sorted((h for h in self._held if picked(h)), key=lambda h: h.deadline)
        out: list[Delivery] = []
        if due:
            self._held = [h for h in self._held if not picked(h)]
            for h in due:
                out.extend(self._keep_delayed(h.direction, now,
                                              self._release(h, now, "timeout")))
        for d in (_DIRECTIONS if direction is None else (direction,)):
            out.extend(self._delayed[d].pop_due(now))
        if self.injector is not None:
            out.extend(self.injector.due(now, direction, self.rules))
        return out

    def flush(self, now: int) -> list[Delivery]:
        """Release every held packet now (e.g. when the stack closes)."""
        held, self._held = self._held, []
        out: list[Delivery] = []
        for h in sorted(held, key=lambda h: h.deadline):
            out.extend(self._release(h, now, "flush"))
        for q in self._delayed.values():
            out.extend((now, p, c) for _t, p, c in q.pop_all())
        return out

    @property
    def held(self) -> int:
        """Packets the engine holds now (reordered, and delayed with hold_delays)."""
        return sum(len(h.items) for h in self._held) + sum(map(len, self._delayed.values()))

    def stats(self) -> list[dict[str, Any]]:
        return [{"rule": str(r), "matched": r.matched, "applied": r.applied} for r in self.rules]

    # -- tracing ----------------------------------------------------------------------------
    def _seg_fields(self, now: int, direction: str, pkt: Packet) -> dict[str, Any]:
        if type(pkt) is not Packet:
            return _other_fields(now, direction, pkt)
        s = pkt.segment
        rseq, rack = self._relative(pkt)
        if direction == "out":
            conn = f"{pkt.src}:{s.src_port}>{pkt.dst}:{s.dst_port}"
        else:
            conn = f"{pkt.dst}:{s.dst_port}>{pkt.src}:{s.src_port}"
        return {
            "t": now, "ev": "fault", "conn": conn, "dir": direction, "src": pkt.src,
            "dst": pkt.dst, "sport": s.src_port, "dport": s.dst_port, "seq": s.seq,
            "ack": s.ack, "rseq": rseq, "rack": rack, "flags": flags_str(s.flags),
            "win": s.window, "len": len(s.payload),
        }

    def _trace_inject(self, now: int, r: Rule, direction: str, pkt: Packet,
                      extra: dict[str, Any]) -> None:
        if self.tracer is None:
            return
        ev = self._seg_fields(now, direction, pkt)
        ev.update(action="inject", rule=r.text, **extra)
        self.tracer(ev)

    def _trace(self, now: int, r: Rule, v: _View, extra: dict[str, Any]) -> None:
        if self.tracer is None:
            return
        ev = self._seg_fields(now, v.direction, v.pkt)
        ev["action"] = r.action
        ev["rule"] = r.text
        if r.states is not None and v.state is not None:
            ev["state"] = v.state
        ev.update(extra)
        self.tracer(ev)


def _other_fields(now: int, direction: str, pkt: Any) -> dict[str, Any]:
    """Trace fields of a fault acting on a UDP datagram or an ICMP error."""
    if type(pkt) is Datagram:
        return {"t": now, "ev": "fault", "proto": "udp", "dir": direction, "src": pkt.src,
                "dst": pkt.dst, "sport": pkt.sport, "dport": pkt.dport,
                "len": len(pkt.payload)}
    return {"t": now, "ev": "fault", "proto": "icmp", "dir": direction, "src": pkt.src,
            "dst": pkt.dst, "kind": pkt.kind, "qsport": pkt.qsport, "qdport": pkt.qdport}
