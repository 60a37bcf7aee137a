"""RTT samples from timestamps (RFC 7323 4.3 with RFC 6298): every ACK of new data gives
one, a retransmitted segment's too (the echo tells which transmission it answers); without
timestamps Karn's algorithm (RFC 6298 3) still skips retransmitted data."""

from __future__ import annotations

from cc_harness import S, sack_harness, seg_at
from core_harness import RTT, from_peer

from rawtcp.core.config import MS
from rawtcp.core.segment import Options

T = 20 * MS


def _ts(h, tsecr: int) -> Options:
    return Options(timestamps=(100, tsecr))


def test_every_ack_of_new_data_is_a_sample() -> None:
    """RFC 7323 4.3: RTT = now - TSecr for each ACK that advances SND.UNA (ms clock)."""
    h = sack_harness(timestamps=True, rack=False)        # no probe in between
    mss = h.tcb.smss
    h.tcb.send(bytes(4 * mss), T)
    got = h.take(at=T)
    tsval = got[0].options.timestamps[0]
    assert tsval == T // 1000
    rtt = h.tcb.rtt
    h.send(from_peer(ack=seg_at(1, mss), opts=_ts(h, tsval)), at=T + 30 * MS)
    assert rtt.latest == 30 * MS               # the timed segment, us precision
    h.send(from_peer(ack=seg_at(2, mss), opts=_ts(h, tsval)), at=T + 50 * MS)
    assert rtt.latest == 50 * MS               # from TSecr: nothing timed is left
    h.send(from_peer(ack=seg_at(2, mss), opts=_ts(h, tsval)), at=T + 60 * MS)
    assert rtt.latest == 50 * MS               # a duplicate ACK is no sample


def test_retransmission_is_timed_with_timestamps_not_without() -> None:
    """RFC 7323 4.3 vs RFC 6298 3 (Karn): after an RTO the ACK of the retransmission
    gives a sample when it echoes the retransmission's TSval; without timestamps none."""
    for ts in (True, False):
        h = sack_harness(timestamps=ts, rack=False)      # no tail loss probe before the RTO
        mss = h.tcb.smss
        h.tcb.send(bytes(mss), T)
        h.take(at=T)
        rto = h.tcb.rtt.rto
        got = h.take(at=T + rto)                 # the RTO retransmission
        assert got and got[0].seq == S
        srtt = h.tcb.rtt.srtt
        echo = got[0].options.timestamps[0] if ts else 0
        h.send(from_peer(ack=S + mss, opts=_ts(h, echo) if ts else Options()),
               at=T + rto + 40 * MS)
        if ts:
            assert h.tcb.rtt.latest == 40 * MS and h.tcb.rtt.srtt != srtt
            assert h.tcb.rtt.backoff == 0
        else:
            assert h.tcb.rtt.srtt == srtt and h.tcb.rtt.backoff == 1   # Karn: no sample


def test_handshake_sample_and_min_rtt() -> None:
    h = sack_harness(timestamps=True)
    assert h.tcb.rtt.srtt == RTT and h.tcb.info()["min_rtt"] == RTT
