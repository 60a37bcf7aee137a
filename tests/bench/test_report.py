"""The bench's table and JSON from figures built by hand (no root, no measurement)."""

from __future__ import annotations

import json

from rawtcp.bench.report import Figure, to_json, to_table
from rawtcp.bench.run import Measure

SETTINGS = {"mtu": [1500], "size_mb": 1, "conns": 1, "repeat": 3}


def _repeated(bad_round: int) -> Figure:
    """Three rounds of a bulk figure; rawtcp's sha256 differs in `bad_round` (1-based)."""
    values = [30.0, 60.0, 45.0]
    f = Figure("bulk_receive_1500", "bulk receive", "MB/s", "bare", "sha256",
               second_is="kernel <-> kernel")
    f.runs = [(Measure(v, i + 1 != bad_round), Measure(100.0, True))
              for i, v in enumerate(values)]
    f.second_runs = [Measure(200.0, True) for _ in values]
    f.settle()
    return f


def test_a_mismatch_in_a_round_that_is_not_the_median_is_reported() -> None:
    """--repeat 3: the second round's transfer arrived damaged (60 MB/s, not the median
    run). The figure is not ok (exit status 1), so the table and the JSON must say which
    side failed its check, not "sha256 ok"."""
    f = _repeated(bad_round=2)
    assert f.rawtcp is not None and f.rawtcp.value == 45.0 and f.rawtcp.sha_ok is True
    assert not f.ok
    assert f.verdict() == "sha256 MISMATCH (rawtcp in round 2)"
    assert "sha256 MISMATCH (rawtcp in round 2)" in to_table([f], SETTINGS)
    [d] = json.loads(to_json([f], SETTINGS))["figures"]
    assert d["ok"] is False
    assert d["rawtcp_check_ok"] is False
    assert d["reference_check_ok"] is True and d["second_check_ok"] is True
    assert [r["rawtcp_check_ok"] for r in d["runs"]] == [True, False, True]


def test_every_round_checked_is_ok() -> None:
    f = _repeated(bad_round=0)
    assert f.ok and f.verdict() == "sha256 ok"
    [d] = json.loads(to_json([f], SETTINGS))["figures"]
    assert d["rawtcp_check_ok"] is True and d["ok"] is True


def test_a_single_run_figure_reports_its_mismatching_side() -> None:
    f = Figure("bulk_send_1500", "bulk send", "MB/s", "bare", "sha256",
               Measure(30.0, True), Measure(40.0, False))
    assert f.verdict() == "sha256 MISMATCH (reference)"
    [d] = json.loads(to_json([f], SETTINGS))["figures"]
    assert d["rawtcp_check_ok"] is True and d["reference_check_ok"] is False


def test_json_details_cover_every_side_including_the_second_reference() -> None:
    """--json gives "per-side details": the 2nd reference (kernel <-> kernel bytes, the bare
    client's segment counts) is a side too."""
    f = Figure("conn_rate", "conn", "conn/s", "kernel", "echo", second_is="bare client")
    f.runs = [(Measure(800.0, True, {"conns": 5}), Measure(4000.0, True, {"conns": 5}))]
    f.second_runs = [Measure(2000.0, True, {"conns": 5, "segments_out": 30})]
    f.settle()
    [d] = json.loads(to_json([f], SETTINGS))["figures"]
    assert d["details"]["second_reference"] == {"conns": 5, "segments_out": 30}
    plain = Figure("x", "x", "MB/s", "bare", "sha256", Measure(1.0, True), Measure(2.0, True))
    [d] = json.loads(to_json([plain], SETTINGS))["figures"]
    assert set(d["details"]) == {"rawtcp", "reference"}
