"""The report page (rawtcp.report.html, html_model) without a browser: what the ladder data
holds, that every text from a trace is escaped, and that the page needs no network."""

from __future__ import annotations

import json
import re

from rawtcp.experiments.base import Check
from rawtcp.report.html import PageInfo, json_for_script, render_page, write_page
from rawtcp.report.html_model import SEG_COLUMNS, ladder_model

from .report_fixture import IN_RULE, OUT_RULE, memory_run

EVIL = '</script><script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def _data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="rawtcp-data">(.*?)</script>', page,
                  re.S)
    assert m
    return json.loads(m.group(1))


def test_json_for_script_leaves_no_markup() -> None:
    text = json_for_script({"a": EVIL, "b": "x\u2028y&z"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": EVIL, "b": "x\u2028y&z"}


def test_model_of_a_real_run(tmp_path) -> None:
    """Every seg event is a ladder row, in order; the out rule's drop is attached to the
    segment it dropped; the incoming ACK dropped before rawtcp saw it is a `lost` row with
    its rule; timer intervals end fired/cancelled/re-armed; rawtcp's states are listed."""
    events, _ = memory_run(tmp_path)
    m = ladder_model(events)
    segs = [e for e in events if e["ev"] == "seg"]
    assert len(m["segs"]) == len(segs)
    C = {name: i for i, name in enumerate(SEG_COLUMNS)}
    assert [r[C["flags"]] for r in m["segs"]] == [e["flags"] for e in segs]
    assert [r[C["t"]] for r in m["segs"]] == sorted(r[C["t"]] for r in m["segs"])
    with_rules = [r for r in m["segs"] if r[C["faults"]]]
    assert len(with_rules) == 1 and with_rules[0][C["faults"]] == [f"drop: {OUT_RULE}"]
    assert with_rules[0][C["dir"]] == "out" and with_rules[0][C["len"]] > 0
    rtx = [r for r in m["segs"] if r[C["rtx"]] and r[C["dir"]] == "out"]
    # the first retransmission repairs the drop (a loaded machine may add a probe or a
    # spurious timeout later: real threads, rto_min 50 ms)
    assert rtx and rtx[0][C["rseq"]] == with_rules[0][C["rseq"]]
    assert len(m["lost"]) == 1 and m["lost"][0][-1] == IN_RULE and m["lost"][0][-2] == "drop"
    lanes = {lane["name"]: lane["intervals"] for lane in m["timers"]}
    assert list(lanes)[:4] == ["rtx", "delack", "persist", "time_wait"]
    ends = {iv[3] for ivs in lanes.values() for iv in ivs}
    assert ends <= {"fired", "cancelled", "re-armed", "pending"} and "cancelled" in ends
    assert lanes["time_wait"] and all(iv[3] == "fired" for iv in lanes["time_wait"])
    assert [s[1] for s in m["states"]][:2] == ["SYN_SENT", "ESTABLISHED"]
    assert m["conns"] == [segs[0]["conn"]]


def test_model_in_faults_and_bad_events() -> None:
    """An incoming segment a rule delayed carries the rule when it reaches rawtcp; events
    that are not dicts, lack fields or hold junk do not break the model."""
    seg = {"ev": "seg", "conn": "c", "src": "b", "dst": "a", "sport": 2, "dport": 1,
           "seq": 5, "ack": 9, "flags": "A", "win": 10, "len": 0, "dir": "in"}
    events = [{"t": 100, "ev": "fault", "action": "delay", "rule": "in flags=A ms=5",
               **{k: v for k, v in seg.items() if k != "ev"}},
              dict(seg, t=5100), "junk", {"ev": "seg"}, {"t": "x", "ev": "timer"},
              {"t": 6000, "ev": "timer", "name": "rtx", "action": "set", "at": "soon"}]
    m = ladder_model(events)
    assert m["segs"][0][SEG_COLUMNS.index("faults")] == ["delay: in flags=A ms=5"]
    assert m["timers"][0]["intervals"][0][2] is None        # the junk due time


def test_page_escapes_everything_from_the_trace(tmp_path) -> None:
    """Rule texts, connection names, states, check names, evidence, metrics and file names
    carrying markup reach the page only escaped (the data block holds no `<`)."""
    seg = {"t": 1, "ev": "seg", "dir": "out", "conn": EVIL, "src": EVIL, "dst": "d",
           "sport": 1, "dport": 2, "seq": 1, "ack": 0, "flags": "S", "win": 1, "len": 0,
           "state": EVIL, "opts": {"mss": EVIL}}
    fault = dict(seg, t=2, ev="fault", action="drop", rule=EVIL)
    info = PageInfo(name=EVIL, title=EVIL, expect=EVIL, checks=[Check(EVIL, False, EVIL)],
                    metrics={EVIL: EVIL}, files={"trace": str(tmp_path / "a<b>.jsonl")},
                    error=EVIL)
    page = render_page(info, [seg, fault], str(tmp_path))
    assert EVIL not in page and "<img" not in page and 'document.title="pwned"' not in page
    assert page.count("<script") == 3          # the guard, the JSON data, the ladder
    data = _data(page)
    assert data["segs"][0][SEG_COLUMNS.index("faults")] == [f"drop: {EVIL}"]
    assert data["conns"] == [EVIL]
    assert "a%3Cb%3E.jsonl" in page             # links are URL-quoted and relative


def test_page_is_self_contained(tmp_path) -> None:
    """No http(s) URL, no external script, stylesheet or image: the plots are data: URIs."""
    events, pcap = memory_run(tmp_path)
    png = tmp_path / "x.tsg.png"
    from rawtcp.report.tsg import time_sequence_graph

    time_sequence_graph(events, png)
    info = PageInfo(name="memory", passed=True, checks=[Check("ok", True, "yes")],
                    files={"tsg": str(png), "pcap": str(pcap)})
    path = write_page(tmp_path / "index.html", info, events)
    page = open(path, encoding="utf-8").read()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<link" not in page and 'src="data:image/png;base64,' in page
    assert 'href="a.pcap"' in page
    assert '<span class="verdict pass">PASS</span>' in page
