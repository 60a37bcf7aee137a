"""Proportional Rate Reduction (RFC 6937) during SACK recovery, segment by segment."""

from __future__ import annotations

from cc_harness import S, sack, sack_harness, seg_at
from core_harness import MSS, RTT, from_peer

from rawtcp.core.config import MS

T = 20 * MS


def _recovery(congestion: str):
    """20 segments in flight (cwnd 20), segment 0 lost; the peer SACKs 1, 2, 3, ... one
    per ACK; the third SACK starts recovery (RACK, reo_wnd 0 after DupThresh SACKs)."""
    h = sack_harness(congestion=congestion)
    h.tcb.cc.cwnd = 20 * MSS
    h.tcb.send(bytes(60 * MSS), T)
    assert len(h.take(at=T)) == 20
    sent = []
    for k in range(1, 20):
        h.send(from_peer(ack=S, opts=sack((1, k + 1))), at=T + RTT + k * 10)
        sent.append(h.take())
    return h, sent


def test_prr_sends_in_proportion_to_what_is_delivered() -> None:
    """RFC 6937 3: while pipe > ssthresh, sndcnt = CEIL(prr_delivered * ssthresh /
    RecoverFS) - prr_out: with NewReno (ssthresh = RecoverFS / 2) one segment for every
    two delivered, the first being the fast retransmit of segment 0."""
    h, sent = _recovery("reno")
    # disorder: nothing lost yet; Limited Transmit (RFC 3042) sends one new segment each
    assert [[g.seq for g in x] for x in sent[:2]] == [[seg_at(20)], [seg_at(21)]]
    assert [g.seq for g in sent[2]] == [seg_at(0)]         # the fast retransmit
    # ACKs 3..10 in recovery: delivered 1..8 segments -> ceil(k / 2) segments out in total
    total = [sum(len(x) for x in sent[2:2 + k]) for k in range(1, 9)]
    assert total == [1, 1, 2, 2, 3, 3, 4, 4]
    assert all(g.seq == seg_at(22 + i) for i, g in enumerate(
        g for x in sent[3:10] for g in x))                 # then new data, in order


def test_recovery_ends_with_cwnd_at_ssthresh() -> None:
    """RFC 6937 3 (and Linux): at the end of recovery cwnd = ssthresh; CUBIC's ssthresh is
    0.7 of the flight at the loss (RFC 9438 4.6)."""
    h, sent = _recovery("cubic")
    cc = h.tcb.cc
    assert cc.in_recovery and cc.ssthresh == 20 * MSS * 7 // 10
    recover = cc.recover
    h.send(from_peer(ack=recover), at=T + 3 * RTT)
    assert not cc.in_recovery and cc.cwnd == cc.ssthresh
    assert h.tcb.info()["ca"] == "open"


def test_prr_off_sets_cwnd_to_ssthresh_at_once() -> None:
    """Config.prr = False: RFC 6675 5 step 4 sets cwnd = ssthresh when recovery starts
    and the holes go out while pipe < cwnd."""
    h = sack_harness(congestion="reno", prr=False)
    h.tcb.cc.cwnd = 20 * MSS
    h.tcb.send(bytes(60 * MSS), T)
    h.take(at=T)
    for k in range(1, 4):
        h.send(from_peer(ack=S, opts=sack((1, k + 1))), at=T + RTT + k * 10)
    assert h.tcb.cc.cwnd == 10 * MSS
