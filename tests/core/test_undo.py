"""Undo of a spurious reduction (as Linux does it): D-SACK (RFC 2883 / RFC 3708) after a
fast retransmit, and the timestamp echo (Eifel, RFC 3522 detection with the RFC 4015
response) after an RTO."""

from __future__ import annotations

from cc_harness import S, sack, sack_harness, seg_at
from core_harness import RTT, from_peer

from rawtcp.core.config import MS
from rawtcp.core.congestion import INFINITE_SSTHRESH
from rawtcp.core.segment import Options

T = 20 * MS


def test_dsack_of_the_only_retransmission_undoes_the_reduction() -> None:
    """RFC 3708 2 / RFC 2883: segment 0 was only delayed: after the fast retransmit the
    peer reports it twice (a D-SACK below the cumulative ACK): every retransmission of the
    episode was needless, so cwnd and ssthresh go back and the state is open again."""
    h = sack_harness(congestion="reno")
    mss = h.tcb.smss
    h.tcb.send(bytes(10 * mss), T)
    h.take(at=T)
    cwnd = h.tcb.cc.cwnd
    for k in range(1, 4):
        h.send(from_peer(ack=S, opts=sack((1, k + 1))), at=T + RTT + k * 10)
    got = h.take()
    assert got[0].seq == S and h.tcb.info()["ca"] == "recovery"
    assert h.tcb.cc.cwnd < cwnd
    # the original arrives, then the retransmission: D-SACK for [S, S + mss)
    h.send(from_peer(ack=seg_at(4)), at=T + RTT + 100)
    h.send(from_peer(ack=seg_at(4), opts=Options(sack_blocks=((S, S + mss),))),
           at=T + RTT + 200)
    info = h.tcb.info()
    assert info["ca"] == "open" and info["undo_count"] == 1 and info["dsack_dups"] == 1
    assert h.tcb.cc.cwnd >= cwnd and h.tcb.cc.ssthresh == INFINITE_SSTHRESH


def test_undo_off_keeps_the_reduction() -> None:
    h = sack_harness(congestion="reno", undo=False)
    mss = h.tcb.smss
    h.tcb.send(bytes(10 * mss), T)
    h.take(at=T)
    for k in range(1, 4):
        h.send(from_peer(ack=S, opts=sack((1, k + 1))), at=T + RTT + k * 10)
    h.take()
    h.send(from_peer(ack=seg_at(4)), at=T + RTT + 100)
    h.send(from_peer(ack=seg_at(4), opts=Options(sack_blocks=((S, S + mss),))),
           at=T + RTT + 200)
    assert h.tcb.info()["undo_count"] == 0 and h.tcb.cc.ssthresh < INFINITE_SSTHRESH


def test_eifel_spurious_rto_is_undone_by_the_timestamp_echo() -> None:
    """RFC 3522 2 / RFC 4015 3.2: the first ACK after an RTO echoes the TSval of the
    original transmission (older than the retransmission's): the timeout was spurious;
    cwnd and ssthresh are restored and nothing else is resent (no go-back-N)."""
    h = sack_harness(timestamps=True, rack=False)
    mss = h.tcb.smss
    h.tcb.send(bytes(4 * mss), T)
    first = h.take(at=T)
    assert len(first) == 4
    cwnd = h.tcb.cc.cwnd
    rto = h.tcb.rtt.rto
    got = h.take(at=T + rto)
    assert [g.seq for g in got] == [S] and h.tcb.info()["ca"] == "loss"
    assert h.tcb.cc.cwnd == mss
    orig_ts = first[0].options.timestamps[0]
    h.send(from_peer(ack=seg_at(4, mss), opts=Options(timestamps=(100, orig_ts))),
           at=T + rto + 5 * MS)
    assert h.take() == []
    info = h.tcb.info()
    assert info["ca"] == "open" and info["undo_count"] == 1
    assert h.tcb.cc.cwnd >= cwnd and h.tcb.cc.ssthresh == INFINITE_SSTHRESH
