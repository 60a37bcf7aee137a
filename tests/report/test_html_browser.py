"""The report page in a real headless Chromium (Debian's package): it loads without a
console message or a script error, draws as many segments as the trace has seg events, the
tooltip of a segment shows its decoded header and the fault rule that acted on it, and
nothing from a trace runs as markup. One test runs a real experiment against the kernel
(root: lab namespaces) through `rawtcp experiment run --report`."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

from rawtcp.experiments.base import Check
from rawtcp.report.bundle import finish_report
from rawtcp.report.html import PageInfo, write_page
from rawtcp.report.html_model import SEG_COLUMNS, ladder_model
from rawtcp.trace import read_trace

from .chromium_helpers import load
from .report_fixture import IN_RULE, OUT_RULE, memory_run

EVIL = '</script><script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def _assert_clean(got) -> None:
    assert got.console == [], got.console
    assert got.status.get("data-ready") == "1" and got.status.get("data-errors") == "0", \
        got.status
    assert '<ul id="rawtcp-errors"></ul>' in got.dom


def test_memory_run_page_in_chromium(tmp_path) -> None:
    """The page of a real two-stack run: every seg event drawn, the incoming segment a rule
    dropped drawn as lost, the timer lanes filled; hovering the dropped data segment (#seg=N
    goes through the same hit test as the mouse) shows its header and the rule."""
    events, pcap = memory_run(tmp_path)
    report = tmp_path / "report"
    report.mkdir()
    files = {"pcap": str(pcap), "trace": str(tmp_path / "a.jsonl")}
    page = finish_report(str(report), name="memory", events=events, files=files,
                         title="two rawtcp stacks", passed=True,
                         checks=[Check("bytes arrived", True, "20480 B")])
    n_segs = sum(1 for e in events if e["ev"] == "seg")
    got = load(Path(page))
    _assert_clean(got)
    assert got.status["data-segments"] == str(n_segs) == got.status["data-drawn"]
    assert got.status["data-lost"] == "1" and int(got.status["data-timers"]) > 0
    assert f"{n_segs} segments, 1 packets lost before rawtcp saw them" in got.dom
    # the segment the out rule dropped, by its index in the data
    rows = ladder_model(events)["segs"]
    i = next(k for k, r in enumerate(rows) if r[SEG_COLUMNS.index("faults")])
    target = rows[i]
    hovered = load(Path(page), fragment=f"seg={i}")
    _assert_clean(hovered)
    assert hovered.status["data-tip-seg"] == str(i)
    tip = hovered.tip()
    assert f"fault rule drop: {OUT_RULE}" in tip
    assert f"seq {target[SEG_COLUMNS.index('rseq')]}  ({target[SEG_COLUMNS.index('seq')]})" \
        in tip
    assert f"len {target[SEG_COLUMNS.index('len')]}" in tip and "rawtcp -> peer" in tip
    assert "rawtcp state " + target[SEG_COLUMNS.index("state")] in tip
    # an ordinary segment says no rule acted on it
    j = i + 1 if rows[i + 1][0] == target[0] else i - 1     # a neighbour in its burst
    assert not rows[j][SEG_COLUMNS.index("faults")]
    other = load(Path(page), fragment=f"seg={j}")
    assert other.status["data-tip-seg"] == str(j)
    assert "no fault rule acted on it" in other.tip() and IN_RULE not in other.tip()
    # the plots are inline images; the capture is linked
    assert got.dom.count('src="data:image/png;base64,') >= 2
    assert 'href="../a.pcapng"' in got.dom


def test_hostile_trace_text_stays_text_in_chromium(tmp_path) -> None:
    """Markup in a connection name, a rule, a state and a check never becomes elements: the
    title is unchanged, no <img> appears, no script error."""
    seg = {"t": 1, "ev": "seg", "dir": "out", "conn": EVIL, "src": "a", "dst": "b",
           "sport": 1, "dport": 2, "seq": 1, "ack": 0, "flags": "S", "win": 1, "len": 0,
           "state": EVIL}
    events = [seg, dict(seg, t=2, ev="fault", action="drop", rule=EVIL),
              dict(seg, t=500, dir="in", flags="SA", src="b", dst="a", sport=2, dport=1)]
    info = PageInfo(name=EVIL, title=EVIL, checks=[Check(EVIL, True, EVIL)])
    page = write_page(tmp_path / "index.html", info, events)
    got = load(Path(page), fragment="seg=0")
    _assert_clean(got)
    assert "<title>pwned</title>" not in got.dom            # the title as written
    assert "<title>rawtcp: &lt;/script&gt;&lt;script&gt;document.title=" in got.dom
    assert "<img src=\"x\"" not in got.dom and "<img src=x" not in got.dom
    assert got.status["data-segments"] == "2" == got.status["data-drawn"]
    assert f"fault rule drop: {EVIL}" in got.tip()         # as text, whole


def test_a_script_error_is_caught_and_counted(tmp_path) -> None:
    """The detection itself: a page whose data is broken reports the error in its DOM and
    the browser logs it, so the tests above would see one."""
    page = Path(write_page(tmp_path / "index.html", PageInfo(name="x"), []))
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace('id="rawtcp-data">', 'id="rawtcp-data">{broken', 1),
                    encoding="utf-8")
    got = load(page)
    assert got.status.get("data-errors") == "1" and got.status.get("data-ready") == "0"
    assert got.console and "JSON" in " ".join(got.console)


def test_kernel_experiment_report_in_chromium(tmp_path) -> None:
    """`rawtcp experiment run final-ack-drop --report DIR` against the kernel in a lab:
    index.html loads cleanly and shows exactly the trace's seg events; the pcapng carries
    the comments (tshark) including the rule that dropped the final ACK."""
    out = tmp_path / "rep"
    r = subprocess.run([sys.executable, "-m", "rawtcp", "experiment", "run", "final-ack-drop",
                        "--report", str(out), "--json"], capture_output=True, text=True,
                       timeout=180, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["files"]["report"] == str(out / "index.html")
    assert res["files"]["pcap"].endswith(".pcapng")
    events = read_trace(res["files"]["trace"])
    n_segs = sum(1 for e in events if e["ev"] == "seg")
    got = load(out / "index.html")
    _assert_clean(got)
    assert got.status["data-segments"] == str(n_segs) == got.status["data-drawn"]
    assert "TIME_WAIT" in json.dumps(ladder_model(events)["states"])
    for check in res["checks"]:
        assert html.escape(check["check"], quote=False) in got.dom
    ts = subprocess.run(["tshark", "-r", res["files"]["pcap"], "-T", "fields", "-e",
                         "frame.comment"], capture_output=True, text=True, timeout=60,
                        check=False)
    assert ts.returncode == 0, ts.stderr
    comments = ts.stdout.splitlines()
    assert len(comments) == n_segs - 1        # the dropped final ACK never left rawtcp
    assert comments[0] == "rawtcp sent in SYN_SENT"
    assert any(c.startswith("rawtcp received in TIME_WAIT; retransmission") for c in comments)
