"""Two runs of one scenario, side by side: what rawtcp did and what Linux did in its place.

Pure functions over trace-like events (docs/contracts.md ``seg``, ``fault``, ``state``): no
lab, no clock. Used by ``rawtcp experiment run NAME --peer-swap``
(:mod:`rawtcp.experiments.peerswap`), usable on any two traces.

- :func:`seg_rows` turns one side's events into :class:`SegRow` s: every segment the subject
  (rawtcp, or the Linux socket in its place) sent or was sent, times in ms from the first
  segment, relative seq/ack, retransmissions (``rtx``, from :mod:`rawtcp.report.enrich`),
  a ``dropped`` mark (a fault rule or an nftables rule ate it) and
  the subject's state (``state`` of the event; :func:`infer_states` fills it in from the
  segments when the side has no per-segment states, as for a Linux socket seen on the wire).
- :func:`align` pairs the two sequences (longest common subsequence on direction, flags
  without PSH, relative seq, relative ack and length: window, options, PSH and timing are
  compared after pairing, not used to pair).
- :func:`compare` lists the differences: a segment only one side has, a different state at a
  paired segment, a drop on one side only, a retransmission timer that fired at a different
  time (beyond ``tol_ms``), a different PSH, and the state sequences themselves.
- :func:`render_side_by_side` draws the paired rows as two compact ladders with the
  differences marked in a middle column.

Inferred states follow RFC 9293 3.10.7 (segment arrives) and 3.10.4-3.10.5 (user calls seen as
their segments): an outgoing FIN moves ESTABLISHED to FIN_WAIT_1 and CLOSE_WAIT to LAST_ACK,
the ACK of our FIN moves FIN_WAIT_1 to FIN_WAIT_2, CLOSING to TIME_WAIT and LAST_ACK to
CLOSED, the peer's FIN moves ESTABLISHED to CLOSE_WAIT, FIN_WAIT_1 to CLOSING and FIN_WAIT_2
to TIME_WAIT, an RST either way to CLOSED, and an RST we send in answer to a segment that
arrived after our FIN means the segment found no connection (3.10.7.1): it arrived in CLOSED
(an orphaned Linux socket can be gone before its TIME_WAIT). States that only time ends
(TIME_WAIT) stay until the side's own observations (``state`` events) say otherwise.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

Event = dict[str, Any]

__all__ = ["Difference", "SegRow", "align", "compare", "infer_states", "render_side_by_side",
           "retransmission_delays", "seg_rows", "state_timeline"]

_MOD = 1 << 32


@dataclass
class SegRow:
    """One segment as one side saw it. ``t`` in ms from the side's first segment; ``dir`` from
    the subject's point of view ("out": the subject sent it); ``state`` the subject's state
    when it sent the segment (after any change the sending made) or when the segment arrived
    (before processing it), as rawtcp's trace records it."""

    t: float
    dir: str
    flags: str
    rseq: int | None
    rack: int | None
    len: int
    rtx: bool = False
    dropped: bool = False
    state: str | None = None
    win: int | None = None

    def key(self) -> tuple:
        return (self.dir, self.flags.replace("P", ""), self.rseq, self.rack, self.len)

    def label(self) -> str:
        ack = "" if self.rack is None else f" ack={self.rack}"
        return f"{self.flags} seq={self.rseq}{ack} len={self.len}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Difference:
    """One difference: ``kind`` is one of only-rawtcp, only-linux (names of the two sides as
    given to :func:`compare`: ``only-<left>``, ``only-<right>``), order, state, drop, timer,
    psh, state-sequence; ``row`` the index of the paired row it belongs to (None for whole-run
    differences); ``what`` one sentence."""

    kind: str
    what: str
    row: int | None = None
    left: dict | None = None
    right: dict | None = None
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "what": self.what, "row": self.row, "left": self.left,
                "right": self.right, **self.data}


# ----------------------------------------------------------------------------- rows from events
def _origin(events: list[Event]) -> int | None:
    ts = [int(e["t"]) for e in events if e.get("ev") in ("seg", "fault") and "t" in e
          and e.get("flags") is not None]
    return min(ts) if ts else None


def seg_rows(events: list[Event], conn: str | None = None) -> list[SegRow]:
    """The subject's segments in time order. A ``fault`` event with action drop marks the
    segment it names: an outgoing one is the ``seg`` event just before it with the same
    seq/ack/flags; an incoming one never became a ``seg`` event (it died before the stack)
    and becomes a row of its own. ``conn`` keeps one connection; events without ``conn``
    (a capture) are kept. Times are ms from the first segment (or dropped segment)."""
    from rawtcp.report.enrich import enrich

    t0 = _origin(events)
    rows: list[SegRow] = []
    evs = enrich(sorted((e for e in events if "t" in e), key=lambda e: e["t"]))
    for e in evs:
        kind = e.get("ev")
        if conn is not None and e.get("conn") not in (None, conn):
            continue
        if kind == "seg":
            rows.append(_row(e, t0))
        elif kind == "fault" and e.get("action") == "drop" and e.get("flags") is not None:
            if e.get("dir") == "out":
                for r in reversed(rows):
                    if r.dir == "out" and r.flags == e.get("flags") \
                            and r.rseq == e.get("rseq") and r.rack == e.get("rack"):
                        r.dropped = True
                        break
                else:
                    rows.append(_row(e, t0, dropped=True))
            else:
                rows.append(_row(e, t0, dropped=True))
    return rows


def _row(e: Event, t0: int | None, dropped: bool = False) -> SegRow:
    t = (int(e["t"]) - (t0 or 0)) / 1000
    rack = e.get("rack") if "A" in str(e.get("flags") or "") else None
    return SegRow(t=round(t, 3), dir=str(e.get("dir")), flags=str(e.get("flags") or ""),
                  rseq=e.get("rseq"), rack=rack, len=int(e.get("len") or 0),
                  rtx=bool(e.get("rtx")), dropped=dropped, state=e.get("state"),
                  win=e.get("win"))


def state_timeline(events: list[Event], kind: str = "state") -> list[tuple[float, str]]:
    """(ms from the first segment, state) for each change of the subject's state:
    ``state`` events (``new``; listeners excluded) or, with ``kind="kernel"``, sampled states
    (``state``). Repeats are folded."""
    t0 = _origin(events) or 0
    out: list[tuple[float, str]] = []
    for e in sorted((e for e in events if e.get("ev") == kind and "t" in e),
                    key=lambda e: e["t"]):
        if kind == "state" and "*" in str(e.get("conn", "")):
            continue
        name = str(e.get("new") if kind == "state" else e.get("state"))
        if out and out[-1][1] == name:
            continue
        out.append((round((int(e["t"]) - t0) / 1000, 3), name))
    return out


# ----------------------------------------------------------------------------- inference
_AFTER_OUR_FIN = ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "TIME_WAIT", "LAST_ACK")


def infer_states(rows: list[SegRow]) -> list[tuple[float, str]]:
    """Fill in ``state`` of every row from the segments alone (see the module docstring), in
    place, and return the state timeline (ms, state) they imply, as :func:`state_timeline`
    gives for a trace. Dropped incoming segments change nothing (they never arrived); dropped
    outgoing ones were sent, so they change the sender's state."""
    state = "CLOSED"
    timeline: list[tuple[float, str]] = []
    our_fin_end: int | None = None        # rseq just past our FIN

    def move(t: float, new: str) -> None:
        nonlocal state
        if new != state:
            timeline.append((t, new))
        state = new

    for i, r in enumerate(rows):
        f = r.flags
        if r.dir == "out":
            if "R" in f:
                prev = rows[i - 1] if i > 0 else None
                if prev is not None and prev.dir == "in" and not prev.dropped \
                        and "R" not in prev.flags and prev.state in _AFTER_OUR_FIN + ("CLOSED",):
                    # the segment this RST answers found no connection: undo what it did
                    while timeline and timeline[-1][0] == prev.t and timeline[-1][1] != "CLOSED":
                        timeline.pop()
                    state = timeline[-1][1] if timeline else "CLOSED"
                    prev.state = "CLOSED"
                    move(prev.t, "CLOSED")
                move(r.t, "CLOSED")
            elif "S" in f:
                move(r.t, "SYN_SENT" if "A" not in f else "SYN_RECEIVED")
            elif "F" in f and r.rseq is not None:
                if state in ("ESTABLISHED", "SYN_RECEIVED"):
                    move(r.t, "FIN_WAIT_1")
                elif state == "CLOSE_WAIT":
                    move(r.t, "LAST_ACK")
                our_fin_end = (r.rseq + r.len + 1) % _MOD
            r.state = state
            continue
        r.state = state
        if r.dropped:
            continue
        if "R" in f:
            move(r.t, "CLOSED")
            continue
        if "S" in f:
            if "A" in f and state == "SYN_SENT":
                move(r.t, "ESTABLISHED")
            elif state in ("CLOSED", "LISTEN"):
                move(r.t, "SYN_RECEIVED")
            continue
        new = state
        if new == "SYN_RECEIVED" and "A" in f:
            new = "ESTABLISHED"
        if our_fin_end is not None and "A" in f and r.rack == our_fin_end:
            new = {"FIN_WAIT_1": "FIN_WAIT_2", "CLOSING": "TIME_WAIT",
                   "LAST_ACK": "CLOSED"}.get(new, new)
        if "F" in f:
            new = {"ESTABLISHED": "CLOSE_WAIT", "FIN_WAIT_1": "CLOSING",
                   "FIN_WAIT_2": "TIME_WAIT"}.get(new, new)
        move(r.t, new)
    return timeline


# ----------------------------------------------------------------------------- alignment
def align(left: list[SegRow], right: list[SegRow]) -> list[tuple[SegRow | None, SegRow | None]]:
    """Pairs (left, right) in order; an unpaired segment has None on the other side. Pairing is
    a longest common subsequence of :meth:`SegRow.key` (no timing, window, options or PSH);
    inside a block of unpaired segments the left side's rows come first. A segment both sides
    have, but in a different order relative to its neighbours (at most ``MOVE_WINDOW`` rows
    apart), is paired too, at the earlier place (:func:`compare` calls it an ``order``
    difference)."""
    return _align(left, right)[0]


MOVE_WINDOW = 4


def _align(left: list[SegRow], right: list[SegRow]
           ) -> tuple[list[tuple[SegRow | None, SegRow | None]], set[int]]:
    a = [r.key() for r in left]
    b = [r.key() for r in right]
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    out: list[tuple[SegRow | None, SegRow | None]] = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            out.extend(zip(left[i1:i2], right[j1:j2], strict=True))
        else:
            out.extend((r, None) for r in left[i1:i2])
            out.extend((None, r) for r in right[j1:j2])
    moved: list[tuple[SegRow | None, SegRow | None]] = []
    i = 0
    while i < len(out):
        x, y = out[i]
        if (x is None) != (y is None):
            mine = x if x is not None else y
            assert mine is not None
            for j in range(i + 1, min(len(out), i + 1 + MOVE_WINDOW)):
                u, v = out[j]
                other = v if x is not None else u
                if (u is None) != (v is None) and other is not None \
                        and (u is None) == (x is not None) and other.key() == mine.key():
                    out[i] = (x, v) if x is not None else (u, y)
                    del out[j]
                    moved.append(out[i])
                    break
        i += 1
    ids = {id(p) for p in moved}
    return out, {k for k, p in enumerate(out) if id(p) in ids}


def retransmission_delays(pairs: list[tuple[SegRow | None, SegRow | None]],
                          left: list[SegRow], right: list[SegRow]) -> list[dict]:
    """Every paired retransmission both sides made: ``{"row", "segment", "left_ms",
    "right_ms"}``, the delay after the first transmission on each side (what their timers
    did, whether or not the difference is beyond the tolerance)."""
    out: list[dict] = []
    for i, (a, b) in enumerate(pairs):
        if a is None or b is None or not (a.rtx and b.rtx):
            continue
        fa, fb = _first_sent(left, a), _first_sent(right, b)
        if fa is not None and fb is not None:
            out.append({"row": i, "segment": a.label(), "left_ms": round(a.t - fa.t, 1),
                        "right_ms": round(b.t - fb.t, 1)})
    return out


def _first_sent(rows: list[SegRow], r: SegRow) -> SegRow | None:
    """The first transmission of the sequence space ``r`` retransmits."""
    for x in rows:
        if x is r:
            return None
        if x.dir == r.dir and x.rseq == r.rseq and x.len == r.len \
                and x.flags.replace("P", "") == r.flags.replace("P", ""):
            return x
    return None


def compare(left: list[SegRow], right: list[SegRow], *, names: tuple[str, str] = ("rawtcp",
            "linux"), tol_ms: float = 50.0,
            left_states: list[tuple[float, str]] | None = None,
            right_states: list[tuple[float, str]] | None = None,
            left_end: float | None = None, right_end: float | None = None,
            ) -> tuple[list[tuple[SegRow | None, SegRow | None]], list[Difference]]:
    """Align the two sides and list every difference (see the module docstring).

    ``tol_ms``: a retransmission whose delay after the first transmission differs by more
    than this between the sides is a timer difference (both delays are in the difference
    either way, in ``data``). ``left_states``/``right_states``: (ms, state) timelines
    (:func:`state_timeline`) compared as sequences; a state one side went through and the
    other did not is a ``state-sequence`` difference. ``left_end``/``right_end``: when each
    side stopped watching (ms): the states a timer ends (TIME_WAIT, FIN_WAIT_2) are compared
    by how long they lasted, an open one by how long it was seen at least."""
    ln, rn = names
    pairs, moved = _align(left, right)
    diffs: list[Difference] = []
    for i, (a, b) in enumerate(pairs):
        if a is None or b is None:
            only, side = (rn, b) if a is None else (ln, a)
            assert side is not None
            where = f" in {side.state}" if side.state else ""
            verb = "sent" if side.dir == "out" else "received"
            diffs.append(Difference(f"only-{only}",
                                    f"only {only} {verb} {side.label()}{where} at "
                                    f"{side.t:.1f} ms", i,
                                    a.to_dict() if a else None, b.to_dict() if b else None))
            continue
        ad, bd = a.to_dict(), b.to_dict()
        if i in moved:
            diffs.append(Difference("order", f"{a.label()} comes in a different order among "
                                    f"the segments around it ({ln} at {a.t:.1f} ms, {rn} at "
                                    f"{b.t:.1f} ms)", i, ad, bd))
        if a.state and b.state and a.state != b.state:
            diffs.append(Difference("state", f"{a.label()} {'sent' if a.dir == 'out' else 'met'}"
                                    f" {ln} in {a.state}, {rn} in {b.state}", i, ad, bd))
        if a.dropped != b.dropped:
            who = ln if a.dropped else rn
            diffs.append(Difference("drop", f"{a.label()} dropped on the {who} side only", i,
                                    ad, bd))
        if ("P" in a.flags) != ("P" in b.flags):
            diffs.append(Difference("psh", f"{a.label()}: PSH from {ln if 'P' in a.flags else rn}"
                                    " only", i, ad, bd))
        if a.rtx and b.rtx:
            fa, fb = _first_sent(left, a), _first_sent(right, b)
            if fa is not None and fb is not None:
                da, db = round(a.t - fa.t, 1), round(b.t - fb.t, 1)
                if abs(da - db) > tol_ms:
                    diffs.append(Difference(
                        "timer", f"retransmission of {a.label()} after {da} ms at {ln}, "
                        f"{db} ms at {rn} (tolerance {tol_ms:g} ms)", i, ad, bd,
                        {f"{ln}_ms": da, f"{rn}_ms": db}))
    if left_states is not None and right_states is not None:
        diffs.extend(_state_sequence(left_states, right_states, ln, rn))
        diffs.extend(_timed_states(left_states, right_states, left_end, right_end, ln, rn,
                                   tol_ms))
    return pairs, diffs


TIMED_STATES = ("TIME_WAIT", "FIN_WAIT_2")


def _span(tl: list[tuple[float, str]], name: str, end: float | None
          ) -> tuple[float, bool] | None:
    """(duration ms, ended) of the first stay in ``name``; an open stay lasts until ``end``."""
    for i, (t, s) in enumerate(tl):
        if s == name:
            if i + 1 < len(tl):
                return round(tl[i + 1][0] - t, 1), True
            return (round(end - t, 1), False) if end is not None else None
    return None


def _say(name: str, who: str, d: float, ended: bool) -> str:
    return (f"{name} lasted {d:g} ms at {who}" if ended
            else f"{who} was still in {name} when it stopped watching, {d:g} ms in")


def _timed_states(ls: list[tuple[float, str]], rs: list[tuple[float, str]], lend: float | None,
                  rend: float | None, ln: str, rn: str, tol: float) -> list[Difference]:
    out: list[Difference] = []
    for name in TIMED_STATES:
        a, b = _span(ls, name, lend), _span(rs, name, rend)
        if a is None or b is None:
            continue
        (da, ea), (db, eb) = a, b
        if not ea and not eb:
            continue
        if ea and eb:
            differs = abs(da - db) > tol
        elif ea:
            differs = db > da + tol       # the right side stayed longer than left's whole stay
        else:
            differs = da > db + tol
        if not differs:
            continue
        out.append(Difference("timer", f"{_say(name, ln, da, ea)}; {_say(name, rn, db, eb)}",
                              data={"state": name, f"{ln}_ms": da, f"{ln}_ended": ea,
                                    f"{rn}_ms": db, f"{rn}_ended": eb}))
    return out


def _state_sequence(ls: list[tuple[float, str]], rs: list[tuple[float, str]], ln: str,
                    rn: str) -> list[Difference]:
    a, b = [s for _, s in ls], [s for _, s in rs]
    # a timed state one side left and the other was still in when it stopped watching is a
    # timer difference (_timed_states), not a missing state
    for x, y in ((a, b), (b, a)):
        if len(x) >= 2 and x[-1] == "CLOSED" and x[-2] in TIMED_STATES and y \
                and y[-1] == x[-2]:
            del x[-1]
    out: list[Difference] = []
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            out.append(Difference("state-sequence",
                                  f"{ln} went through {', '.join(a[i1:i2])}"
                                  + (f" where {rn} went through {', '.join(b[j1:j2])}"
                                     if j2 > j1 else f", {rn} did not"),
                                  data={ln: a[i1:i2], rn: b[j1:j2]}))
        elif j2 > j1:
            out.append(Difference("state-sequence",
                                  f"{rn} went through {', '.join(b[j1:j2])}, {ln} did not",
                                  data={ln: [], rn: b[j1:j2]}))
    return out


# ----------------------------------------------------------------------------- drawing
_MARK = {"state": "s", "drop": "x", "timer": "t", "psh": "p", "order": "o"}


def _cell(r: SegRow | None, width: int) -> str:
    if r is None:
        return " " * width
    head = f"{r.t:9.1f} {str(r.state or '')[:11]:<11} "
    aw = width - len(head)
    lab = " " + r.label() + (" [rtx]" if r.rtx else "") + " "
    room = aw - 3
    if len(lab) > room:
        lab = lab[: room - 1] + " "
    if r.dir == "out":
        body = "-" * ((room - len(lab)) // 2) + lab
        if r.dropped:
            body = (body + "X").ljust(room + 1)
        else:
            body = (body + "-" * (room - len(body)) + ">")
        return head + "|" + body[: aw - 2] + "|"
    fill = room - len(lab)
    body = ("X" if r.dropped else "<") + "-" * (fill - fill // 2) + lab + "-" * (fill // 2)
    return head + "|" + body[: aw - 2].ljust(aw - 2) + "|"


def render_side_by_side(pairs: list[tuple[SegRow | None, SegRow | None]],
                        diffs: list[Difference], names: tuple[str, str] = ("rawtcp", "linux"),
                        width: int = 150) -> str:
    """Both sides as compact ladders, one paired row per line, with a marker column:
    ``<`` only the left side, ``>`` only the right side, ``s`` different state, ``x`` dropped
    on one side only, ``t`` timer differs, ``p`` PSH differs, ``o`` a different order. A list
    of the differences in words follows."""
    cw = max(60, (width - 4) // 2)
    marks: dict[int, str] = {}
    for d in diffs:
        if d.row is None:
            continue
        if d.kind.startswith("only-"):
            m = "<" if pairs[d.row][1] is None else ">"
        else:
            m = _MARK.get(d.kind, "*")
        marks[d.row] = (marks.get(d.row, "") + m)[:2]
    ln, rn = names
    out = ["row " + f"{'ms':>9} {ln:<11} {'(' + ln + ' sends ->)':^{cw - 22}}".ljust(cw)
           + "    " + f"{'ms':>9} {rn:<11} {'(' + rn + ' sends ->)':^{cw - 22}}"]
    for i, (a, b) in enumerate(pairs):
        out.append(f"{i + 1:>3} " + _cell(a, cw) + f" {marks.get(i, ''):<2} " + _cell(b, cw))
    out.append("")
    whole = [d for d in diffs if d.row is None]
    per_row = [d for d in diffs if d.row is not None]
    if not diffs:
        out.append("no differences (segments paired one to one; states and timers agree)")
    else:
        out.append(f"{len(diffs)} difference(s) (< only left, > only right, s state, x drop, "
                   "t timer, p PSH, o order):")
        for d in per_row + whole:
            where = f"row {d.row + 1}: " if d.row is not None else ""
            out.append(f"  [{d.kind}] {where}{d.what}")
    return "\n".join(out) + "\n"
