"""`rawtcp ladder FILE` on trace files it cannot draw (black-box review): a line that is JSON
but not an event object, or whose fields are of the wrong type, is one line naming the file
and line and exit 2, never a traceback; real traces still draw."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawtcp.cli import main
from rawtcp.report.ladder import event_problem, render_ladder

from .report_fixture import memory_run

GOOD = '{"t": 0, "ev": "state", "conn": "10.0.0.1:1>10.0.0.2:2", "new": "SYN_SENT"}'


def ladder(capsys, path) -> tuple[int, str, str]:
    code = main(["ladder", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("bad,says", [
    ("[1, 2]", "expected a JSON object, got [1, 2]"),
    ("null", "expected a JSON object, got null"),
    ('"str"', 'expected a JSON object, got "str"'),
    ('{"ev": "seg", "t": null}', '"t" must be a number of microseconds, got null'),
    ('{"ev": "seg", "t": 1e999}', '"t" must be a number of microseconds, got Infinity'),
    ('{"ev": "seg", "t": NaN}', '"t" must be a number of microseconds, got NaN'),
    ('{"ev": "seg", "t": "x"}', '"t" must be a number of microseconds, got "x"'),
    ('{"ev": "seg", "t": 5, "seq": "x"}', '"seq" must be a whole number'),
    ('{"ev": "seg", "t": 5, "seq": 1, "len": -1}', '"len" must be a whole number'),
    ('{"ev": "seg", "t": 5, "flags": 18}', '"flags" must be a string'),
    ('{"ev": "fault", "t": 5, "action": "delay", "dir": "in", "ms": "x"}',
     '"ms" must be a number'),
    ('{"ev": "kernel", "t": 5, "state": "LISTEN", "conn": [1]}', '"conn" must be a string'),
    ('{"ev": "kernel", "t": 5, "state": "LISTEN", "conn": []}', '"conn" must be a string'),
    ('{"ev": "seg", "t": 5, "flags": []}', '"flags" must be a string'),
])
def test_an_event_the_ladder_cannot_draw_is_one_line_naming_file_and_line(
        tmp_path, capsys, bad, says):
    p = tmp_path / "t.jsonl"
    p.write_text(f"{GOOD}\n\n{bad}\n{GOOD}\n")       # the bad event is on line 3
    code, out, err = ladder(capsys, p)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"rawtcp ladder: {p}:3: ") and says in err


def test_times_of_mixed_types_are_refused_at_the_string(tmp_path, capsys):
    p = tmp_path / "mixed.jsonl"
    p.write_text('{"ev": "seg", "t": 1}\n{"ev": "seg", "t": "a"}\n')
    code, _, err = ladder(capsys, p)
    assert code == 2 and err == f'rawtcp ladder: {p}:2: "t" must be a number of ' \
                                'microseconds, got "a"\n'


def test_a_real_trace_passes_the_checks_and_draws(tmp_path, capsys):
    """The checks refuse nothing a run writes: a traced transfer with faults, both ways."""
    events, _ = memory_run(tmp_path)
    assert [e for e in events if event_problem(e) is not None] == []
    code, out, err = ladder(capsys, tmp_path / "a.jsonl")
    assert code == 0, err
    assert "S seq=0" in out and "X" in out        # the handshake, and a dropped segment


# Values of every JSON type; each field holds one of what a trace holds there 7 times in 8,
# so that events passing the checks with many fields present are common.
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3),
    st.lists(st.integers(0, 9), max_size=2), st.dictionaries(st.text(max_size=2),
                                                              st.integers(), max_size=1))


def _mostly(typical: st.SearchStrategy) -> st.SearchStrategy:
    return st.integers(0, 7).flatmap(lambda i: typical if i else _VALUES)


_U32, _PORT = st.integers(0, 2**32 - 1), st.integers(0, 65535)
_FIELDS = {"t": st.one_of(st.integers(0, 10**12), st.floats(-1e18, 1e18)), "seq": _U32,
           "ack": _U32, "len": st.integers(0, 70_000), "sport": _PORT, "dport": _PORT,
           "flags": st.sampled_from(["S", "SA", "A", "FA", "R", ""]), "ms": st.floats(0, 1e6),
           "copies": st.integers(1, 3), "rseq": _U32, "rack": _U32,
           "conn": st.sampled_from(["0.0.0.0:80>*:*", "10.0.0.1:1>10.0.0.2:80"]),
           "new": st.sampled_from(["LISTEN", "ESTABLISHED"]), "state": st.just("LISTEN"),
           "src": st.just("10.0.0.1"), "dst": st.just("10.0.0.2"), "reason": st.just("paws")}
_EVENT = st.fixed_dictionaries(
    {"ev": st.sampled_from(["seg", "fault", "drop", "udp", "icmp", "state", "kernel",
                            "error"])},
    optional={"dir": st.sampled_from(["in", "out"]),
              "action": st.sampled_from(["drop", "delay", "duplicate", "reorder",
                                         "corrupt"]),
              "proto": st.sampled_from(["udp", "icmp", "tcp"]),
              **{k: _mostly(v) for k, v in _FIELDS.items()}})


@settings(max_examples=300, deadline=None)
@given(st.lists(_mostly(_EVENT), min_size=1, max_size=6))
def test_whatever_the_checks_accept_the_ladder_draws(events):
    if any(event_problem(e) is not None for e in events):
        return
    text = render_ladder(events, width=100)
    assert text.endswith("\n")


def test_every_problem_fits_on_a_line():
    huge = {"ev": "seg", "t": 1, "seq": "x" * 10_000}
    problem = event_problem(huge)
    assert problem is not None and len(problem) < 120 and "\n" not in problem
    assert event_problem({"ev": "seg", "t": float(2**62)}) is None
    assert event_problem({"ev": "seg", "t": 2**63}) is not None
    assert not math.isfinite(json.loads("1e999"))
