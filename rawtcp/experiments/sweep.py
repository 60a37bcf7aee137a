"""Sweep: run an experiment once, then once per segment with exactly that segment dropped
(or duplicated, or delayed), and say what each loss did to the connection.

Theory of operation
-------------------
1. **Record.** The experiment runs once with its own rules only (the *reference*, in a
   child process like the others). Its trace lists every segment in the order the fault
   engine saw it: outgoing ``seg`` events (minus those the experiment's own rules dropped:
   a later rule never sees them), incoming ``seg`` events (an incoming segment dropped by
   the experiment never reaches the core).
2. **Plan.** Each reference segment becomes one fault rule that matches exactly it, written
   in the ordinary rule language so that any row can be replayed with
   ``rawtcp experiment run NAME --drop '...'``::

       drop out flags=PA seq=1 len=144 nth=1 count=1

   The segment is named by what it *is*, not by its position: its direction, its exact
   flags, its sequence number relative to the sender's ISN and its payload length, and
   ``nth=`` counts only the segments of that direction with the same three (the second
   transmission of the same bytes is ``nth=2``). A segment that one run sends and another
   does not (a delayed ACK that a FIN carried instead) does not shift the rows after it, as
   a plain "k-th segment in this direction" count would. ``count=1`` changes nothing
   (``nth`` fires once) but keeps the rule's text apart from an experiment rule with the
   same conditions, so the run's fault event of the sweep rule is found by its text. The
   rule is added after the experiment's own rules, so its counts agree with the reference's
   list. When the sweep
   run never sends that segment (the run went another way before it), the row says
   ``not-reached``.
3. **Run.** The reference run and one run per (segment, fault), each in its own process
   and lab (lab names carry the pid and a random suffix), ``jobs`` at a time, each bounded
   by ``run_timeout``.
   Ctrl-C or SIGTERM stops every child, which tears its lab down; a child that does not
   stop in time is killed and what it registered is removed
   (:mod:`rawtcp.experiments.sweep_pool`).
4. **Classify.** Each run's trace is reduced to :class:`Facts` (end states, resets, errors,
   retransmissions with their cause, acknowledged sequence space, when the last segment
   went by) and compared with the reference's by :func:`classify`: ``recovered`` (how:
   ``rto``/``fast``/``probe`` retransmission by rawtcp or the kernel, or ``none`` when a
   later segment covered the loss; how much later than the reference the last segment
   went), ``rst``, ``etimedout``, ``stuck`` (rawtcp ended in another state than in the
   reference), ``data-mismatch`` (a different amount of sequence space was acknowledged),
   ``not-reached``, ``error`` (the run itself failed: crash, timeout). The experiment's own
   checks are reported beside the outcome (``checks_failed``): they were written for the
   undisturbed run.

An experiment that builds several stacks (several rounds) gives each stack its own fault
engine: the rule then acts once in each of them.

``sweep(name, ...)`` does all four and returns a :class:`SweepResult`;
:mod:`rawtcp.experiments.sweep_report` draws it (table, ladder, plot, JSON).
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from rawtcp.faults.grammar import parse_action_rule
from rawtcp.report.enrich import enrich, seq_len

Event = dict[str, Any]

__all__ = ["ALSO", "DIRECTIONS", "KINDS", "LIMITS", "Facts", "Fault", "Outcome", "Row",
           "Segment", "SweepResult", "check_limit", "classify", "engine_view", "facts_from_events",
           "plan", "reference_segments", "sweep"]

DIRECTIONS = ("in", "out", "both")
ALSO = ("duplicate", "delay")
#: outcome kinds, from worst to best as the table sorts them
KINDS = ("error", "not-reached", "etimedout", "rst", "stuck", "data-mismatch", "recovered")
#: the text of --also delay:MS and of a --segments item: plain ASCII decimal digits (float()
#: and int() also take '1_0', blanks, '+5' and other scripts' digits; float() '1e2')
_FRACTION = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_INDEX = re.compile(r"([0-9]+)(?:-([0-9]+))?")
#: inclusive ranges of every number the sweep takes
LIMITS: dict[str, tuple[float, float]] = {
    "jobs": (1, 32),
    "max_segments": (1, 1000),
    "delay_ms": (1, 60_000),
    "run_timeout": (5, 3600),
    "seed": (0, 2**31 - 1),
    "segment": (1, 100_000),
}
#: A kernel retransmission without duplicate ACKs before it is an RTO when it comes at least
#: this long after the previous copy: half of Linux's smallest RTO (TCP_RTO_MIN, 200 ms), as
#: the times are rawtcp's, which a loaded machine delays by tens of ms. Sooner is a loss
#: probe (TLP, about two round trips: ~10 ms in a lab) or RACK's reordering timer.
RTO_FLOOR_MS = 100.0
DUPTHRESH = 3          # RFC 5681 3.2: three duplicate ACKs start fast retransmit
_WORKER = "rawtcp.experiments.sweep"   # `python -m` this in a child: run_task (bottom)


def check_limit(key: str, value: float) -> None:
    """ValueError in one line when ``value`` is outside ``LIMITS[key]``."""
    lo, hi = LIMITS[key]
    if not lo <= value <= hi:
        raise ValueError(f"{key.replace('_', '-')} must be within {_num(lo)}..{_num(hi)}, "
                         f"got {_num(value)}")


def _num(v: float) -> str:
    """A number for a message: an integer in full (2147483648, not 2.14748e+09)."""
    return str(int(v)) if isinstance(v, int) or float(v).is_integer() else f"{v:g}"


# ------------------------------------------------------------------------------ plan
@dataclass(frozen=True)
class Fault:
    """What is done to the one segment: ``drop``, ``duplicate`` (one extra copy) or
    ``delay`` by ``ms``."""

    action: str = "drop"
    ms: float | None = None

    @property
    def name(self) -> str:
        return f"delay {self.ms:g}ms" if self.action == "delay" else self.action

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``drop``, ``duplicate`` or ``delay:MS``; ValueError in one line otherwise."""
        t = text.strip().lower()
        if t in ("drop", "duplicate"):
            return cls(t)
        if t.startswith("delay:"):
            number = text.partition(":")[2]     # as given: blanks in it are refused
            if not _FRACTION.fullmatch(number):
                raise ValueError(f"--also delay:MS needs a number of ms (digits 0-9 and an "
                                 f"optional '.' fraction), got {text!r}")
            ms = float(number)
            check_limit("delay_ms", ms)
            return cls("delay", ms)
        raise ValueError(f"--also takes duplicate or delay:MS, not {text!r}")


@dataclass(frozen=True)
class Segment:
    """One segment of the reference run. ``index``: 1-based over both directions in trace
    order; ``nth``: its occurrence among the reference segments its rule matches."""

    index: int
    dir: str
    t_ms: float
    flags: str
    rseq: int | None
    rack: int | None
    len: int
    state: str | None
    rtx: bool
    nth: int

    @property
    def label(self) -> str:
        s = f"{self.flags or '.'} seq={self.rseq if self.rseq is not None else '?'}"
        if "A" in self.flags and self.rack is not None:
            s += f" ack={self.rack}"
        return s + f" len={self.len}" + (" [rtx]" if self.rtx else "")

    def matcher(self) -> str:
        """The rule's conditions (without action and nth)."""
        parts = [self.dir, f"flags={self.flags or 'none'}"]
        if self.rseq is not None:
            parts.append(f"seq={self.rseq}")
        parts.append(f"len={self.len}")
        return " ".join(parts)

    def rule(self, fault: Fault = Fault()) -> str:
        """The fault rule, action first, as ``rawtcp experiment run --fault`` takes it."""
        extra = ""
        if fault.action == "delay":
            extra = f" ms={fault.ms:g}"
        elif fault.action == "duplicate":
            extra = " copies=1"
        return f"{fault.action} {self.matcher()} nth={self.nth} count=1{extra}"


def _ms(t: int, t0: int) -> float:
    return round((t - t0) / 1000, 3)


def _t0(events: list[Event]) -> int:
    segs = [e["t"] for e in events if e.get("ev") == "seg" and "t" in e]
    if segs:
        return min(segs)
    return min((e["t"] for e in events if "t" in e), default=0)


def engine_view(events: list[Event]) -> list[Event]:
    """The segments a sweep rule sees, in order (enriched copies): outgoing seg events except
    those an experiment rule dropped (the fault event follows its seg event), incoming seg
    events."""
    out: list[Event] = []
    for e in enrich(events):
        kind = e.get("ev")
        if kind == "seg" and e.get("dir") in ("in", "out"):
            out.append(e)
        elif kind == "fault" and e.get("action") == "drop" and e.get("dir") == "out":
            for i in range(len(out) - 1, -1, -1):
                s = out[i]
                if s.get("dir") == "out" and all(s.get(k) == e.get(k) for k in
                                                  ("seq", "ack", "flags", "len", "sport")):
                    del out[i]
                    break
    return out


def reference_segments(events: list[Event]) -> list[Segment]:
    """Every segment of a reference trace as a :class:`Segment`, in the engine's order."""
    t0 = _t0(events)
    segs: list[Segment] = []
    exact: Counter[tuple] = Counter()     # (dir, flags, len, rseq): what seq=X matches
    loose: Counter[tuple] = Counter()     # (dir, flags, len): what a rule without seq matches
    for i, e in enumerate(engine_view(events)):
        flags = str(e.get("flags") or "")
        rseq = e.get("rseq")
        key = (e["dir"], flags, int(e.get("len") or 0))
        exact[(*key, rseq)] += 1
        loose[key] += 1
        nth = exact[(*key, rseq)] if rseq is not None else loose[key]
        segs.append(Segment(i + 1, str(e["dir"]), _ms(int(e["t"]), t0), flags, rseq,
                            e.get("rack"), int(e.get("len") or 0), e.get("state"),
                            bool(e.get("rtx")), nth))
    return segs


def plan(segments: list[Segment], direction: str = "both", max_segments: int | None = None,
         indices: Iterable[int] | None = None,
         select: Callable[[Segment], bool] | None = None) -> list[Segment]:
    """The segments to sweep: those of ``direction`` ("in", "out", "both"), only the given
    reference ``indices`` and those ``select`` accepts when given, the first
    ``max_segments`` of them. ValueError for an index the reference does not have."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if max_segments is not None:
        check_limit("max_segments", max_segments)
    chosen = [s for s in segments if direction == "both" or s.dir == direction]
    if indices is not None:
        want = set(indices)
        known = {s.index for s in segments}
        missing = sorted(want - known)
        if missing:
            raise ValueError(f"segment {missing[0]} is not in the reference run (it has "
                             f"{len(segments)} segments)")
        chosen = [s for s in chosen if s.index in want]
    if select is not None:
        chosen = [s for s in chosen if select(s)]
    return chosen[:max_segments] if max_segments is not None else chosen


def parse_indices(text: str) -> list[int]:
    """``"1-3,8"`` -> [1, 2, 3, 8]; ValueError in one line for anything else."""
    out: list[int] = []
    for part in text.split(","):
        m = _INDEX.fullmatch(part.strip())    # blanks around an item, not inside it
        if not m:
            raise ValueError(f"--segments takes numbers and ranges like 1-3,8, "
                             f"not {text!r}")
        a = int(m[1])
        b = int(m[2]) if m[2] is not None else a
        for v in (a, b):
            check_limit("segment", v)
        if b < a:
            raise ValueError(f"--segments: empty range {part!r}")
        if b - a >= LIMITS["max_segments"][1]:
            raise ValueError(f"--segments: range {part!r} is longer than "
                             f"{_num(LIMITS['max_segments'][1])}")
        out.extend(range(a, b + 1))
    return sorted(set(out))


# ------------------------------------------------------------------------------ facts
@dataclass
class Retransmission:
    t_ms: float
    by: str          # "rawtcp" or "kernel"
    flags: str
    rseq: int | None
    len: int
    cause: str       # "rto", "fast", "probe"


@dataclass
class Facts:
    """What one run did, read from its trace (all times in ms from its first segment)."""

    finish_ms: float | None = None          # the last segment
    closed_ms: float | None = None          # rawtcp's last connection reached CLOSED
    final_states: list[str] = field(default_factory=list)   # rawtcp, one per connection
    kernel_final: list[str] = field(default_factory=list)   # the kernel's (ss samples)
    rst_out: int = 0
    rst_in: int = 0
    errors: list[int] = field(default_factory=list)         # errno of rawtcp's error events
    retransmissions: list[Retransmission] = field(default_factory=list)
    acked_out: int | None = None            # our sequence space the kernel acknowledged
    acked_in: int | None = None             # the kernel's that rawtcp acknowledged
    segments: int = 0
    hit: dict[str, Any] | None = None       # the sweep rule's fault event (trimmed)
    passed: bool = False
    checks_failed: list[str] = field(default_factory=list)
    error: str | None = None                # the experiment's exception, or the run's failure
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Facts:
        d = dict(d)
        d["retransmissions"] = [Retransmission(**r) for r in d.get("retransmissions", [])]
        return cls(**d)


def _listener_conn(conn: Any) -> bool:
    return isinstance(conn, str) and "*" in conn


def _retransmissions(evs: list[Event], t0: int) -> list[Retransmission]:
    # rawtcp's: the timer that fired at that moment says why (rtx: RTO, tlp: a tail loss
    # probe, RFC 8985 7); none (or RACK's reordering timer): loss detected from ACKs
    fired: dict[tuple[Any, Any], str] = {}
    for e in evs:
        if e.get("ev") == "timer" and e.get("action") == "fired":
            cause = {"rtx": "rto", "tlp": "probe"}.get(str(e.get("name")))
            key = (e.get("conn"), e.get("t"))
            if cause is not None and fired.get(key) != "rto":
                fired[key] = cause
    out: list[Retransmission] = []
    for e in evs:
        if e.get("ev") == "retransmit":
            cause = fired.get((e.get("conn"), e.get("t")), "fast")
            out.append(Retransmission(_ms(e["t"], t0), "rawtcp", str(e.get("flags") or ""),
                                      e.get("rseq"), int(e.get("len") or 0), cause))
    # The kernel's: incoming sequence space seen before. Its transmissions are the incoming
    # seg events, plus incoming segments a fault dropped (never seen by the core), minus
    # the extra copies a duplicate fault made; a segment a fault delayed or held was sent
    # when the fault took it (its later arrival is not a new transmission).
    top: dict[Any, int] = {}
    last_tx: dict[tuple[Any, int], int] = {}
    skip: Counter[tuple] = Counter()
    held: list[list] = []          # [key, arrival time or None until released] per held copy
    acks_out: list[Event] = []
    for e in evs:
        kind, d = e.get("ev"), e.get("dir")
        if kind == "seg" and d == "out":
            acks_out.append(e)
            continue
        key = (e.get("seq"), e.get("flags"), e.get("len"))
        action = e.get("action") if kind == "fault" and d == "in" else None
        if action == "duplicate":
            skip[key] += int(e.get("copies") or 1)
            continue
        if action == "delay":
            held.append([key, e["t"] + round(float(e.get("ms") or 0) * 1000)])
        elif action == "reorder":
            held.append([key, None])
        elif kind == "fault_release" and d == "in":
            for h in held:
                if h[0] == key and h[1] is None:
                    h[1] = e["t"]
                    break
            continue
        is_tx = (kind == "seg" and d == "in") or action in ("drop", "delay", "reorder")
        if not is_tx or "seq" not in e:
            continue
        if kind == "seg":
            late = next((h for h in held if h[0] == key and h[1] is not None
                         and e["t"] >= h[1]), None)
            if late is not None:          # the held copy arriving: sent when it was taken
                held.remove(late)
                continue
            if skip[key]:
                skip[key] -= 1
                continue
        n = seq_len(e)
        if not n or e.get("rseq") is None:
            continue
        conn, start = e.get("conn"), int(e["rseq"])
        end = start + n
        prev = last_tx.get((conn, start))
        if conn in top and end <= top[conn] and prev is not None:
            dup = [a for a in acks_out if prev <= a["t"] <= e["t"] and a.get("conn") == conn
                   and a.get("rack") == start and not a.get("len")
                   and a.get("flags") == "A"]
            sack = any((a.get("opts") or {}).get("sack") for a in dup)
            gap_ms = (e["t"] - prev) / 1000
            cause = ("fast" if len(dup) >= DUPTHRESH or sack
                     else "rto" if gap_ms >= RTO_FLOOR_MS else "probe")
            out.append(Retransmission(_ms(e["t"], t0), "kernel", str(e.get("flags") or ""),
                                      start, int(e.get("len") or 0), cause))
        top[conn] = max(top.get(conn, 0), end)
        last_tx[(conn, start)] = e["t"]
    out.sort(key=lambda r: r.t_ms)
    return out


def facts_from_events(events: list[Event], *, rule: str | None = None, passed: bool = False,
                      checks_failed: Iterable[str] = (), error: str | None = None,
                      duration_s: float = 0.0) -> Facts:
    """Reduce a run's trace to :class:`Facts`. ``rule``: the sweep rule (action first) whose
    fault event is the run's ``hit``."""
    evs = enrich(sorted(events, key=lambda e: e.get("t", 0)))
    t0 = _t0(evs)
    f = Facts(passed=passed, checks_failed=list(checks_failed), error=error,
              duration_s=round(duration_s, 3))
    segs = [e for e in evs if e.get("ev") == "seg"]
    f.segments = len(segs)
    if segs:
        f.finish_ms = _ms(segs[-1]["t"], t0)
    last: dict[str, Event] = {}
    for e in evs:
        if e.get("ev") == "state" and not _listener_conn(e.get("conn")):
            last[str(e.get("conn"))] = e
    f.final_states = [str(e.get("new")) for e in last.values()]
    closed = [e["t"] for e in last.values() if e.get("new") == "CLOSED"]
    if closed and len(closed) == len(last):
        f.closed_ms = _ms(max(closed), t0)
    klast: dict[tuple, str] = {}
    for e in evs:
        if e.get("ev") == "kernel":
            klast[(e.get("local"), e.get("remote"))] = str(e.get("state"))
    f.kernel_final = list(klast.values())
    f.rst_out = sum(1 for e in segs if e.get("dir") == "out" and "R" in str(e.get("flags")))
    f.rst_in = sum(1 for e in segs if e.get("dir") == "in" and "R" in str(e.get("flags")))
    f.errors = [int(e["errno"]) for e in evs if e.get("ev") == "error"
                and isinstance(e.get("errno"), int)]
    f.retransmissions = _retransmissions(evs, t0)
    racks_in = [e["rack"] for e in segs if e.get("dir") == "in" and e.get("rack") is not None
                and "R" not in str(e.get("flags"))]
    racks_out = [e["rack"] for e in segs if e.get("dir") == "out" and e.get("rack") is not None
                 and "R" not in str(e.get("flags"))]
    f.acked_out = max(racks_in, default=None)
    f.acked_in = max(racks_out, default=None)
    if rule is not None:
        text = parse_action_rule(rule).text
        for e in evs:
            if e.get("ev") == "fault" and e.get("rule") == text:
                f.hit = {"t_ms": _ms(e["t"], t0), "dir": e.get("dir"), "flags": e.get("flags"),
                         "rseq": e.get("rseq"), "rack": e.get("rack"), "len": e.get("len"),
                         "action": e.get("action")}
                break
    return f


def facts_from_result(result: Any, rule: str | None = None) -> Facts:
    """:func:`facts_from_events` of an experiment :class:`~rawtcp.experiments.base.Result`."""
    failed = [c.name for c in result.checks if not c.ok]
    return facts_from_events(result.events, rule=rule, passed=result.passed,
                             checks_failed=failed, error=result.error,
                             duration_s=result.duration_s)


# ------------------------------------------------------------------------------ classify
@dataclass
class Outcome:
    """How a run ended compared with the reference (see the module docstring)."""

    kind: str
    detail: str = ""
    recovery: str | None = None     # rto | fast | probe | none (recovered only)
    by: str | None = None           # who retransmitted: rawtcp | kernel
    later_ms: float | None = None   # the last segment, this much after the reference's
    checks_failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def short(self) -> str:
        if self.kind == "recovered":
            if self.recovery in (None, "none"):
                return "recovered (no retransmission)"
            return f"recovered: {self.recovery} by {self.by}"
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def _new_retransmissions(ref: Facts, run: Facts) -> list[Retransmission]:
    """The run's retransmissions the reference did not have (by who, what), in time order."""
    seen = Counter((r.by, r.flags, r.rseq, r.len) for r in ref.retransmissions)
    out: list[Retransmission] = []
    for r in run.retransmissions:
        key = (r.by, r.flags, r.rseq, r.len)
        if seen[key]:
            seen[key] -= 1
        else:
            out.append(r)
    return out


def classify(ref: Facts, run: Facts) -> Outcome:
    """The outcome of one sweep run against the reference run."""
    later = (round(run.finish_ms - ref.finish_ms, 3)
             if run.finish_ms is not None and ref.finish_ms is not None else None)
    o = Outcome("recovered", later_ms=later, checks_failed=list(run.checks_failed))
    if run.error is not None and run.segments == 0:
        o.kind, o.detail = "error", run.error
        return o
    if run.hit is None:
        o.kind = "not-reached"
        o.detail = "this run never sent that segment"
        return o
    if errno.ETIMEDOUT in run.errors and errno.ETIMEDOUT not in ref.errors:
        o.kind, o.detail = "etimedout", "rawtcp gave up (ETIMEDOUT)"
        return o
    if run.rst_out > ref.rst_out or run.rst_in > ref.rst_in:
        who = [w for w, a, b in (("rawtcp", run.rst_out, ref.rst_out),
                                 ("kernel", run.rst_in, ref.rst_in)) if a > b]
        o.kind, o.detail = "rst", "RST from " + " and ".join(who)
        return o
    if Counter(run.final_states) != Counter(ref.final_states):
        odd = sorted(set(run.final_states) - set(ref.final_states)) or run.final_states
        o.kind = "stuck"
        o.detail = (f"rawtcp ended in {', '.join(odd) or 'no state'} (reference: "
                    f"{', '.join(ref.final_states) or 'none'})")
        return o
    if (run.acked_out, run.acked_in) != (ref.acked_out, ref.acked_in):
        o.kind = "data-mismatch"
        o.detail = (f"acknowledged out/in {run.acked_out}/{run.acked_in}, reference "
                    f"{ref.acked_out}/{ref.acked_in}")
        return o
    hit_ms = run.hit.get("t_ms") or 0.0
    new = [r for r in _new_retransmissions(ref, run) if r.t_ms >= hit_ms]
    if new:
        o.recovery, o.by = new[0].cause, new[0].by
        o.detail = (f"{new[0].by} retransmitted {new[0].flags} seq={new[0].rseq} "
                    f"at {new[0].t_ms:g} ms ({new[0].cause})")
    else:
        o.recovery = "none"
        o.detail = "no retransmission"
    return o


# ------------------------------------------------------------------------------ results
@dataclass
class Row:
    segment: Segment
    fault: Fault
    rule: str
    outcome: Outcome
    facts: Facts

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.segment.index, "dir": self.segment.dir,
                "segment": self.segment.label, "t_ms": self.segment.t_ms,
                "state": self.segment.state, "fault": self.fault.name, "rule": self.rule,
                "outcome": self.outcome.kind, "recovery": self.outcome.recovery,
                "by": self.outcome.by, "later_ms": self.outcome.later_ms,
                "detail": self.outcome.detail, "checks_failed": self.outcome.checks_failed,
                "hit": self.facts.hit, "duration_s": self.facts.duration_s}


@dataclass
class SweepResult:
    name: str
    seed: int
    direction: str
    reference: Facts
    reference_passed: bool
    segments: list[Segment]          # every reference segment
    rows: list[Row]
    events: list[Event] = field(default_factory=list, repr=False)   # the reference trace
    duration_s: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.outcome.kind for r in self.rows))

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.name, "seed": self.seed, "direction": self.direction,
                "reference": {"passed": self.reference_passed,
                              "finish_ms": self.reference.finish_ms,
                              "segments": len(self.segments),
                              "checks_failed": self.reference.checks_failed},
                "segments": [asdict(s) for s in self.segments],
                "rows": [r.to_dict() for r in self.rows], "counts": self.counts(),
                "duration_s": round(self.duration_s, 3), "files": self.files}


# ------------------------------------------------------------------------------ running
def sweep(name: str, *, direction: str = "both", jobs: int = 1, max_segments: int = 16,
          indices: Iterable[int] | None = None,
          select: Callable[[Segment], bool] | None = None, also: Fault | None = None,
          seed: int = 1,
          run_timeout: float = 120.0, config_overrides: dict[str, Any] | None = None,
          report_dir: str | None = None,
          progress: Callable[[str], None] | None = None) -> SweepResult:
    """Record, plan, run and classify (module docstring). ValueError for a bad argument
    and LookupError for an unknown experiment, both before any lab is built; OSError when
    the reference run itself fails. Files under ``report_dir`` (the reference run's in
    ``report_dir/reference``) are left to :mod:`rawtcp.experiments.sweep_report`.

    ``select``: keep only the reference segments it accepts (applied before
    ``max_segments``), e.g. ``lambda s: s.state == "TIME_WAIT"``."""
    from rawtcp.experiments.base import check_overrides
    from rawtcp.experiments.catalogue import load_all
    for key, v in (("jobs", jobs), ("max_segments", max_segments), ("seed", seed),
                   ("run_timeout", run_timeout)):
        check_limit(key, v)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if also is not None and also.action not in ALSO:
        raise ValueError(f"also must be duplicate or delay, not {also.action!r}")
    overrides = check_overrides(config_overrides)
    if name not in load_all():
        raise LookupError(f"no experiment named {name!r}; `rawtcp experiment list` shows them")
    say = progress or (lambda _m: None)
    t_start = time.monotonic()
    say(f"reference run of {name}")
    from rawtcp.experiments.sweep_pool import run_tasks

    ref_task = {"name": name, "seed": seed, "rule": None, "overrides": overrides,
                "reference": True,
                "report_dir": os.path.join(report_dir, "reference") if report_dir else None}
    ref_out = run_tasks([ref_task], 1, run_timeout, say, _WORKER)[0]
    events: list[Event] = ref_out.pop("_events", None) or []
    files: dict[str, str] = ref_out.pop("_files", None) or {}
    ref_facts = Facts.from_dict(ref_out)
    if not any(e.get("ev") == "seg" for e in events):
        raise OSError(errno.EIO, f"the reference run of {name} sent no segment"
                      + (f" ({ref_facts.error})" if ref_facts.error else ""))
    segments = reference_segments(events)
    conns = {e.get("conn") for e in events if e.get("ev") == "seg" and e.get("conn")}
    if len(conns) > 1:
        say(f"note: {len(conns)} connections in the reference; a rule acts once in each "
            "stack of a run (docs/experiments.md, Sweep, Limits)")
    chosen = plan(segments, direction, max_segments, indices, select)
    faults = [Fault()] + ([also] if also is not None else [])
    tasks = [{"name": name, "seed": seed, "rule": s.rule(f), "overrides": overrides,
              "key": [s.index, f.action]} for s in chosen for f in faults]
    say(f"{len(segments)} segments in the reference; {len(tasks)} runs, {jobs} at a time")
    done = [Facts.from_dict(d) for d in run_tasks(tasks, jobs, run_timeout, say,
                                                          _WORKER)]
    rows: list[Row] = []
    by_key = {(s.index, f.action): (s, f) for s in chosen for f in faults}
    for task, facts in zip(tasks, done):
        s, f = by_key[tuple(task["key"])]
        rows.append(Row(s, f, task["rule"], classify(ref_facts, facts), facts))
    return SweepResult(name, seed, direction, ref_facts, ref_facts.passed, segments, rows,
                       events, time.monotonic() - t_start, files)


# ------------------------------------------------------------------------------ the child
def run_task(task: dict) -> dict[str, Any]:
    """One sweep run, in a child process (:mod:`rawtcp.experiments.sweep_pool`): the
    experiment with the task's rule added, reduced to :class:`Facts` (as a dict). The
    reference run (``rule`` None, ``reference`` true) also writes ``report_dir`` and hands
    back its trace events and files as ``_events`` and ``_files``."""
    from rawtcp.experiments.runner import run_experiment

    rule = task.get("rule")
    res = run_experiment(task["name"], seed=int(task["seed"]), ladder=False,
                         extra_faults=[rule] if rule else [],
                         report_dir=task.get("report_dir"),
                         config_overrides=task.get("overrides") or None)
    out = facts_from_result(res, rule).to_dict()
    if task.get("reference"):
        out["_events"] = res.events
        out["_files"] = res.files
    return out


if __name__ == "__main__":
    import sys

    from rawtcp.experiments.sweep_pool import worker_main

    sys.exit(worker_main(sys.argv[1:], run_task))
