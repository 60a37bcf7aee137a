"""Reading one connection out of a rawtcp trace, for the exporter (:mod:`.export`).

The trace's ``seg`` events of the connection become :class:`_Seg` transmissions; its
``fault``/``fault_release`` events (whichever stack's engine traced them) say what the link did
to each: lost, corrupted, delayed, duplicated, reordered. A peer segment lost before rawtcp
saw it is known only from its fault event (options unknown).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rawtcp.core.segment import parse_flags

MASK = 0xFFFFFFFF
Event = dict[str, Any]


class ExportError(ValueError):
    """The trace holds no connection that can be exported (says why)."""


@dataclass
class _Seg:
    """One transmission of a segment, on the link between rawtcp and the peer."""

    t: int                       # when the sender sent it (sender's view, rawtcp's clock)
    idx: int                     # position in the trace: orders events at the same time
    ours: bool                   # sent by rawtcp
    flags: int
    seq: int
    ack: int
    win: int
    length: int
    opts: dict | None            # None: unknown (a peer segment dropped before rawtcp)
    urp: int = 0
    seen_by_rawtcp: bool = True  # the peer's: rawtcp received it; ours: always True
    peer_clock: bool = False     # t is already the peer's send time (a fault at the peer's side)
    sent_t: tuple[int, bool] | None = None   # the peer's: (when a reorder fault saw it, at
    #                                          the peer's side) -- its send time, not arrival
    held_us: int = 0             # the peer's: time the link held it (a delay fault)
    copy: bool = False           # the peer's: a copy the link made (a duplicate fault)
    arrivals: list[int] = field(default_factory=list)  # ours: when the peer got each copy
    arrival_idx: float | None = None  # ours: its place among arrivals (a reorder fault)
    released_after: int = 0      # ours: held by a reorder fault until K later segments passed


@dataclass
class _Conn:
    local: tuple[str, int]
    remote: tuple[str, int]
    active: bool                 # rawtcp connected (else it accepted)
    iss: int
    irs: int
    segs: list[_Seg]
    delay: int
    closes: list[tuple[int, str]]   # rawtcp's state changes caused by its app: (t, reason)


# ------------------------------------------------------------------------------ reading
def _select(events: Iterable[Event], ours: str | None) -> list[Event]:
    evs = [e for e in events if isinstance(e, dict)]
    stacks = sorted({str(e["stack"]) for e in evs if "stack" in e})
    if ours is None:
        if len(stacks) > 1:
            raise ExportError(f"the trace holds the stacks {', '.join(stacks)}: say which is "
                              "rawtcp's with ours=")
        return evs
    if ours not in stacks:
        raise ExportError(f"no events of stack {ours!r} in the trace "
                          f"(stacks: {', '.join(stacks) or 'none named'})")
    return [e for e in evs if e.get("stack") == ours]


def _tuple_of(e: Event) -> tuple[tuple[str, int], tuple[str, int]]:
    """(rawtcp's side, the peer's side) of a seg/fault event."""
    src, dst = (str(e["src"]), int(e["sport"])), (str(e["dst"]), int(e["dport"]))
    return (src, dst) if e["dir"] == "out" else (dst, src)


def _parse_conn(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    try:
        a, b = text.split(">")
        la, lp = a.rsplit(":", 1)
        ra, rp = b.rsplit(":", 1)
        return (la.strip("[]"), int(lp)), (ra.strip("[]"), int(rp))
    except ValueError:
        raise ExportError(f"conn {text!r} is not 'laddr:lport>raddr:rport'") from None


def _read(events: Iterable[Event], ours: str | None, conn: str | None,
          delay_us: int | None) -> _Conn:
    every = [e for e in events if isinstance(e, dict)]
    evs = _select(every, ours)
    segs_ev = [e for e in evs if e.get("ev") == "seg" and "src" in e]
    if conn is not None:
        want = _parse_conn(conn)
    else:
        first = next((e for e in segs_ev if "S" in str(e.get("flags", ""))), None)
        if first is None:
            raise ExportError("the trace holds no SYN segment: export needs the handshake")
        want = _tuple_of(first)
    wanted = {id(e) for e in evs}
    segs: list[_Seg] = []
    last_out: dict[tuple, _Seg] = {}
    pending: dict[tuple, list[Event]] = {}      # faults on the peer's segments, not yet seen
    copies: dict[tuple, int] = {}               # duplicates of the peer's segments to come
    for idx, e in enumerate(every):
        kind = e.get("ev")
        if kind not in ("seg", "fault", "fault_release") or "src" not in e:
            continue
        if kind == "seg":
            if id(e) not in wanted or _tuple_of(e) != want:
                continue
            s = _Seg(int(e["t"]), idx, e["dir"] == "out", int(parse_flags(str(e["flags"]))),
                     int(e["seq"]), int(e["ack"]), int(e["win"]), int(e["len"]),
                     e.get("opts") or {}, int(e.get("urp") or 0))
            segs.append(s)
            key = (s.seq, s.ack, s.flags, s.length)
            if s.ours:
                s.arrivals = [s.t]          # shifted by the delay below
                last_out[key] = s
            elif copies.get(key):
                copies[key] -= 1
                s.copy = True
            else:
                for f in pending.pop(key, []):
                    if f["ev"] == "fault" and f.get("action") == "delay":
                        s.held_us += int(float(f.get("ms", 0)) * 1000)
                    elif f["ev"] == "fault" and f.get("action") == "duplicate":
                        copies[key] = copies.get(key, 0) + int(f.get("copies", 1))
                    elif f["ev"] == "fault" and f.get("action") == "reorder":
                        s.sent_t = (int(f["t"]), id(f) not in wanted or "stack" in f)
            continue
        # faults: whichever stack's engine saw them (in a Sim the engine sits on a's side)
        src, dst = (str(e["src"]), int(e["sport"])), (str(e["dst"]), int(e["dport"]))
        if (src, dst) == want:
            s = last_out.get((int(e["seq"]), int(e["ack"]), int(parse_flags(str(e["flags"]))),
                              int(e["len"])))
            if s is not None:
                _apply_fault(s, e)
                if kind == "fault_release":
                    s.arrival_idx = idx
        elif (dst, src) == want and kind == "fault" and e.get("action") not in ("drop",
                                                                                 "corrupt"):
            pending.setdefault((int(e["seq"]), int(e["ack"]), int(parse_flags(str(e["flags"]))),
                                int(e["len"])), []).append(e)
        elif (dst, src) == want and kind == "fault":
            # rawtcp's engine on a link stamps an inbound fault when the segment arrives; an
            # engine on the peer's side (another stack's events), and the Sim's engine (whose
            # events carry "stack"), when the peer sends it
            at_peer = id(e) not in wanted or "stack" in e
            segs.append(_Seg(int(e["t"]), idx, False, int(parse_flags(str(e["flags"]))),
                             int(e["seq"]), int(e["ack"]), int(e["win"]), int(e["len"]),
                             None, seen_by_rawtcp=False, peer_clock=at_peer))
    ours_syn = next((s for s in segs if s.ours and s.flags & 0x02), None)
    peer_syn = next((s for s in segs if not s.ours and s.flags & 0x02), None)
    if ours_syn is None or peer_syn is None:
        raise ExportError("the trace does not hold both SYNs of the connection "
                          f"{want[0][0]}:{want[0][1]}>{want[1][0]}:{want[1][1]}")
    active = not ours_syn.flags & 0x10
    delay = _handshake_delay(segs, active) if delay_us is None else int(delay_us)
    for s in segs:
        if s.ours:
            s.arrivals = [a + delay for a in s.arrivals]
    _place_released([s for s in segs if s.ours])
    conn_text = f"{want[0][0]}:{want[0][1]}>{want[1][0]}:{want[1][1]}"
    closes = [(int(e["t"]), str(e.get("reason", ""))) for e in evs
              if e.get("ev") == "state" and e.get("conn") == conn_text
              and str(e.get("reason", "")).startswith(("close", "abort"))]
    return _Conn(want[0], want[1], active, ours_syn.seq, peer_syn.seq, segs, delay, closes)


def _place_released(ours: list[_Seg]) -> None:
    """A segment a reorder fault held until K later segments passed arrives right after the
    K-th of them (the trace records the release, not which segment caused it)."""
    for i, s in enumerate(ours):
        if not s.released_after or not s.arrivals:
            continue
        later = [x for x in ours[i + 1:] if x.arrivals and not x.released_after]
        if len(later) >= s.released_after:
            k = later[s.released_after - 1]
            s.arrivals = [k.arrivals[0]] * len(s.arrivals)
            s.arrival_idx = (k.arrival_idx if k.arrival_idx is not None else k.idx) + 0.5


def _apply_fault(s: _Seg, e: Event) -> None:
    """What the link did to rawtcp's segment ``s`` on its way to the peer."""
    action = e.get("action")
    if e["ev"] == "fault_release":       # a reordered copy goes on when released
        s.arrivals = [int(e["t"])] * max(1, len(s.arrivals))
        if e.get("why") != "after":      # by its time limit: not behind a given segment
            s.released_after = 0
    elif action == "reorder":
        s.released_after = int(e.get("after", 1))
    elif action in ("drop", "corrupt"):
        s.arrivals = []
    elif action == "delay":
        s.arrivals = [a + int(float(e.get("ms", 0)) * 1000) for a in s.arrivals]
    elif action == "duplicate":
        s.arrivals = s.arrivals + s.arrivals[:1] * int(e.get("copies", 1))


def _handshake_delay(segs: list[_Seg], active: bool) -> int:
    """Half the round trip of the handshake's last exchange, as rawtcp saw it."""
    if active:           # our SYN ... their SYN-ACK
        reply = next((s for s in segs if not s.ours and s.seen_by_rawtcp and s.flags & 0x02), None)
        asks = [s for s in segs if s.ours and s.flags & 0x02]
    else:                # our SYN-ACK ... their first segment acknowledging it
        asks = [s for s in segs if s.ours and s.flags & 0x02]
        reply = next((s for s in segs if not s.ours and s.seen_by_rawtcp and s.flags & 0x10
                      and not s.flags & 0x02 and asks and s.t >= asks[0].t), None)
    if reply is None:
        return 0
    before = [s.t for s in asks if s.t <= reply.t]
    return (reply.t - before[-1]) // 2 if before else 0


# ------------------------------------------------------------------------------ writing


def _lt(a: int, b: int) -> bool:
    return 0 < ((b - a) & MASK) < 1 << 31


def _le(a: int, b: int) -> bool:
    return a == b or _lt(a, b)
