"""The data the report page's ladder draws, made from trace events (docs/contracts.md).

:func:`ladder_model` turns a run's events into plain JSON-able lists:

- ``segs``: one row per ``seg`` event, in time order, as lists with the columns of
  ``SEG_COLUMNS`` (time in us from the first event, direction, flags, seq/ack relative and
  absolute, len, win, our state, connection index, retransmission flag, options text, and
  the fault rules that acted on that segment);
- ``lost``: packets a fault rule dropped before rawtcp saw them (incoming drops and
  corruptions: they have no ``seg`` event), columns ``LOST_COLUMNS``;
- ``timers``: intervals of rawtcp's timers (set until fired, cancelled or set again) per
  lane: rtx (RTO), delack, persist, time_wait (2MSL) and any other timer name;
- ``states``: rawtcp's state changes, ``kstates``: the kernel's (``kernel`` events);
- ``conns``: connection names (``laddr:lport>raddr:rport``).

Nothing here is HTML: :mod:`rawtcp.report.html` escapes what it embeds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rawtcp.report.enrich import enrich

Event = dict[str, Any]

__all__ = ["LOST_COLUMNS", "SEG_COLUMNS", "TIMER_LANES", "ladder_model"]

SEG_COLUMNS = ("t", "dir", "flags", "rseq", "rack", "seq", "ack", "len", "win", "state",
               "conn", "rtx", "opts", "faults", "src", "dst")
LOST_COLUMNS = ("t", "dir", "flags", "rseq", "rack", "len", "conn", "action", "rule")
TIMER_LANES = ("rtx", "delack", "persist", "time_wait")
_LANE_TITLES = {"rtx": "RTO", "delack": "delayed ACK", "persist": "persist",
                "time_wait": "2MSL"}


def _key(e: Event) -> tuple:
    return (e.get("dir"), e.get("src"), e.get("sport"), e.get("dst"), e.get("dport"),
            e.get("seq"), e.get("ack"), e.get("flags"), int(e.get("len") or 0))


def _opts_text(opts: Any) -> str:
    if not isinstance(opts, dict) or not opts:
        return ""
    parts = []
    for k, v in opts.items():
        if isinstance(v, list):
            v = ",".join("-".join(str(x) for x in b) if isinstance(b, list) else str(b)
                         for b in v)
        parts.append(f"{k}={v}")
    return " ".join(parts)


def _int(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def ladder_model(events: list[Event], max_timers: int = 200_000) -> dict[str, Any]:
    """The page's ladder data from ``events`` (see the module doc)."""
    evs = sorted((e for e in events if isinstance(e, dict) and "t" in e),
                 key=lambda e: _int(e.get("t")) or 0)
    t0 = _int(evs[0]["t"]) or 0 if evs else 0
    conns: dict[str, int] = {}

    def conn_index(c: Any) -> int:
        name = str(c or "")
        if name not in conns:
            conns[name] = len(conns)
        return conns[name]

    segs: list[list[Any]] = []
    lost: list[list[Any]] = []
    rows = enrich([e for e in evs if e.get("ev") in ("seg", "fault", "fault_release")])
    # the fault rules that acted on a segment: out, the fault follows the seg (same key);
    # in, it comes first (the rules run before the core) and a delayed one arrives later
    last_out: dict[tuple, list[Any]] = {}
    pending_in: dict[tuple, list[list[str]]] = defaultdict(list)
    for e in rows:
        kind, key = e.get("ev"), _key(e)
        rel_t = (_int(e.get("t")) or 0) - t0
        if kind == "seg":
            faults: list[str] = []
            if e.get("dir") == "in" and pending_in.get(key):
                faults = pending_in[key].pop(0)
            row = [rel_t, e.get("dir"), str(e.get("flags") or ""), _int(e.get("rseq")),
                   _int(e.get("rack")), _int(e.get("seq")), _int(e.get("ack")),
                   _int(e.get("len")) or 0, _int(e.get("win")), str(e.get("state") or ""),
                   conn_index(e.get("conn")), bool(e.get("rtx")), _opts_text(e.get("opts")),
                   faults, str(e.get("src") or ""), str(e.get("dst") or "")]
            segs.append(row)
            if e.get("dir") == "out":
                last_out[key] = row
            continue
        action = str(e.get("action") or "")
        text = (f"{action}: {e.get('rule')}" if kind == "fault"
                else f"released ({e.get('why') or action}): {e.get('rule')}")
        if e.get("dir") == "out":
            row = last_out.get(key)
            if row is not None:
                row[13].append(text)
            continue
        if kind == "fault_release":
            continue
        if action in ("drop", "corrupt"):
            lost.append([rel_t, "in", str(e.get("flags") or ""), _int(e.get("rseq")),
                         _int(e.get("rack")), _int(e.get("len")) or 0,
                         conn_index(e.get("conn")), action, str(e.get("rule") or "")])
            continue
        pending_in[key].append([text])
    # timers: one interval per set, ended by fired / cancel / the next set of that timer
    lanes: dict[str, list[list[Any]]] = {}
    open_: dict[tuple[str, str], list[Any]] = {}
    n_timers = 0
    for e in evs:
        if e.get("ev") != "timer":
            continue
        name, action = str(e.get("name") or "?"), str(e.get("action") or "")
        t = (_int(e.get("t")) or 0) - t0
        k = (str(e.get("conn") or ""), name)
        cur = open_.pop(k, None)
        if cur is not None:
            cur[1] = t
            cur[3] = "fired" if action == "fired" else "cancelled" if action == "cancel" \
                else "re-armed"
        if action == "set" and n_timers < max_timers:
            at = _int(e.get("at"))
            iv = [t, None, None if at is None else at - t0, "pending", conn_index(e.get("conn"))]
            lanes.setdefault(name, []).append(iv)
            open_[k] = iv
            n_timers += 1
    order = list(TIMER_LANES) + sorted(n for n in lanes if n not in TIMER_LANES)
    timers = [{"name": n, "title": _LANE_TITLES.get(n, n), "intervals": lanes.get(n, [])}
              for n in order]
    states = [[(_int(e.get("t")) or 0) - t0, str(e.get("new") or ""),
               str(e.get("reason") or ""), conn_index(e.get("conn"))]
              for e in evs if e.get("ev") == "state" and "*" not in str(e.get("conn") or "")]
    kstates: list[list[Any]] = []
    last_k: dict[str, str] = {}
    for e in evs:
        if e.get("ev") != "kernel":
            continue
        who, st = f"{e.get('local')}>{e.get('remote')}", str(e.get("state") or "")
        if last_k.get(who) != st:
            last_k[who] = st
            kstates.append([(_int(e.get("t")) or 0) - t0, st, who])
    end = ((_int(evs[-1].get("t")) or 0) - t0) if evs else 0
    return {"t0": t0, "end": end, "segs": segs, "lost": lost, "timers": timers,
            "states": states, "kstates": kstates, "conns": list(conns),
            "seg_columns": list(SEG_COLUMNS), "lost_columns": list(LOST_COLUMNS)}
