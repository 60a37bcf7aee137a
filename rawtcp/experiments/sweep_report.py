"""What a sweep (:mod:`rawtcp.experiments.sweep`) found, drawn: a table with one row per
(segment, fault), the reference ladder with each segment annotated (and coloured) by what
dropping it did, a plot of how much later each run finished, and the JSON form.

- :func:`table` -> str, :func:`ladder` -> str, :func:`plot` -> the plotted series,
  :func:`write_report` -> {kind: path} (``NAME.sweep.txt``, ``NAME.sweep-ladder.txt``,
  ``NAME.sweep.json``, ``NAME.sweep.png``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from rawtcp.experiments.sweep import KINDS, Row, SweepResult, engine_view

__all__ = ["COLORS", "ladder", "plot", "summary", "table", "write_report"]

_RESET = "\x1b[0m"
#: ANSI style per outcome (recovered split by how)
_ANSI = {
    "recovered-none": "\x1b[32m",     # green: a later segment covered the loss
    "recovered": "\x1b[33m",          # yellow: a retransmission repaired it
    "data-mismatch": "\x1b[35m",      # magenta
    "stuck": "\x1b[1;31m",            # bold red
    "rst": "\x1b[31m",                # red
    "etimedout": "\x1b[1;35m",        # bold magenta
    "not-reached": "\x1b[2m",         # dim
    "error": "\x1b[2;31m",            # dim red
}
#: plot colours per outcome (same split)
COLORS = {
    "recovered-none": "#2ca02c", "recovered": "#e6a700", "data-mismatch": "#9467bd",
    "stuck": "#8c1d1d", "rst": "#d62728", "etimedout": "#e377c2", "not-reached": "#bbbbbb",
    "error": "#7f7f7f",
}


def _style(row: Row) -> str:
    o = row.outcome
    if o.kind == "recovered" and o.recovery in (None, "none"):
        return "recovered-none"
    return o.kind


def _later(row: Row) -> str:
    v = row.outcome.later_ms
    return "-" if v is None else f"{v:+.1f} ms"


def _how(row: Row) -> str:
    o = row.outcome
    if o.kind != "recovered":
        return o.detail
    if o.recovery in (None, "none"):
        return "no retransmission needed"
    return f"{o.recovery} retransmission by {o.by}"


def table(result: SweepResult, color: bool = False) -> str:
    """One line per (segment, fault): index, direction, the segment, rawtcp's state when it
    went by, the fault, the outcome, how, how much later than the reference the last segment
    went, and the experiment's failed checks."""
    head = ["#", "dir", "segment", "state", "fault", "outcome", "how", "later", "checks"]
    body: list[list[str]] = []
    for r in result.rows:
        s = r.segment
        nfail = len(r.outcome.checks_failed)
        body.append([str(s.index), s.dir, s.label, s.state or "-", r.fault.name,
                     r.outcome.kind, _how(r), _later(r),
                     "-" if r.outcome.kind == "error" else "ok" if not nfail
                     else f"{nfail} failed"])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    widths[6] = min(widths[6], 48)

    def fmt(cells: list[str]) -> str:
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            c = c if len(c) <= w else c[: w - 3] + "..."
            out.append(c.rjust(w) if i in (0, 7) else c.ljust(w))
        return "  ".join(out).rstrip()

    lines = [fmt(head)]
    for r, cells in zip(result.rows, body):
        line = fmt(cells)
        if color:
            line = _ANSI[_style(r)] + line + _RESET
        lines.append(line)
    return "\n".join(lines) + "\n"


def summary(result: SweepResult) -> str:
    """One line: what the reference did and how many runs ended which way."""
    counts = result.counts()
    parts = [f"{counts[k]} {k}" for k in reversed(KINDS) if counts.get(k)]
    ref = "PASS" if result.reference_passed else "FAIL"
    return (f"{result.name}: reference {ref}, {len(result.segments)} segments, last at "
            f"{result.reference.finish_ms} ms; {len(result.rows)} runs: "
            f"{', '.join(parts) or 'none'} ({result.duration_s:.1f} s)")


def ladder(result: SweepResult, width: int = 100, color: bool = False) -> str:
    """The reference ladder; each swept segment's line ends with ``<- #N fault: outcome``
    (coloured by outcome with ``color``)."""
    from rawtcp.report.ladder import ladder_rows, render_ladder

    marks: dict[int, list[Row]] = {}
    for r in result.rows:
        marks.setdefault(r.segment.index, []).append(r)
    events = sorted(result.events, key=lambda e: e.get("t", 0))
    # tag the reference's seg events with their sweep index (the engine's order, as
    # reference_segments counts them: outgoing segments an experiment rule dropped have none)
    tagged = [dict(e) for e in events]
    view = engine_view(tagged)
    by_id = {(e["t"], e["dir"], e.get("seq"), e.get("ack"), e.get("flags"), e.get("len")): i + 1
             for i, e in reversed(list(enumerate(view)))}
    for e in tagged:
        if e.get("ev") == "seg":
            key = (e["t"], e["dir"], e.get("seq"), e.get("ack"), e.get("flags"), e.get("len"))
            if key in by_id:
                e["sweep_index"] = by_id.pop(key)
    text = render_ladder(tagged, width=width, color=False, right="kernel")
    lines = text.rstrip("\n").split("\n")
    rows = ladder_rows(tagged)
    out = [lines[0]]
    for (kind, ev), line in zip(rows, lines[1:]):
        idx = ev.get("sweep_index") if kind == "seg" else None
        rs = marks.get(idx) if idx is not None else None
        if not rs:
            out.append(line)
            continue
        note = "  <- #" + str(idx) + " " + "; ".join(
            f"{r.fault.name}: {r.outcome.short}"
            + (f" {_later(r)}" if r.outcome.later_ms is not None else "") for r in rs)
        if color:
            out.append(_ANSI[_style(rs[0])] + line + note + _RESET)
        else:
            out.append(line + note)
    out.extend(lines[1 + len(rows):])
    return "\n".join(out) + "\n"


def plot(result: SweepResult, path: str | os.PathLike[str]) -> dict[str, list[tuple]]:
    """Bars: for each swept segment, how much later than the reference the run's last
    segment went (ms), coloured by outcome, one panel per fault. Returns the series plotted:
    ``{fault: [(index, later_ms, style), ...]}``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fmt = os.fspath(path).rsplit(".", 1)[-1].lower()
    if fmt not in ("png", "svg"):
        raise OSError(22, f"cannot plot to {os.fspath(path)!r}: name the file .png or .svg")
    faults: dict[str, list[Row]] = {}
    for r in result.rows:
        faults.setdefault(r.fault.name, []).append(r)
    series: dict[str, list[tuple]] = {}
    n = max(1, len(faults))
    fig = Figure(figsize=(max(6.0, 0.45 * max((len(v) for v in faults.values()), default=1)
                              + 2), 2.8 * n + 0.8), dpi=100)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    used: set[str] = set()
    for ax, (fault, rows) in zip(axes, faults.items() or [("drop", [])]):
        pts = [(r.segment.index, r.outcome.later_ms or 0.0, _style(r)) for r in rows]
        series[fault] = pts
        xs = list(range(len(rows)))
        ax.bar(xs, [p[1] for p in pts], color=[COLORS[p[2]] for p in pts])
        ax.set_xticks(xs, [f"#{r.segment.index} {r.segment.dir}\n{r.segment.flags or '.'}"
                           for r in rows], fontsize=7)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylabel("ms later than reference")
        ax.set_title(f"{result.name}: {fault} one segment", fontsize=10)
        used.update(p[2] for p in pts)
    names = {"recovered-none": "recovered, no retransmission",
             "recovered": "recovered by a retransmission"}
    handles = [Patch(color=COLORS[k], label=names.get(k, k)) for k in COLORS if k in used]
    if handles:
        axes[0].legend(handles=handles, fontsize=7, loc="upper right")
    fig.tight_layout()
    meta = {"Date": None} if fmt == "svg" else {}
    fig.savefig(os.fspath(path), format=fmt, metadata=meta)
    return series


def write_report(result: SweepResult, report_dir: str) -> dict[str, str]:
    """Table, ladder, JSON and plot into ``report_dir`` (created); returns their paths (also
    added to ``result.files``)."""
    os.makedirs(report_dir, exist_ok=True)
    base = os.path.join(report_dir, f"{result.name}.sweep")
    files = {"table": base + ".txt", "sweep_ladder": base + "-ladder.txt",
             "json": base + ".json", "plot": base + ".png"}
    result.files.update(files)
    with open(files["table"], "w", encoding="utf-8") as f:
        f.write(summary(result) + "\n\n" + table(result))
    with open(files["sweep_ladder"], "w", encoding="utf-8") as f:
        f.write(ladder(result))
    plot(result, files["plot"])
    with open(files["json"], "w", encoding="utf-8") as f:
        json.dump(result.to_dict(), f, indent=2, default=str)
        f.write("\n")
    return files


def to_json(result: SweepResult) -> dict[str, Any]:
    return result.to_dict()
