"""What a sweep shows (table, annotated ladder, plot, JSON, report files) and the command
line's argument errors; sweep results made on the simulator (no kernel)."""

from __future__ import annotations

import json

import pytest

from rawtcp.cli import main
from rawtcp.experiments import sweep as sw
from rawtcp.experiments import sweep_report as rep
from rawtcp.report.ladder import render_ladder
from rawtcp.sim import Sim, transfer


def _trace(extra: list[str] = ()) -> list[dict]:
    evs: list[dict] = []
    transfer(Sim(seed=5, faults=list(extra), tracer=evs.append), 20_000,
             max_time_us=200_000_000)
    return [e for e in evs if e.get("stack") == "a"]


@pytest.fixture(scope="module")
def result() -> sw.SweepResult:
    events = _trace()
    ref = sw.facts_from_events(events, passed=True)
    segments = sw.reference_segments(events)
    chosen = [segments[0], segments[3], next(s for s in segments if "F" in s.flags)]
    rows = []
    for s in chosen:
        for f in (sw.Fault(), sw.Fault("duplicate")):
            rule = s.rule(f)
            facts = sw.facts_from_events(_trace([rule]), rule=rule)
            rows.append(sw.Row(s, f, rule, sw.classify(ref, facts), facts))
    return sw.SweepResult("sim", 5, "both", ref, True, segments, rows, events, 1.0)


def test_table_has_a_line_per_run(result):
    lines = rep.table(result).splitlines()
    assert lines[0].split()[:4] == ["#", "dir", "segment", "state"]
    assert len(lines) == 1 + len(result.rows)
    for line, row in zip(lines[1:], result.rows):
        assert line.split()[0] == str(row.segment.index)
        assert row.outcome.kind in line and row.fault.name in line
    assert "\x1b[" not in rep.table(result) and "\x1b[" in rep.table(result, color=True)


def test_summary_counts_the_outcomes(result):
    text = rep.summary(result)
    assert text.startswith(f"sim: reference PASS, {len(result.segments)} segments")
    assert f"{len(result.rows)} runs" in text
    assert sum(result.counts().values()) == len(result.rows)


def test_ladder_annotates_the_swept_segments(result):
    """The reference ladder, line for line, with ``<- #N fault: outcome`` on the line of
    each swept segment (both faults of a segment on its one line)."""
    plain = render_ladder(result.events, width=100, right="kernel").splitlines()
    lines = rep.ladder(result).splitlines()
    assert len(lines) == len(plain)
    for s in {r.segment for r in result.rows}:
        marked = [ln for ln in lines if f"<- #{s.index} " in ln]
        assert len(marked) == 1, s
        assert f"{s.flags} seq={s.rseq}" in marked[0] and f"len={s.len}" in marked[0]
        assert "drop: " in marked[0] and "duplicate: " in marked[0]
    unmarked = [a for a, b in zip(plain, lines) if a == b]
    assert len(unmarked) == len(plain) - len({r.segment.index for r in result.rows})
    assert "\x1b[" in rep.ladder(result, color=True)


def test_plot_and_report_files(result, tmp_path):
    series = rep.plot(result, tmp_path / "p.png")
    assert set(series) == {"drop", "duplicate"}
    assert [p[0] for p in series["drop"]] == [r.segment.index for r in result.rows
                                              if r.fault.action == "drop"]
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OSError, match="name the file .png or .svg"):
        rep.plot(result, tmp_path / "p.gif")
    files = rep.write_report(result, str(tmp_path / "r"))
    assert set(files) == {"table", "sweep_ladder", "json", "plot"}
    data = json.loads(open(files["json"], encoding="utf-8").read())
    assert data["experiment"] == "sim" and len(data["rows"]) == len(result.rows)
    assert {r["outcome"] for r in data["rows"]} <= set(sw.KINDS)
    assert data["rows"][0]["rule"] == result.rows[0].rule
    assert open(files["table"], encoding="utf-8").read().startswith("sim: reference PASS")


@pytest.mark.parametrize("argv, message", [
    (["--jobs", "0"], "jobs must be within 1..32, got 0"),
    (["--jobs", "33"], "jobs must be within 1..32, got 33"),
    (["--jobs", "two"], "must be a number"),
    (["--max-segments", "0"], "max-segments must be within 1..1000"),
    (["--run-timeout", "1"], "run-timeout must be within 5..3600"),
    (["--seed", "-1"], "seed must be within"),
    (["--also", "corrupt"], "--also takes duplicate or delay:MS"),
    (["--also", "delay:0"], "delay-ms must be within 1..60000"),
    (["--segments", "0"], "segment must be within"),
    (["--segments", "3-1"], "empty range"),
    (["--direction", "up"], "invalid choice"),
])
def test_bad_arguments_are_one_line_exit_2(argv, message, capsys):
    assert main(["experiment", "sweep", "lifecycle", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err


def test_unknown_experiment_is_exit_2(capsys):
    assert main(["experiment", "sweep", "no-such-thing"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no experiment named 'no-such-thing'" in err
