"""The time-sequence graph, Stevens style (TCP/IP Illustrated; tcptrace's xplot): one
direction of one connection, relative sequence numbers over time.

- each data segment is a vertical bar from its first to its last byte at the time it was
  sent (black; red when it carries bytes already sent: a retransmission; a red ``x`` when a
  fault rule dropped it);
- the cumulative ACK coming back is a step line (green), the receive window the other side
  advertised is the line ``ack + window`` above it (yellow), and every SACK block an ACK
  carries is a purple bar at that ACK's time;
- fault-dropped ACKs are orange ``x``.

:func:`tsg_series` computes the series from trace events (``seg`` and ``fault``, see
docs/contracts.md); :func:`time_sequence_graph` draws them (PNG or SVG by extension).
"""

from __future__ import annotations

import os
from typing import Any

from rawtcp.report.enrich import enrich
from rawtcp.report.plots import _figure, _format, _save

Event = dict[str, Any]
_MOD = 1 << 32

__all__ = ["pick_connection", "time_sequence_graph", "tsg_series", "zoom_window"]


def pick_connection(events: list[Event], direction: str = "out") -> str | None:
    """The connection that sent most payload bytes in ``direction`` ("out": rawtcp's data,
    "in": the peer's)."""
    total: dict[str, int] = {}
    for e in events:
        if e.get("ev") == "seg" and e.get("dir") == direction and e.get("conn"):
            total[e["conn"]] = total.get(e["conn"], 0) + int(e.get("len") or 0)
    if not total:
        return None
    return max(total, key=lambda c: (total[c], c))


def _rel(value: int, base: int | None) -> int | None:
    return None if base is None else (int(value) - base) % _MOD


def tsg_series(events: list[Event], conn: str | None = None, direction: str = "out"
               ) -> dict[str, Any]:
    """Series of the graph of the data ``direction`` carries ("out": rawtcp -> peer, ACKs
    are "in"; "in": the reverse) on ``conn`` (default: :func:`pick_connection`). Times in ms
    from the first event of the run; sequence numbers relative to the sender's ISN.

    Returns ``conn``, ``direction``, ``sent`` / ``retransmits`` / ``dropped``:
    ``(t_ms, rseq, len)``; ``acks``: ``(t_ms, rack)``; ``window``: ``(t_ms, rack + window
    in bytes)``; ``sacks``: ``(t_ms, start, end)`` relative; ``acks_dropped``: ``(t_ms,
    rack)``; ``segments``: how many seg events of the connection were used."""
    if direction not in ("out", "in"):
        raise ValueError(f"direction must be 'out' or 'in', not {direction!r}")
    back = "in" if direction == "out" else "out"
    evs = sorted((e for e in events if "t" in e), key=lambda e: e["t"])
    t0 = int(evs[0]["t"]) if evs else 0
    conn = conn or pick_connection(evs, direction)
    s: dict[str, Any] = {"conn": conn, "direction": direction, "sent": [], "retransmits": [],
                         "dropped": [], "acks": [], "window": [], "sacks": [],
                         "acks_dropped": [], "segments": 0}
    isn: int | None = None           # the data sender's ISN
    scale = {"out": 0, "in": 0}      # window shift each side asked for in its SYN
    offered = {"out": False, "in": False}
    for e in enrich(evs):
        if e.get("ev") not in ("seg", "fault") or (conn and e.get("conn") != conn):
            continue
        d, flags = e.get("dir"), str(e.get("flags") or "")
        t = (int(e["t"]) - t0) / 1000
        if e["ev"] == "seg":
            s["segments"] += 1
            if "S" in flags:
                opts = e.get("opts") or {}
                offered[d] = "wscale" in opts
                scale[d] = int(opts.get("wscale") or 0)
                if d == direction:
                    isn = int(e["seq"])
        if d == direction and e["ev"] == "seg":
            n = int(e.get("len") or 0)
            if n and isn is not None:
                rs = _rel(e["seq"], isn) or 0
                s["retransmits" if e.get("rtx") else "sent"].append((t, rs, n))
        elif d == direction and e.get("action") == "drop" and e.get("len"):
            if isn is not None:
                s["dropped"].append((t, _rel(e["seq"], isn), int(e["len"])))
        elif d == back and "A" in flags and isn is not None:
            rack = _rel(e["ack"], isn)
            if e["ev"] == "fault":
                if e.get("action") == "drop":
                    s["acks_dropped"].append((t, rack))
                continue
            s["acks"].append((t, rack))
            shift = scale[back] if offered["out"] and offered["in"] and "S" not in flags else 0
            s["window"].append((t, rack + (int(e.get("win") or 0) << shift)))
            for blk in (e.get("opts") or {}).get("sack") or []:
                s["sacks"].append((t, _rel(blk[0], isn), _rel(blk[1], isn)))
    return s


def zoom_window(s: dict[str, Any], around: int = 40) -> tuple[float, float, int, int] | None:
    """(t0, t1, seq0, seq1) of a close-up of the first retransmission: the ``around`` data
    segments sent before it and as many events after; None without a retransmission."""
    if not s["retransmits"]:
        return None
    t_rtx, seq_rtx, n_rtx = s["retransmits"][0]
    sent = sorted(s["sent"])
    before = [p for p in sent if p[0] <= t_rtx][-around:]
    after = [p for p in sent if p[0] > t_rtx][:around]
    pts = before + after + [(t_rtx, seq_rtx, n_rtx)]
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    lo, hi = min(p[1] for p in pts), max(p[1] + p[2] for p in pts)
    pad_t, pad_s = max((t1 - t0) * 0.05, 0.05), max((hi - lo) * 0.05, 100)
    return t0 - pad_t, t1 + pad_t, int(lo - pad_s), int(hi + pad_s)


def _draw(ax: Any, s: dict[str, Any], legend: bool) -> None:
    for key, color, label in (("sent", "black", "data segment"),
                              ("retransmits", "tab:red", "retransmission")):
        pts = s[key]
        if pts:
            ax.vlines([p[0] for p in pts], [p[1] for p in pts], [p[1] + p[2] for p in pts],
                      colors=color, linewidth=1.5, label=label)
    if s["retransmits"]:          # a marker too: one segment is a dot at a transfer's scale
        ax.plot([p[0] for p in s["retransmits"]], [p[1] + p[2] / 2 for p in s["retransmits"]],
                linestyle="none", marker="o", markersize=3, color="tab:red")
    if s["acks"]:
        ax.step([p[0] for p in s["acks"]], [p[1] for p in s["acks"]], where="post",
                color="tab:green", linewidth=1, label="cumulative ACK")
    if s["window"]:
        ax.step([p[0] for p in s["window"]], [p[1] for p in s["window"]], where="post",
                color="goldenrod", linewidth=1, label="ACK + receive window")
    if s["sacks"]:
        ax.vlines([p[0] for p in s["sacks"]], [p[1] for p in s["sacks"]],
                  [p[2] for p in s["sacks"]], colors="tab:purple", linewidth=3, alpha=0.6,
                  label="SACK block")
    if s["dropped"]:
        ax.plot([p[0] for p in s["dropped"]], [p[1] + p[2] / 2 for p in s["dropped"]],
                linestyle="none", marker="x", markersize=8, color="tab:red",
                label="dropped by a fault rule")
    if s["acks_dropped"]:
        ax.plot([p[0] for p in s["acks_dropped"]], [p[1] for p in s["acks_dropped"]],
                linestyle="none", marker="x", color="tab:orange", label="ACK dropped")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("relative sequence number")
    ax.grid(True, alpha=0.3)
    if legend and (s["sent"] or s["retransmits"] or s["acks"]):
        ax.legend(loc="upper left", fontsize="small")


def time_sequence_graph(events: list[Event], path: str | os.PathLike[str],
                        conn: str | None = None, direction: str = "out",
                        title: str | None = None, zoom: bool = True) -> dict[str, Any]:
    """Draw the Stevens time-sequence graph of :func:`tsg_series` to ``path`` (``.png`` or
    ``.svg``) and return the series (with ``zoom``: the close-up's limits or None). With
    ``zoom`` and a retransmission, a second panel shows the first one close up
    (:func:`zoom_window`): at the scale of a whole bulk transfer single segments are not
    visible."""
    fmt = _format(path)
    s = tsg_series(events, conn, direction)
    win = zoom_window(s) if zoom else None
    s["zoom"] = win
    fig = _figure(rows=2 if win else 1)
    axes = fig.subplots(2, 1) if win else [fig.subplots()]
    ax = axes[0]
    _draw(ax, s, legend=True)
    tops = ([p[1] + p[2] for k in ("sent", "retransmits") for p in s[k]]
            + [p[1] for p in s["acks"]] + [p[2] for p in s["sacks"]])
    if tops and s["window"] and max(p[1] for p in s["window"]) > max(tops):
        top = max(tops)               # the window line is cut: the data stays readable
        ax.set_ylim(bottom=-top * 0.02 - 1, top=top + max(top * 0.25, 4 * 1448))
    who = "rawtcp -> peer" if direction == "out" else "peer -> rawtcp"
    ax.set_title(title or f"time / sequence ({who})")
    if not (s["sent"] or s["retransmits"] or s["acks"]):
        ax.text(0.5, 0.5, "no data segments", ha="center", va="center", transform=ax.transAxes)
    if win:
        fig.subplots_adjust(hspace=0.4)
        _draw(axes[1], s, legend=False)
        axes[1].set_xlim(win[0], win[1])
        axes[1].set_ylim(win[2], win[3])
        axes[1].set_title("close-up: the first retransmission", fontsize="medium")
    _save(fig, path, fmt)
    return s
