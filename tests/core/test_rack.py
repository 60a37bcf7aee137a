"""RACK-TLP loss detection (RFC 8985), segment by segment on a virtual clock.

The connection has SACK, RTT 10 ms (min RTT 10 ms, so the reordering window is 2.5 ms),
nodelay; data goes out at T."""

from __future__ import annotations

from cc_harness import S, data, sack, sack_harness, seg_at
from core_harness import MSS, RTT, from_peer

from rawtcp.core.config import MS
from rawtcp.core.rack import LOST, RETRANS, Rack

T = 20 * MS


def test_one_sack_above_a_hole_waits_for_the_reordering_window() -> None:
    """RFC 8985 6.2 steps 4-5 and 6.3: a single SACK above segment 0 does not make it lost
    at once (it may be reordered); the reordering timer fires RACK.rtt + reo_wnd after it
    was sent, with reo_wnd = min_RTT / 4, and only then is it retransmitted."""
    h = sack_harness()
    h.tcb.send(bytes(10 * MSS), T)
    assert len(h.take(at=T)) == 10
    h.send(from_peer(ack=S, opts=sack((1, 2))), at=T + RTT)
    h.recv_nothing(at=T + RTT + 2 * MS + 499)
    assert h.tcb.timers.deadlines["rack"] == T + RTT + 2 * MS + 500
    h.recv([data(0)], at=T + RTT + 2 * MS + 500)
    assert h.tcb.info()["ca"] == "recovery" and h.stack.counters["fast_retransmits"] == 1


def test_three_sacked_segments_mean_loss_at_once() -> None:
    """RFC 8985 6.2 step 4: without reordering seen, reo_wnd is 0 once DupThresh (3)
    segments are SACKed: the hole is lost with the third SACK, as RFC 6675 would say."""
    h = sack_harness()
    h.tcb.send(bytes(10 * MSS), T)
    h.take(at=T)
    h.send(from_peer(ack=S, opts=sack((1, 2))), at=T + RTT)
    h.send(from_peer(ack=S, opts=sack((1, 3))), at=T + RTT + 10)
    h.recv_nothing()
    h.send(from_peer(ack=S, opts=sack((1, 4))), at=T + RTT + 20)
    h.recv([data(0)])


def test_reordering_seen_widens_the_window() -> None:
    """RFC 8985 6.2 step 3: a segment below RACK.fack that arrives without having been
    retransmitted was reordered; from then on three SACKs no longer mark loss at once."""
    h = sack_harness()
    h.tcb.send(bytes(20 * MSS), T)
    h.take(at=T)
    h.send(from_peer(ack=S, opts=sack((1, 2))), at=T + RTT)
    h.send(from_peer(ack=seg_at(2)), at=T + RTT + 100)      # segment 0 was only late
    assert h.tcb.recovery.rack.reordering_seen
    h.send(from_peer(ack=seg_at(2), opts=sack((3, 4))), at=T + RTT + 200)
    h.send(from_peer(ack=seg_at(2), opts=sack((3, 5))), at=T + RTT + 300)
    h.send(from_peer(ack=seg_at(2), opts=sack((3, 6))), at=T + RTT + 400)
    got = h.take()
    assert all(g.seq != seg_at(2) for g in got)              # not yet: reo_wnd = 2.5 ms
    assert "rack" in h.tcb.timers.deadlines


def test_tail_loss_probe_resends_the_last_segment_before_the_rto() -> None:
    """RFC 8985 7.2-7.3: the last two segments of a flight are lost and no SACK can come;
    two SRTTs (+ 2 ms) after the last ACK the probe resends the last segment (new data would go
    first, there is none), long before the 200 ms RTO; one probe only."""
    h = sack_harness()
    h.tcb.send(bytes(4 * MSS), T)
    assert len(h.take(at=T)) == 4
    h.send(from_peer(ack=seg_at(2)), at=T + RTT)
    srtt = h.tcb.rtt.srtt
    assert srtt == RTT
    pto = 2 * srtt + 2 * MS                # RFC 8985 7.2, + 2 ms as Linux (two segments)
    h.recv_nothing(at=T + RTT + pto - 1)
    h.recv([data(3, flags="PA")], at=T + RTT + pto)
    assert h.stack.counters["tlp_probes"] == 1
    # the probe draws a SACK: RACK sees segment 2 lost and repairs it without the RTO
    h.send(from_peer(ack=seg_at(2), opts=sack((3, 4))), at=T + 2 * RTT + pto)
    h.recv([data(2)])
    assert h.stack.counters["tlp_probes"] == 1 and h.tcb.info()["ca"] == "recovery"


def test_rack_off_has_no_probe_and_no_timer() -> None:
    """Config.rack = False: the RFC 6675 path, no TLP (the RTO repairs a tail loss)."""
    h = sack_harness(rack=False)
    h.tcb.send(bytes(4 * MSS), T)
    h.take(at=T)
    h.send(from_peer(ack=seg_at(2)), at=T + RTT)
    h.recv_nothing(at=T + RTT + 150 * MS)
    assert h.tcb.recovery.rack is None and "tlp" not in h.tcb.timers.deadlines


def test_lost_retransmission_is_found_again() -> None:
    """RFC 8985 6.2: a retransmission counts as sent at its new time; when data sent after
    it is delivered and the retransmission's RTT has passed, it is lost again (no RTO)."""
    r = Rack(mss=100)
    r.start_ack(10_000)
    for i in range(5):
        r.sent(i * 100, (i + 1) * 100, 0)
    r.start_ack(10_000)
    r.sacked(100, 300, 10_000)                   # 0 is the hole
    assert r.detect_loss(20_000, 0) == 0 and r.lost_out == 100
    assert r.next_lost() == (0, 100)
    r.resent(0, 100, 20_000)
    assert r.next_lost() is None and r.retrans_out == 100 and r.lost_out == 100
    r.sent(500, 600, 21_000)
    r.start_ack(10_000)
    r.sacked(500, 600, 31_000)                   # sent after the retransmission
    assert r.detect_loss(31_000, 0) == 0
    assert r._f[0] & LOST and not r._f[0] & RETRANS and r.retrans_out == 0
    assert r.next_lost() == (0, 100)


def test_a_sack_of_part_of_a_segment_marks_nothing() -> None:
    """As Linux (tcp_match_skb_to_sack): SACK edges cut records only at whole segments,
    so a SACK of one byte of a segment delivers nothing to RACK."""
    r = Rack(mss=1000)
    r.sent(0, 4000, 0)
    r.start_ack()
    r.sacked(3999, 4000, 10_000)
    assert r.sacked_segs == 0 and r.xmit_ts == -1
    r.sacked(3000, 4000, 10_000)
    assert r.sacked_segs == 1 and r._s == [0, 3000]
