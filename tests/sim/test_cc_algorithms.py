"""Congestion control and loss recovery of issue 13 in two-stack runs on the simulator
(virtual time, fixed seeds): CUBIC vs NewReno, RACK-TLP vs DupThresh, HyStart++, ECN, and
the cc trace events."""

from __future__ import annotations

import pytest

from rawtcp.core.config import MS, SEC, Config
from rawtcp.core.congestion import INFINITE_SSTHRESH
from rawtcp.core.segment import CE
from rawtcp.sim import Sim, transfer


@pytest.mark.parametrize("congestion", ["cubic", "reno"])
@pytest.mark.parametrize("rack", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_transfer_under_loss_every_combination(congestion: str, rack: bool, seed: int) -> None:
    """RFC 9438 / RFC 5681+6582, RFC 8985 / RFC 6675: 1 MB each way under 3 % loss both
    ways arrives intact and the losses are repaired mostly by fast recovery."""
    cfg = Config(congestion=congestion, rack=rack)
    sim = Sim(seed=seed, loss=0.03, config=cfg, bandwidth_bps=50_000_000)
    racks: set[bool] = set()     # RACK's log on the client's connection while it is open
    sim.hooks.append(lambda s: racks.update(
        t.recovery.rack is not None for t in s.a.connections() if t.state.name == "ESTABLISHED"))
    r = transfer(sim, 1_000_000)
    assert r.ok
    c = sim.a.counters
    assert c["fast_retransmits"] > 0 and c["retransmits"] > 0
    assert r.client.info()["congestion"] == congestion
    assert racks == {rack}


def _after_one_loss(congestion: str) -> dict:
    cfg = Config(congestion=congestion)
    sim = Sim(seed=1, config=cfg, bandwidth_bps=100_000_000, delay_us=20 * MS,
              faults=["drop out len>0 nth=60"])
    r = transfer(sim, 3_000_000)
    assert r.ok and sim.a.counters["retransmits"] == 1
    return r.client.info()


def test_cubic_reduces_by_0_7_where_newreno_halves() -> None:
    """RFC 9438 4.6 vs RFC 5681 3.2: the same single loss leaves CUBIC with ssthresh =
    0.7 x flight and NewReno with 0.5 x flight; CUBIC's transfer is not slower."""
    cubic, reno = _after_one_loss("cubic"), _after_one_loss("reno")
    assert cubic["ssthresh"] < INFINITE_SSTHRESH and reno["ssthresh"] < INFINITE_SSTHRESH
    assert cubic["ssthresh"] > reno["ssthresh"] * 1.2


def test_hystart_leaves_slow_start_before_any_loss() -> None:
    """RFC 9406: on a 10 Mbit/s bottleneck with a 40 ms RTT the queue builds, the round's
    minimum RTT rises, and HyStart++ ends slow start with no loss; NewReno (no HyStart)
    stays in slow start with ssthresh infinite. Both with the 256 KiB buffers fixed (no
    autotuning): the flight NewReno's slow start reaches stays below what makes the
    queueing delay outrun its timers."""
    out = {}
    for cc in ("cubic", "reno"):
        cfg = Config(congestion=cc, moderate_rcvbuf=False, sndbuf_max=Config().sndbuf)
        sim = Sim(seed=1, config=cfg, bandwidth_bps=10_000_000, delay_us=20 * MS)
        r = transfer(sim, 1_500_000)
        assert r.ok and sim.a.counters["retransmits"] == 0
        out[cc] = r.client.info()["ssthresh"]
    assert out["cubic"] < INFINITE_SSTHRESH and out["reno"] == INFINITE_SSTHRESH


def test_ecn_marks_reduce_cwnd_without_loss() -> None:
    """RFC 3168: b sees CE on some of a's data and echoes ECE; a reduces (state cwr, CWR
    sent) and nothing is retransmitted; both count what they saw."""
    events: list[dict] = []
    sim = Sim(seed=1, config=Config(ecn=1), bandwidth_bps=50_000_000, tracer=events.append)
    deliver = sim.b.on_packet
    count = {"n": 0}

    def mark(pkt, now):                        # a router marking every 40th data packet
        seg = pkt.segment
        if seg.payload and seg.ecn:
            count["n"] += 1
            if count["n"] % 40 == 0:
                pkt = pkt._replace(segment=seg._replace(ecn=CE))
        deliver(pkt, now)

    sim.b.on_packet = mark
    r = transfer(sim, 1_000_000)
    assert r.ok and sim.a.counters["retransmits"] == 0
    assert r.client.info()["ecn"] and r.server.info()["delivered_ce"] > 0
    cas = {e["ca"] for e in events if e["ev"] == "cc" and e["stack"] == "a"}
    assert "cwr" in cas
    cwr_sent = [e for e in events if e["ev"] == "seg" and e["stack"] == "a"
                and e["dir"] == "out" and "C" in e["flags"]]
    assert cwr_sent


def test_cc_events_are_rate_bounded_and_complete() -> None:
    """The contract of {ev: "cc"}: every field, at most one per processed ACK, and events
    less than 1 ms apart only when the ca state changed."""
    events: list[dict] = []
    sim = Sim(seed=3, loss=0.02, config=Config(), bandwidth_bps=50_000_000,
              tracer=events.append)
    assert transfer(sim, 500_000).ok
    cc = [e for e in events if e["ev"] == "cc" and e["stack"] == "a"]
    acks_in = [e for e in events if e["ev"] == "seg" and e["stack"] == "a" and e["dir"] == "in"]
    fired = [e for e in events if e["ev"] == "timer" and e["stack"] == "a"
             and e["action"] == "fired" and e["name"] in ("rtx", "rack")]
    assert 10 < len(cc) <= len(acks_in) + len(fired)
    for e in cc:
        assert set(e) >= {"cwnd", "ssthresh", "srtt", "rttvar", "rto", "pipe", "ca", "algo"}
    for prev, cur in zip(cc, cc[1:]):
        if cur["conn"] == prev["conn"] and cur["t"] - prev["t"] < 1 * MS:
            assert cur["ca"] != prev["ca"]
    assert {e["ca"] for e in cc} >= {"open", "recovery"}
    assert max(e["t"] for e in cc) < 600 * SEC
