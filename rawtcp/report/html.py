"""``index.html``: one self-contained page per experiment run (no network: inline CSS and
scripts, plots as ``data:`` URIs).

It holds the verdict, the checks with their evidence, the metrics, the ladder (a canvas
drawn by :data:`rawtcp.report.html_static.LADDER_JS` from :func:`ladder_model`: zoomable,
hovering a segment shows its decoded header and the fault rule that acted on it, rawtcp's
timer lanes for RTO, delayed ACK, persist and 2MSL), the plots, and links to the capture and
the trace.

Everything that comes from a trace or a run (packet fields, rule texts, evidence, file
names) is escaped: HTML text with :func:`html.escape`, the ladder data as JSON whose ``<``,
``>``, ``&`` and line separators are ``\\uXXXX`` escapes inside a ``<script
type="application/json">`` block, and the scripts put it on the page with ``textContent``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rawtcp.report.html_model import ladder_model
from rawtcp.report.html_static import CSS, GUARD_JS, LADDER_JS

Event = dict[str, Any]

__all__ = ["PageInfo", "json_for_script", "render_page", "write_page"]

_PLOT_TITLES = {"tsg": "time-sequence graph (Stevens)", "cwnd": "congestion window",
                "rtt": "round-trip time"}


@dataclass
class PageInfo:
    """What the page says about the run besides the trace."""

    name: str
    title: str = ""
    expect: str = ""
    passed: bool = False
    seed: int = 0
    duration_s: float = 0.0
    checks: list[Any] = field(default_factory=list)     # Check or (name, ok, evidence)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


def json_for_script(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>``, ``&`` or U+2028/9 left
    (they become ``\\u`` escapes, which JSON.parse reads back as the same characters)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _check_row(c: Any) -> tuple[str, bool, str]:
    if isinstance(c, (tuple, list)):
        return str(c[0]), bool(c[1]), str(c[2] if len(c) > 2 else "")
    return str(getattr(c, "name", c)), bool(getattr(c, "ok", False)), \
        str(getattr(c, "evidence", ""))


def _checks_html(checks: Iterable[Any]) -> str:
    rows = []
    for c in checks:
        name, ok, evidence = _check_row(c)
        cls, word = ("ok", "ok") if ok else ("bad", "FAIL")
        rows.append(f'<tr><td class="{cls}">{word}</td><td>{_e(name)}</td>'
                    f'<td class="ev">{_e(evidence)}</td></tr>')
    if not rows:
        return '<p class="muted">no checks recorded</p>'
    return ('<table id="checks"><tr><th></th><th>check</th><th>evidence</th></tr>'
            + "".join(rows) + "</table>")


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    if not metrics:
        return '<p class="muted">none</p>'
    rows = []
    for k, v in metrics.items():
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        if len(text) > 2000:
            text = text[:2000] + " ..."
        rows.append(f'<tr><th>{_e(k)}</th><td class="ev">{_e(text)}</td></tr>')
    return "<table>" + "".join(rows) + "</table>"


def _rel_href(path: str, base: str) -> str:
    try:
        rel = os.path.relpath(path, base)
    except ValueError:
        rel = path
    return _e(quote(rel.replace(os.sep, "/")))


def _files_html(files: Mapping[str, str], base: str) -> str:
    rows = []
    for key, path in files.items():
        if key == "report":
            continue
        rows.append(f'<li>{_e(key)}: <a href="{_rel_href(path, base)}">'
                    f"{_e(os.path.basename(path))}</a></li>")
    return "<ul>" + "".join(rows) + "</ul>" if rows else '<p class="muted">none</p>'


def _plots_html(files: Mapping[str, str]) -> str:
    out = []
    keys = [k for k, p in files.items() if str(p).lower().endswith(".png")]
    order = {k: i for i, k in enumerate(("tsg", "cwnd", "rtt"))}
    for key in sorted(keys, key=lambda k: (order.get(k, len(order)), k)):
        try:
            with open(files[key], "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
        except OSError:
            continue
        title = _PLOT_TITLES.get(key, key)
        out.append(f'<h3>{_e(title)}</h3><img class="plot" alt="{_e(title)}" '
                   f'src="data:image/png;base64,{data}">')
    return "".join(out) or '<p class="muted">no plots for this run</p>'


def render_page(info: PageInfo, events: list[Event], base_dir: str = ".") -> str:
    """The whole page as text. ``base_dir``: where the page will live (links are relative)."""
    model = ladder_model(events)
    verdict = ('<span class="verdict pass">PASS</span>' if info.passed
               else '<span class="verdict fail">FAIL</span>')
    error = f'<p class="bad">error: {_e(info.error)}</p>' if info.error else ""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    n_segs = len(model["segs"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rawtcp: {_e(info.name)}</title>
<style>{CSS}</style>
<script>{GUARD_JS}</script>
</head><body>
<div id="rawtcp-status" data-ready="0" data-errors="0" data-segments="" data-drawn=""
     data-expected-segments="{n_segs}" hidden></div>
<h1>{_e(info.name)} {verdict}</h1>
<p>{_e(info.title)}</p>
<p class="muted">expect: {_e(info.expect)}</p>
<p class="muted">seed {_e(info.seed)}, {info.duration_s:.2f} s, page written {stamp}</p>
{error}
<ul id="rawtcp-errors"></ul>
<h2>Checks</h2>
{_checks_html(info.checks)}
<h2>Ladder</h2>
<div class="controls"><button id="zoom-in" type="button">zoom in</button>
<button id="zoom-out" type="button">zoom out</button>
<button id="zoom-fit" type="button">whole run</button>
<select id="conn-filter"><option value="-1">all connections</option></select></div>
<p class="legend muted"><span><i class="sw" style="background:#1a4fa0"></i>data</span>
<span><i class="sw" style="background:#e0301e"></i>retransmission</span>
<span><i class="sw" style="background:#1f6f1f"></i>SYN</span>
<span><i class="sw" style="background:#8e44ad"></i>FIN</span>
<span><i class="sw" style="background:#b22"></i>RST</span>
<span><i class="sw" style="background:#555"></i>ACK</span>
<span>x = dropped by a fault rule</span></p>
<p id="ladder-summary" class="muted"></p>
<div id="ladder-box"><canvas id="ladder"></canvas><div id="tip"></div></div>
<h2>Plots</h2>
{_plots_html(info.files)}
<h2>Metrics</h2>
{_metrics_html(info.metrics)}
<h2>Files</h2>
{_files_html(info.files, base_dir)}
<script type="application/json" id="rawtcp-data">{json_for_script(model)}</script>
<script>{LADDER_JS}</script>
</body></html>
"""


def write_page(path: str | os.PathLike[str], info: PageInfo, events: list[Event]) -> str:
    """Write :func:`render_page` to ``path`` (usually ``<report dir>/index.html``)."""
    path = os.fspath(path)
    text = render_page(info, events, os.path.dirname(os.path.abspath(path)))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
