"""Fault injection on rawtcp's own path: drop, delay, duplicate, reorder or corrupt segments.

Theory of operation
-------------------
A :class:`FaultEngine` sits between the link and the stack, in both directions. The runtime
(or the simulator) hands it every packet and sends on what comes back::

    engine = FaultEngine([parse_rule("drop", "out flags=A state=TIME_WAIT nth=1")],
                         seed=0, tracer=tracer, state_of=lookup_state)

    # a packet the stack wants to send, or one that arrived from the link:
    for release_us, pkt, corrupt in engine.process("out", pkt, now_us):
        queue.push(...)                      # deliver at release_us (now or later)

``process(direction, pkt, now)`` returns ``(release_time_us, Packet, corrupt_checksum)`` for
every copy to deliver, in delivery order; an empty list means dropped.

- ``release_time_us == now`` for most packets; a ``delay`` rule puts it in the future. The
  engine does **not** keep delayed packets: the caller schedules them. :class:`ReleaseQueue`
  is a small heap the runtime can use for that (``push(items)``, ``next_at()``,
  ``pop_due(now)``), stable for equal times so duplicates stay in order.
- ``corrupt_checksum`` True means: encode the packet, then spoil its TCP checksum
  (:func:`corrupt_tcp_checksum` does that on IP bytes). For the ``in`` direction the runtime
  should hand the spoiled bytes to its decoder so that the stack's checksum check sees them;
  a runtime that cannot, drops the packet and traces ``{ev:"drop", reason:"bad-checksum"}``.
- ``reorder`` *holds* the packet inside the engine. It comes back out of a later
  ``process()`` call in the same direction, placed after the K-th packet that passed
  (``after=K``, default 1), or, when no such packets come, from ``release_due(now)`` once its
  maximum hold time (``ms=``, default 1000 ms) is over. So the runtime must also do::

        t = engine.pending_release_at()       # absolute us, or None: wake up no later
        ...
        for item in engine.release_due(now):  # held packets whose time has come
            deliver(item)

  ``flush()`` releases everything still held (call it on close if you want them sent).

Every fault applied is traced: ``{t, ev:"fault", action, rule, dir, conn, src, dst, sport,
dport, seq, ack, rseq, rack, flags, win, len}`` plus ``ms`` (delay), ``copies`` (duplicate),
``after``/``max_ms`` (reorder). When a held packet is released: ``{ev:"fault_release", ...}``.
``rseq``/``rack`` are relative to the ISNs the engine saw in SYNs (null when unknown).

Rules are evaluated in order for each packet. Every rule whose conditions hold counts a
*match*; if its ``nth``/``count``/``p`` gates let it fire it counts *applied* and acts:
``drop`` ends the evaluation; ``delay`` adds its delay; ``duplicate`` adds copies;
``corrupt`` marks all copies; the first ``reorder`` holds the packet (with its copies).
Per-rule counters: ``engine.rules[i].matched`` / ``.applied`` or ``engine.stats()``.

The text form of rules (CLI ``--drop 'out flags=A nth=1'``) is documented in docs/faults.md.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from rawtcp.core.segment import Flags, Packet, flags_str

__all__ = [
    "ACTIONS",
    "KEYS",
    "STATES",
    "Delivery",
    "FaultEngine",
    "FlagMatch",
    "NumMatch",
    "ReleaseQueue",
    "Rule",
    "RuleError",
    "corrupt_tcp_checksum",
    "parse_rule",
]

ACTIONS = ("drop", "delay", "duplicate", "reorder", "corrupt")
KEYS = ("dir", "flags", "state", "seq", "len", "nth", "count", "p", "seed", "ms", "copies", "after")
STATES = (
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECEIVED",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "CLOSE_WAIT",
    "CLOSING",
    "LAST_ACK",
    "TIME_WAIT",
)
DEFAULT_REORDER_MS = 1000.0
_MOD = 1 << 32

Delivery = tuple[int, Packet, bool]  # (release_time_us, packet, corrupt_checksum)


class RuleError(ValueError):
    """A fault rule that cannot be parsed or is inconsistent; the message names the bad part."""


# ---------------------------------------------------------------------------------------------
# matchers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagMatch:
    """``exact``: flags must equal it. Otherwise ``must`` all present and ``must_not`` absent."""

    exact: int | None = None
    must: int = 0
    must_not: int = 0

    def __call__(self, flags: int) -> bool:
        if self.exact is not None:
            return flags == self.exact
        return (flags & self.must) == self.must and not (flags & self.must_not)

    @property
    def text(self) -> str:
        if self.exact is not None:
            return flags_str(self.exact) if self.exact else "none"
        s = ""
        if self.must:
            s += "+" + flags_str(self.must)
        if self.must_not:
            s += "-" + flags_str(self.must_not)
        return s

    @classmethod
    def parse(cls, value: str) -> FlagMatch:
        """``FA`` exact; ``+F`` contains F; ``-A`` lacks A; ``+F-A`` both; ``none`` no flags."""
        if value.lower() == "none":
            return cls(exact=0)
        if not value:
            raise ValueError("empty flags (use letters FSRPAUEC, +X, -X or none)")
        if value[0] not in "+-":
            if "+" in value or "-" in value:
                raise ValueError(
                    f"flags {value!r} mixes an exact set with +/- (write '+SA' or 'SA')"
                )
            return cls(exact=int(_letters(value)))
        must = must_not = 0
        for sign, letters in re.findall(r"([+-])([^+-]*)", value):
            if not letters:
                raise ValueError(f"flags {value!r}: {sign} without letters")
            bits = int(_letters(letters))
            if sign == "+":
                must |= bits
            else:
                must_not |= bits
        if must & must_not:
            raise ValueError(f"flags {value!r}: a flag both required and excluded")
        return cls(must=must, must_not=must_not)


def _letters(text: str) -> Flags:
    from rawtcp.core.segment import parse_flags

    return parse_flags(text)


@dataclass(frozen=True)
class NumMatch:
    """A number condition: ``op`` in = != > >= < <= with ``lo``; ``=`` with ``hi`` is a range
    ``lo..hi`` inclusive. ``absolute`` (seq only): compare raw seq instead of relative."""

    op: str
    lo: int
    hi: int | None = None
    absolute: bool = False

    def __call__(self, v: int) -> bool:
        op, lo = self.op, self.lo
        if self.hi is not None:
            return lo <= v <= self.hi
        if op == "=":
            return v == lo
        if op == "!=":
            return v != lo
        if op == ">":
            return v > lo
        if op == ">=":
            return v >= lo
        if op == "<":
            return v < lo
        return v <= lo

    def text(self, key: str) -> str:
        val = ("abs:" if self.absolute else "") + (
            f"{self.lo}-{self.hi}" if self.hi is not None else str(self.lo)
        )
        return f"{key}{self.op}{val}"

    @classmethod
    def parse(cls, key: str, op: str, value: str) -> NumMatch:
        absolute = False
        if value.startswith("abs:"):
            if key != "seq":
                raise ValueError("'abs:' applies to seq only")
            absolute, value = True, value[4:]
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", value)
        if not m:
            raise ValueError(f"{key} needs a number or a range A-B, got {value!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else None
        if hi is not None:
            if op != "=":
                raise ValueError(f"a range needs '=', as in {key}={lo}-{hi}")
            if hi < lo:
                raise ValueError(f"empty range {lo}-{hi}")
        return cls(op=op, lo=lo, hi=hi, absolute=absolute)


# ---------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------


@dataclass
class Rule:
    """One fault rule. Build it with :func:`parse_rule` or directly (``predicate`` is API only:
    a function of the Scapy packet returning bool, evaluated after all other conditions)."""

    action: str
    dir: str = "any"
    flags: FlagMatch | None = None
    states: frozenset[str] | None = None
    states_negate: bool = False
    seq: NumMatch | None = None
    len: NumMatch | None = None
    nth: int | None = None
    count: int | None = None
    p: float | None = None
    seed: int | None = None
    ms: float | None = None
    copies: int | None = None
    after: int | None = None
    predicate: Callable[[Any], bool] | None = None
    # counters (per engine: the engine works on its own copy of each rule)
    matched: int = field(default=0, compare=False)
    applied: int = field(default=0, compare=False)
    errors: int = field(default=0, compare=False)  # predicate exceptions

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def text(self) -> str:
        """Canonical text form (without the action): ``parse_rule(action, text)`` rebuilds it."""
        parts: list[str] = []
        if self.dir != "any":
            parts.append(self.dir)
        if self.flags is not None:
            parts.append(f"flags={self.flags.text}")
        if self.states is not None:
            op = "!=" if self.states_negate else "="
            parts.append(f"state{op}{','.join(sorted(self.states))}")
        if self.seq is not None:
            parts.append(self.seq.text("seq"))
        if self.len is not None:
            parts.append(self.len.text("len"))
        for key in ("nth", "count", "p", "seed"):
            v = getattr(self, key)
            if v is not None:
                parts.append(f"{key}={v:g}" if isinstance(v, float) else f"{key}={v}")
        if self.ms is not None:
            parts.append(f"ms={self.ms:g}")
        if self.copies is not None:
            parts.append(f"copies={self.copies}")
        if self.after is not None:
            parts.append(f"after={self.after}")
        if self.predicate is not None:
            parts.append(f"predicate={getattr(self.predicate, '__name__', 'fn')}")
        return " ".join(parts) if parts else "any"

    def __str__(self) -> str:
        return f"{self.action} {self.text}"

    @property
    def delay_us(self) -> int:
        return round((self.ms or 0.0) * 1000)

    @property
    def max_hold_us(self) -> int:
        return round((self.ms if self.ms is not None else DEFAULT_REORDER_MS) * 1000)


def _validate(r: Rule) -> None:
    def bad(msg: str) -> RuleError:
        return RuleError(f"bad {r.action} rule: {msg}")

    if r.action not in ACTIONS:
        raise RuleError(f"unknown fault action {r.action!r} (known: {', '.join(ACTIONS)})")
    if r.dir not in ("in", "out", "any"):
        raise bad(f"dir must be in, out or any, not {r.dir!r}")
    if r.nth is not None and r.nth < 1:
        raise bad(f"nth must be >= 1 (nth=1 is the first match), got {r.nth}")
    if r.count is not None and r.count < 1:
        raise bad(f"count must be >= 1, got {r.count}")
    if r.p is not None and not 0.0 <= r.p <= 1.0:
        raise bad(f"p must be within 0..1, got {r.p}")
    if r.seed is not None and r.p is None:
        raise bad("seed only makes sense with p=")
    if r.ms is not None:
        if r.action not in ("delay", "reorder"):
            raise bad("ms applies to delay and reorder only")
        if r.ms < 0:
            raise bad(f"ms must be >= 0, got {r.ms}")
    elif r.action == "delay":
        raise bad("delay needs ms=N (milliseconds)")
    if r.copies is not None:
        if r.action != "duplicate":
            raise bad("copies applies to duplicate only")
        if r.copies < 1:
            raise bad(f"copies must be >= 1, got {r.copies}")
    if r.after is not None:
        if r.action != "reorder":
            raise bad("after applies to reorder only")
        if r.after < 1:
            raise bad(f"after must be >= 1, got {r.after}")
    if r.states is not None:
        unknown = sorted(s for s in r.states if s not in STATES)
        if unknown:
            raise bad(f"unknown state {unknown[0]!r} (known: {', '.join(STATES)})")


_TOKEN = re.compile(r"([A-Za-z_]+)\s*(>=|<=|!=|=|>|<)(.*)")
_COMPARABLE = ("seq", "len")


def parse_rule(action: str, text: str) -> Rule:
    """Parse the text form, e.g. ``parse_rule("drop", "out flags=A state=TIME_WAIT nth=1")``.

    Raises :class:`RuleError` naming the bad part. Grammar: docs/faults.md.
    """
    action = action.strip().lower()
    where = f"bad rule {text!r}"
    if not text.strip():
        raise RuleError(f"{where}: empty (an empty rule would match every packet; say 'in', "
                        "'out' or 'any' to mean that)")
    if action not in ACTIONS:
        raise RuleError(f"{where}: unknown action {action!r} (known: {', '.join(ACTIONS)})")
    kw: dict[str, Any] = {}
    seen: set[str] = set()

    def put(key: str, value: Any, part: str) -> None:
        if key in seen:
            raise RuleError(f"{where}: {key!r} given twice ({part!r})")
        seen.add(key)
        kw[key] = value

    for part in text.split():
        low = part.lower()
        if low in ("in", "out", "any"):
            put("dir", low, part)
            continue
        m = _TOKEN.fullmatch(part)
        if not m:
            raise RuleError(
                f"{where}: cannot read {part!r} (write key=value, e.g. flags=A; "
                f"or in/out/any)"
            )
        key, op, value = m.group(1).lower(), m.group(2), m.group(3)
        if key not in KEYS:
            raise RuleError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
        if op != "=" and key not in _COMPARABLE and not (key == "state" and op == "!="):
            raise RuleError(f"{where}: {part!r}: {key} takes '=' only")
        if value == "":
            raise RuleError(f"{where}: {part!r}: missing value")
        try:
            if key == "dir":
                if value.lower() not in ("in", "out", "any"):
                    raise ValueError("dir must be in, out or any")
                put("dir", value.lower(), part)
            elif key == "flags":
                put("flags", FlagMatch.parse(value), part)
            elif key == "state":
                names = [s.strip().upper().replace("-", "_") for s in value.split(",")]
                if "" in names:
                    raise ValueError("empty state name")
                for n in names:
                    if n not in STATES:
                        raise ValueError(f"unknown state {n!r} (known: {', '.join(STATES)})")
                put("states", frozenset(names), part)
                kw["states_negate"] = op == "!="
            elif key in ("seq", "len"):
                put(key, NumMatch.parse(key, op, value), part)
            elif key in ("nth", "count", "seed", "copies", "after"):
                put(key, _int(value), part)
            elif key in ("p", "ms"):
                put(key, _float(value), part)
        except ValueError as e:
            raise RuleError(f"{where}: {part!r}: {e}") from None
    try:
        return Rule(action=action, **kw)
    except RuleError as e:
        raise RuleError(f"{where}: {str(e).split(': ', 1)[-1]}") from None


def _int(v: str) -> int:
    if not re.fullmatch(r"-?\d+", v):
        raise ValueError(f"expected an integer, got {v!r}")
    return int(v)


def _float(v: str) -> float:
    try:
        f = float(v)
    except ValueError:
        raise ValueError(f"expected a number, got {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"expected a finite number, got {v!r}")
    return f


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------


class _View:
    """Per-packet lazy facts shared by all rules (state and Scapy packet computed once)."""

    __slots__ = (
        "_engine",
        "_scapy",
        "_state",
        "_state_done",
        "direction",
        "now",
        "pkt",
        "rack",
        "rseq"
    )

    def __init__(self, engine: FaultEngine, direction: str, pkt: Packet, now: int) -> None:
        self.pkt = pkt
        self.now = now
        self.direction = direction
        self._engine = engine
        self._state_done = False
        self._state: str | None = None
        self._scapy: Any = None
        self.rseq, self.rack = engine._relative(pkt)

    @property
    def state(self) -> str | None:
        if not self._state_done:
            self._state_done = True
            fn = self._engine.state_of
            st = fn(self.pkt, self.direction) if fn is not None else None
            self._state = None if st is None else str(getattr(st, "name", st)).upper()
        return self._state

    @property
    def scapy(self) -> Any:
        if self._scapy is None:
            from rawtcp.trace import to_scapy

            self._scapy = to_scapy(self.pkt)
        return self._scapy


@dataclass
class _Held:
    deadline: int
    remaining: int
    direction: str
    items: list[Delivery]
    rule: Rule


class FaultEngine:
    """``FaultEngine(rules, seed=0, tracer=None, state_of=None)``: see the module docstring."""

    MAX_ISNS = 65536

    def __init__(
        self,
        rules: Iterable[Rule],
        seed: int = 0,
        tracer: Callable[[dict], None] | None = None,
        state_of: Callable[[Packet, str], str | None] | None = None,
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
        self._isn: dict[tuple[str, int, str, int], int] = {}
        self._held: list[_Held] = []

    # -- ISN bookkeeping for relative numbers -----------------------------------------------
    def _learn(self, pkt: Packet) -> None:
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
    @staticmethod
    def _matches(r: Rule, v: _View) -> bool:
        if r.dir != "any" and r.dir != v.direction:
            return False
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
        if r.predicate is not None:
            try:
                if not r.predicate(v.scapy):
                    return False
            except Exception as e:  # noqa: BLE001 - a user hook must not kill the stack
                # A predicate that raises counts as "no match"; the error is counted and traced.
                r.errors += 1
                if v._engine.tracer is not None:
                    v._engine.tracer({
                        "t": v.now, "ev": "error", "errno": errno.EINVAL,
                        "message": f"fault predicate of {r.action} {r.text!r} raised "
                                   f"{type(e).__name__}: {e}",
                    })
                return False
        return True

    def _fires(self, i: int, r: Rule) -> bool:
        if r.nth is not None and r.matched != r.nth:
            return False
        if r.count is not None and r.applied >= r.count:
            return False
        return r.p is None or self._rngs[i].random() < r.p

    # -- the interface ----------------------------------------------------------------------
    def process(self, direction: str, pkt: Packet, now: int) -> list[Delivery]:
        """Apply the rules to one packet; returns what to deliver (see module docstring)."""
        if direction not in ("in", "out"):
            raise OSError(errno.EINVAL, f"direction must be 'in' or 'out', not {direction!r}")
        if not self.rules:
            return [(now, pkt, False)]
        self._learn(pkt)
        v = _View(self, direction, pkt, now)
        delay = 0
        copies = 1
        corrupt = False
        hold: Rule | None = None
        for i, r in enumerate(self.rules):
            if not self._matches(r, v):
                continue
            r.matched += 1
            if not self._fires(i, r):
                continue
            r.applied += 1
            extra: dict[str, Any] = {}
            if r.action == "drop":
                self._trace(now, r, v, extra)
                return []
            if r.action == "delay":
                delay += r.delay_us
                extra["ms"] = r.ms
            elif r.action == "duplicate":
                n = r.copies or 1
                copies += n
                extra["copies"] = n
            elif r.action == "corrupt":
                corrupt = True
            elif r.action == "reorder" and hold is None:
                hold = r
                extra["after"] = r.after or 1
                extra["max_ms"] = r.max_hold_us / 1000
            self._trace(now, r, v, extra)
        items: list[Delivery] = [(now + delay, pkt, corrupt) for _ in range(copies)]
        if hold is not None:
            deadline = now + hold.max_hold_us
            self._held.append(_Held(deadline, hold.after or 1, direction, items, hold))
            return []
        out = items
        self._passed(direction, now, out)
        return out

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
        """Absolute us when the earliest held (reordered) packet must go out, or None."""
        return min((h.deadline for h in self._held), default=None)

    def release_due(self, now: int, direction: str | None = None) -> list[Delivery]:
        """Held packets whose maximum hold time is over, in deadline order; only those of
        ``direction`` ("in"/"out") when given."""
        def picked(h: _Held) -> bool:
            return h.deadline <= now and (direction is None or h.direction == direction)

        due = sorted((h for h in self._held if picked(h)), key=lambda h: h.deadline)
        if not due:
            return []
        self._held = [h for h in self._held if not picked(h)]
        out: list[Delivery] = []
        for h in due:
            out.extend(self._release(h, now, "timeout"))
        return out

    def flush(self, now: int) -> list[Delivery]:
        """Release every held packet now (e.g. when the stack closes)."""
        held, self._held = self._held, []
        out: list[Delivery] = []
        for h in sorted(held, key=lambda h: h.deadline):
            out.extend(self._release(h, now, "flush"))
        return out

    @property
    def held(self) -> int:
        return sum(len(h.items) for h in self._held)

    def stats(self) -> list[dict[str, Any]]:
        return [{"rule": str(r), "matched": r.matched, "applied": r.applied} for r in self.rules]

    # -- tracing ----------------------------------------------------------------------------
    def _seg_fields(self, now: int, direction: str, pkt: Packet) -> dict[str, Any]:
        s = pkt.segment
        rseq, rack = self._relative(pkt)
        if direction == "out":
            conn = f"{pkt.src}:{s.src_port}>{pkt.dst}:{s.dst_port}"
        else:
            conn = f"{pkt.dst}:{s.dst_port}>{pkt.src}:{s.src_port}"
        return {
            "t": now,
            "ev": "fault",
            "conn": conn,
            "dir": direction,
            "src": pkt.src,
            "dst": pkt.dst,
            "sport": s.src_port,
            "dport": s.dst_port,
            "seq": s.seq,
            "ack": s.ack,
            "rseq": rseq,
            "rack": rack,
            "flags": flags_str(s.flags),
            "win": s.window,
            "len": len(s.payload),
        }

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


# ---------------------------------------------------------------------------------------------
# helpers for the runtime
# ---------------------------------------------------------------------------------------------


class ReleaseQueue:
    """Deliveries waiting for their release time (a heap, FIFO among equal times)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Packet, bool]] = []
        self._n = itertools.count()

    def push(self, items: Iterable[Delivery]) -> None:
        for t, p, c in items:
            heapq.heappush(self._heap, (t, next(self._n), p, c))

    def next_at(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: int) -> list[Delivery]:
        out: list[Delivery] = []
        while self._heap and self._heap[0][0] <= now:
            t, _, p, c = heapq.heappop(self._heap)
            out.append((t, p, c))
        return out

    def __len__(self) -> int:
        return len(self._heap)




def corrupt_tcp_checksum(ip: bytes) -> bytes:
    """Return ``ip`` with its TCP checksum changed in one bit (never a valid equivalent in
    ones' complement). Bytes that are not IPv4/IPv6 + TCP come back unchanged."""
    from rawtcp.wire import ParseError, corrupt_checksum

    try:
        return corrupt_checksum(ip)
    except ParseError:
        return ip
