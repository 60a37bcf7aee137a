"""Pure helpers of the experiment modules (no kernel needed)."""

from __future__ import annotations

from rawtcp.experiments.failures import _doubles
from rawtcp.experiments.kernel_time_wait import ss_timer_seconds
from rawtcp.experiments.zero_window import _zero_window_violations


def test_ss_timer_format_of_iproute2():
    # iproute2 print_ms_timer: seconds and milliseconds run together ("4.988ms" = 4988 ms)
    assert ss_timer_seconds("4.988ms") == 4.988
    assert ss_timer_seconds("59sec") == 59.0
    assert ss_timer_seconds("1min2sec") == 62.0
    assert ss_timer_seconds("1min") == 60.0
    assert ss_timer_seconds("200ms") == 0.2
    assert ss_timer_seconds("") is None
    assert ss_timer_seconds("soon") is None


def test_backoff_doubling_detector():
    """RFC 6298 5.5: each interval twice the previous one."""
    assert _doubles([200.9, 400.8, 801.6], 200)
    assert not _doubles([200, 200, 200], 200)
    assert not _doubles([], 200)


def test_zero_window_violation_finder():
    """RFC 9293 3.8.6.1: no new data while the offered window is zero; probes carry none."""
    def seg(d, flags, win=100, ln=0):
        return {"ev": "seg", "dir": d, "flags": flags, "win": win, "len": ln}

    ok = [seg("in", "A", 0), seg("out", "A"), seg("in", "A", 0), seg("in", "A", 50),
          seg("out", "PA", ln=50)]
    assert _zero_window_violations(ok) == ([], 2)
    bad = [seg("in", "A", 0), seg("out", "PA", ln=1)]
    assert len(_zero_window_violations(bad)[0]) == 1
