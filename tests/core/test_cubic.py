"""CUBIC (RFC 9438) and HyStart++ (RFC 9406) as arithmetic on the controller, and the
controller a connection gets (Config.congestion, TCP_CONGESTION)."""

from __future__ import annotations

import pytest
from core_harness import Harness, plain_config

from rawtcp.core.config import MS, SEC
from rawtcp.core.congestion import INFINITE_SSTHRESH, NewReno
from rawtcp.core.cubic import BETA, CSS_ROUNDS, C, Cubic
from rawtcp.core.recovery import new_cc

MSS = 1000


def test_reduction_is_beta_and_fast_convergence_lowers_w_max() -> None:
    """RFC 9438 4.6: ssthresh = flight * 0.7; 4.7: a second loss below the last W_max
    sets W_max = cwnd * (1 + beta) / 2."""
    cc = Cubic(MSS, 100)
    cc.enter_recovery(100 * MSS, snd_max=10**6)
    assert cc.ssthresh == 70 * MSS and cc.w_max == 100
    cc.exit_recovery_hook(0)
    cc.in_recovery = False
    cc.cwnd = 80 * MSS
    cc.enter_recovery(80 * MSS, snd_max=2 * 10**6)
    assert cc.ssthresh == 56 * MSS and cc.w_max == pytest.approx(80 * (1 + BETA) / 2)


def test_window_follows_the_cubic_curve_back_to_w_max_at_k() -> None:
    """RFC 9438 4.2 eq. 1-2: after a reduction from W_max = 100 to 70 segments, the window
    grows concavely (fast, then slower), is back near W_max at t = K = cbrt(30 / C) s
    (about 4.2 s) and then probes beyond it convexly."""
    cc = Cubic(MSS, 100)
    cc.min_rtt = 100 * MS
    cc.on_timeout(100 * MSS, first=True)          # W_max = 100, ssthresh = 70
    cc.cwnd = cc.ssthresh
    k = (30 / C) ** (1 / 3)
    now = 0
    samples = {}
    while now < 6 * SEC:                          # one ACK per segment, cwnd per RTT
        per_ack = 100 * MS * MSS // cc.cwnd
        cc.on_ack(MSS, now)
        now += per_ack
        samples[round(now / SEC, 1)] = cc.cwnd / MSS
    at_k = samples[round(k, 1)]
    assert 95 <= at_k <= 102                       # plateau around W_max (the RTT ahead)
    assert samples[1.0] - 70 > samples[3.0] - samples[2.0]   # concave: fast, then slow
    assert samples[5.9] > 101 and samples[5.9] - samples[5.0] > samples[5.0] - samples[4.2]


def test_reno_friendly_region_when_the_cubic_curve_is_slower() -> None:
    """RFC 9438 4.3: with a tiny W_max (short RTT, small window) W_est = 3(1-b)/(1+b)
    segments per RTT drives the window when it is above the cubic curve."""
    cc = Cubic(MSS, 10)
    cc.min_rtt = 1 * MS
    cc.on_timeout(10 * MSS, first=True)
    cc.cwnd = cc.ssthresh
    start = cc.cwnd
    now = 0
    for _ in range(2000):
        cc.on_ack(MSS, now)
        now += 100                                 # 10 ACKs per ms-RTT
    assert cc.cwnd > start
    assert cc.w_est > 7


def test_hystart_plus_plus_leaves_slow_start_when_the_rtt_rises() -> None:
    """RFC 9406 4.2: after a round with 8 samples, a round whose minimum RTT is at least
    lastRoundMinRTT + clamp(lastRoundMinRTT / 8, 4 ms, 16 ms) enters Conservative Slow
    Start (growth / 4); CSS_ROUNDS rounds later ssthresh = cwnd (congestion avoidance)."""
    cc = Cubic(MSS, 10)
    hs = cc.hystart
    state = {"ack": 0, "snd_max": 10 * MSS}

    def feed(n: int, rtt_us: int) -> None:         # a sender keeping cwnd in flight
        for _ in range(n):
            state["ack"] += MSS
            cc.on_rtt(rtt_us, 0)
            cc.on_ack(MSS, 0, state["ack"], state["snd_max"])
            state["snd_max"] = state["ack"] + cc.cwnd

    feed(70, 40 * MS)                               # rounds of 10, 20, 40 ACKs
    assert not hs.css_baseline and cc.ssthresh == INFINITE_SSTHRESH
    assert cc.cwnd == 80 * MSS                      # doubling per round
    feed(200, 45 * MS)                              # +5 ms >= clamp(40 / 8 = 5 ms)
    assert hs.css_baseline == 45 * MS
    assert cc.cwnd < 2 * 80 * MSS                   # CSS: a quarter of slow start's growth
    feed(2000, 45 * MS)
    assert cc.hystart is None and cc.ssthresh < INFINITE_SSTHRESH and hs.css_rounds == \
        CSS_ROUNDS


def test_hystart_css_goes_back_to_slow_start_if_the_rtt_falls() -> None:
    """RFC 9406 4.2: in CSS, a round minimum below cssBaselineMinRtt was a spurious exit."""
    cc = Cubic(MSS, 10)
    hs = cc.hystart
    hs.last_min = 40 * MS
    hs.window_end = 10 ** 9
    for _ in range(8):
        cc.on_rtt(50 * MS, 0)
    cc.on_ack(MSS, 0, 1, 10 ** 9)
    assert hs.css_baseline == 50 * MS
    cc.on_rtt(30 * MS, 0)
    cc.on_ack(MSS, 0, 2, 10 ** 9)
    assert hs.css_baseline == 0


def test_undo_restores_cubic_state() -> None:
    """RFC 9438 4.9: a spurious congestion event restores cwnd, ssthresh and W_max."""
    cc = Cubic(MSS, 50, use_sack=True)
    cc.enter_recovery(50 * MSS, 10**6)
    assert cc.cwnd == 35 * MSS
    cc.undo()
    assert cc.cwnd == 50 * MSS and cc.ssthresh == INFINITE_SSTHRESH and cc.w_max == 0


@pytest.mark.parametrize("name, cls", [("cubic", Cubic), ("reno", NewReno)])
def test_the_connection_runs_the_configured_algorithm(name: str, cls: type) -> None:
    h = Harness(plain_config(congestion=name))
    h.passive_open()
    assert type(h.tcb.cc) is cls and h.tcb.info()["congestion"] == name
    assert type(new_cc(name, 1000, 10)) is cls
    with pytest.raises(ValueError, match="cubic, reno"):
        new_cc("vegas", 1000, 10)
