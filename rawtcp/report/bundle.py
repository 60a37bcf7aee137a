"""What ``--report DIR`` leaves besides the trace and the ladder: the annotated pcapng
captures, the plots (Stevens time-sequence graph, cwnd/ssthresh, RTT) and ``index.html``.

:func:`finish_report` is called once per run by the experiment runner, after the run. Every
step is on its own: a plot that cannot be drawn is named on the page (``report_errors``),
never a reason to lose the verdict.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from rawtcp.report.html import PageInfo, write_page

Event = dict[str, Any]

__all__ = ["convert_captures", "finish_report", "write_plots"]


def convert_captures(files: dict[str, str], events: list[Event]) -> list[str]:
    """Each classic ``.pcap`` in ``files`` (keys ``pcap``, ``pcap.2`` ...) becomes a
    ``.pcapng`` beside it with a comment per packet from ``events`` (rawtcp's state and the
    fault rules); ``files`` points at the new name (the ``.pcap`` stays). Returns the
    problems met (the capture is kept as it was then)."""
    from rawtcp.report.pcapng import annotate_capture

    problems = []
    for key, path in list(files.items()):
        if not key.startswith("pcap") or not str(path).endswith(".pcap"):
            continue
        if not os.path.exists(path):
            continue
        out = str(path) + "ng"
        try:
            annotate_capture(path, events, out)
        except (OSError, ValueError) as e:
            problems.append(f"{os.path.basename(path)}: no pcapng ({e})")
            continue
        files[key] = out      # the classic .pcap stays beside it for tools that want it
    return problems


def write_plots(report_dir: str, name: str, events: list[Event], files: dict[str, str]
                ) -> list[str]:
    """The Stevens graph (``tsg``, when data moved), cwnd/ssthresh (``cwnd``, when the trace
    has ``cc`` events or the kernel's cwnd) and RTT (``rtt``) as PNG files; a key already in
    ``files`` (an experiment drew its own) is left alone. Returns the problems met."""
    from rawtcp.report.ccplots import cwnd_plot, has_cc, rtt_plot, rtt_series
    from rawtcp.report.tsg import pick_connection, time_sequence_graph

    jobs: list[tuple[str, Callable[[str], Any]]] = []
    conn = pick_connection(events, "out")
    direction = "out"
    if conn is None:
        conn, direction = pick_connection(events, "in"), "in"
    if conn is not None:
        jobs.append(("tsg", lambda p: time_sequence_graph(events, p, conn, direction,
                                                          title=f"{name}: {conn}")))
    if has_cc(events):
        jobs.append(("cwnd", lambda p: cwnd_plot(events, p, title=f"{name}: cwnd")))
    if any(s.get("t") for s in rtt_series(events).values()):
        jobs.append(("rtt", lambda p: rtt_plot(events, p, title=f"{name}: RTT")))
    problems = []
    for key, fn in jobs:
        if key in files:
            continue
        path = os.path.join(report_dir, f"{name}.{key}.png")
        try:
            fn(path)
        except Exception as e:  # noqa: BLE001 - a plot is a bonus, the verdict is not
            problems.append(f"{key} plot: {type(e).__name__}: {e}")
            continue
        files[key] = path
    return problems


def finish_report(report_dir: str, *, name: str, events: list[Event], files: dict[str, str],
                  title: str = "", expect: str = "", passed: bool = False, seed: int = 0,
                  duration_s: float = 0.0, checks: Iterable[Any] = (),
                  metrics: dict[str, Any] | None = None, error: str | None = None,
                  captures: bool = True) -> str:
    """Captures to pcapng (``captures``), plots, then ``index.html`` in ``report_dir``;
    ``files`` is updated in place (``report`` is the page). Returns the page's path."""
    problems: list[str] = []
    if captures:
        problems += convert_captures(files, events)
    problems += write_plots(report_dir, name, events, files)
    m = dict(metrics or {})
    if problems:
        m["report_errors"] = problems
    info = PageInfo(name=name, title=title, expect=expect, passed=passed, seed=seed,
                    duration_s=duration_s, checks=list(checks), metrics=m, files=files,
                    error=error)
    page = write_page(os.path.join(report_dir, "index.html"), info, events)
    files["report"] = page
    return page
