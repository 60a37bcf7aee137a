"""The fault rule language: text like ``out flags=A state=TIME_WAIT nth=1`` -> a :class:`Rule`.

One language for every place rules come from: the CLI (``--drop 'out flags=A nth=1'``), the
experiments (``"drop out flags=A nth=1"``, the action first: :func:`parse_action_rule`), the
Python API (``parse_rule("drop", "in p=0.05 seed=7")`` or ``Rule(...)``) and the simulator
(``Sim(faults=[...])``). The grammar, every key and every action are documented in
docs/faults.md. A rule that cannot be read raises :class:`RuleError` (a ValueError) with one
line naming the bad part.

This module only reads and checks rules; :mod:`rawtcp.faults.engine` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawtcp.argtypes import plain_float, plain_int
from rawtcp.core.segment import Flags, flags_str
from rawtcp.core.states import State
from rawtcp.faults.forge import Change, SendSpec, parse_changes, parse_send

__all__ = ["ACTIONS", "DEFAULT_REORDER_MS", "KEYS", "RANGES", "STATES", "FlagMatch",
           "NumMatch", "Rule",
           "RuleError", "parse_action_rule", "parse_rule"]

ACTIONS = ("drop", "delay", "duplicate", "reorder", "corrupt", "mangle", "inject")
KEYS = ("dir", "proto", "flags", "state", "seq", "len", "nth", "count", "p", "seed", "ms",
        "copies", "after", "on", "at")
STATES = tuple(s.name for s in State)   # the RFC 9293 names, from the one state module
#: proto= values: TCP segments, UDP datagrams, ICMP/ICMPv6 errors
PROTOS = ("tcp", "udp", "icmp")
#: Every number a rule takes, with its inclusive range (docs/faults.md). Bounds keep a rule
#: from exhausting memory (copies) or holding a packet past any useful time (ms), and make a
#: value that could never match (seq beyond 32 bits) an error instead of a silent no-op.
RANGES: dict[str, tuple[float, float]] = {
    "seq": (0, 2**32 - 1),          # sequence numbers are 32-bit (relative or abs:)
    "len": (0, 65535),              # payload bytes
    "nth": (1, 10**9),
    "count": (1, 10**9),
    "p": (0.0, 1.0),
    "seed": (0, 2**63 - 1),
    "ms": (0.0, 3_600_000.0),       # at most an hour
    "copies": (1, 100),             # extra copies of one packet
    "after": (1, 10_000),           # packets a reordered one waits for
    "at": (0.0, 3_600_000.0),       # inject: ms after the connection's first segment
}


def check_range(key: str, value: float) -> None:
    """ValueError naming the key, its range and the value when out of range."""
    lo, hi = RANGES[key]
    if not lo <= value <= hi:
        raise ValueError(f"{key} must be within {_num(lo)}..{_num(hi)}, got {_num(value)}")


def _num(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e18 else f"{x:g}"
DEFAULT_REORDER_MS = 1000.0


class RuleError(ValueError):
    """A fault rule that cannot be parsed or is inconsistent; the message names the bad part."""


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
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", value)
        if not m:
            raise ValueError(f"{key} needs a number or a range A-B, got {value!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else None
        check_range(key, lo)
        if hi is not None:
            check_range(key, hi)
            if op != "=":
                raise ValueError(f"a range needs '=', as in {key}={lo}-{hi}")
            if hi < lo:
                raise ValueError(f"empty range {lo}-{hi}")
        return cls(op=op, lo=lo, hi=hi, absolute=absolute)


@dataclass
class Rule:
    """One fault rule. Build it with :func:`parse_rule` or directly (``predicate`` is API only:
    a function of the Scapy packet returning bool, evaluated after all other conditions)."""

    action: str
    dir: str = "any"
    proto: str | None = None
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
    on: frozenset[str] | None = None        # inject: when rawtcp's connection enters one
    at: float | None = None                 # inject: ms after the connection's first segment
    changes: tuple[Change, ...] = ()        # mangle: what to rewrite (after "set")
    send: SendSpec | None = None            # inject: what to send (after "send")
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
        if self.proto is not None:
            parts.append(f"proto={self.proto}")
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
        if self.on is not None:
            parts.append(f"on={','.join(sorted(self.on))}")
        if self.at is not None:
            parts.append(f"at={self.at:g}")
        if self.predicate is not None:
            parts.append(f"predicate={getattr(self.predicate, '__name__', 'fn')}")
        head = " ".join(parts) if parts else "any"
        if self.action == "mangle":
            return f"{head} set {' '.join(c.text for c in self.changes)}"
        if self.action == "inject" and self.send is not None:
            return f"{head} send {self.send.text}"
        return head

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
    if r.proto is not None and r.proto not in PROTOS:
        raise bad(f"proto must be one of {', '.join(PROTOS)}, not {r.proto!r}")
    for key in ("nth", "count", "p", "seed", "ms", "copies", "after", "at"):
        v = getattr(r, key)
        if v is not None:
            try:
                check_range(key, v)
            except ValueError as e:
                hint = " (nth=1 is the first match)" if key == "nth" else ""
                raise bad(str(e) + hint) from None
            except TypeError:
                raise bad(f"{key} must be a number, got {v!r}") from None
    if r.seed is not None and r.p is None:
        raise bad("seed only makes sense with p=")
    if r.ms is not None:
        if r.action not in ("delay", "reorder"):
            raise bad("ms applies to delay and reorder only")
    elif r.action == "delay":
        raise bad("delay needs ms=N (milliseconds)")
    if r.copies is not None:
        if r.action != "duplicate":
            raise bad("copies applies to duplicate only")
    if r.after is not None:
        if r.action != "reorder":
            raise bad("after applies to reorder only")
    if r.states is not None:
        unknown = sorted(s for s in r.states if s not in STATES)
        if unknown:
            raise bad(f"unknown state {unknown[0]!r} (known: {', '.join(STATES)})")
    _validate_forge(r, bad)


def _validate_forge(r: Rule, bad: Callable[[str], RuleError]) -> None:
    """The conditions of mangle and inject (and that other actions carry none of theirs)."""
    if r.action == "mangle":
        if not r.changes:
            raise bad("mangle needs 'set' and changes, e.g. 'mangle in flags=A set win=0'")
        if r.proto not in (None, "tcp"):
            raise bad("mangle rewrites TCP segments only (proto=tcp)")
    elif r.changes:
        raise bad("'set' belongs to mangle rules only")
    if r.action == "inject":
        if r.send is None:
            raise bad("inject needs 'send' and a segment, e.g. "
                      "'inject on=ESTABLISHED send RST seq=snd_nxt+10'")
        if r.proto not in (None, "tcp"):
            raise bad("inject sends TCP segments only (proto=tcp)")
        if r.on is not None and r.at is not None:
            raise bad("give one trigger: on=STATE or at=MS, not both")
        timed = r.on is not None or r.at is not None
        if timed:
            used = [k for k in ("flags", "seq", "len", "nth", "p", "states")
                    if getattr(r, k) is not None] + ([r.dir] if r.dir != "any" else [])
            if used:
                name = "state" if used[0] == "states" else used[0]
                raise bad(f"{name!r} matches segments: an on=/at= trigger takes none "
                          "(count= goes after 'send')")
            if r.count is not None:
                raise bad("with on=/at=, say count= after 'send' (segments to send)")
    else:
        if r.send is not None:
            raise bad("'send' belongs to inject rules only")
        if r.on is not None or r.at is not None:
            raise bad("on= and at= are inject triggers only")
    if r.on is not None:
        unknown = sorted(s for s in r.on if s not in STATES)
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

    words = text.split()
    lows = [w.lower() for w in words]
    for sep, owner in (("set", "mangle"), ("send", "inject")):
        if sep in lows:
            if action != owner:
                raise RuleError(f"{where}: '{sep}' belongs to {owner} rules only")
            i = lows.index(sep)
            try:
                if owner == "mangle":
                    kw["changes"] = parse_changes(words[i + 1:])
                else:
                    kw["send"] = parse_send(words[i + 1:])
            except ValueError as e:
                raise RuleError(f"{where}: {e}") from None
            words = words[:i]
            if not words:
                what = "which segments (in, out, any, flags=...)" if owner == "mangle" else \
                    "a trigger (segment matchers such as 'in flags=+F', on=STATE or at=MS)"
                raise RuleError(f"{where}: nothing before '{sep}': say {what}")
    for part in words:
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
            known = KEYS if action == "inject" else KEYS[:-2]   # on=, at=: inject triggers
            raise RuleError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        if op != "=" and key not in _COMPARABLE and not (key == "state" and op == "!="):
            raise RuleError(f"{where}: {part!r}: {key} takes '=' only")
        if value == "":
            raise RuleError(f"{where}: {part!r}: missing value")
        try:
            if key == "dir":
                if value.lower() not in ("in", "out", "any"):
                    raise ValueError("dir must be in, out or any")
                put("dir", value.lower(), part)
            elif key == "proto":
                if value.lower() not in PROTOS:
                    raise ValueError(f"proto must be one of {', '.join(PROTOS)}")
                put("proto", value.lower(), part)
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
            elif key in ("p", "ms", "at"):
                put(key, _float(value), part)
            elif key == "on":
                names = [s.strip().upper().replace("-", "_") for s in value.split(",")]
                for n in names:
                    if n not in STATES:
                        raise ValueError(f"unknown state {n!r} (known: {', '.join(STATES)})")
                put("on", frozenset(names), part)
        except ValueError as e:
            raise RuleError(f"{where}: {part!r}: {e}") from None
    try:
        return Rule(action=action, **kw)
    except RuleError as e:
        raise RuleError(f"{where}: {str(e).split(': ', 1)[-1]}") from None


def _int(v: str) -> int:
    n = plain_int(v, negative=True)
    if n is None:
        raise ValueError(f"expected an integer (digits 0-9), got {v!r}")
    return n


def _float(v: str) -> float:
    f = plain_float(v, negative=True)   # (not 1e3, 1_000, nan, other scripts' digits)
    if f is None:
        raise ValueError(f"expected a number such as 40 or 0.5, got {v!r}")
    return f


def parse_action_rule(text: Any) -> Rule:
    """A rule whose text starts with its action: ``"drop out flags=A nth=1"`` -> Rule (the
    form experiments and ``rawtcp experiment run --fault`` take). A Rule passes unchanged."""
    if isinstance(text, Rule):
        return text
    if not isinstance(text, str):
        raise RuleError(f"bad rule {text!r}: give a Rule or text like 'drop out flags=A nth=1'")
    action, _, rest = text.strip().partition(" ")
    if action.lower() not in ACTIONS:
        raise RuleError(f"bad rule {text!r}: it must start with one of {', '.join(ACTIONS)}")
    return parse_rule(action, rest)
