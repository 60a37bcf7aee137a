"""Close paths, one section per RFC 9293 state: FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT,
LAST_ACK, CLOSING, TIME_WAIT (RFC 9293 3.6, 3.10.4, 3.10.7.4; RFC 6298 for FIN
retransmission). An RST arriving in any of these states is tested in
test_rst_every_state.py."""

from __future__ import annotations

import errno

from core_harness import ISS, PISS, RCVBUF, RTO, Harness, from_peer, plain_config, to_peer

from rawtcp.core.config import MS, SEC
from rawtcp.core.tcb import State

TW = 60 * SEC  # 2 * MSL with msl = 30 s
T = 20 * MS


# ------------------------------------------------------------------ active close
def test_active_close_full_sequence(fin_wait_1: Harness) -> None:
    """RFC 9293 3.6 figure 12 (normal close): FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT ->
    CLOSED after 2*MSL."""
    h = fin_wait_1
    h.send(from_peer(ack=ISS + 2), at=30 * MS)
    assert h.tcb.state is State.FIN_WAIT_2
    h.send(from_peer(flags="FA", ack=ISS + 2), at=40 * MS)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=40 * MS + TW - 1)
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=40 * MS + TW)
    assert h.tcb.state is State.CLOSED and h.tcb.error is None
    assert [e for e in h.state_events() if e[0] != "CLOSED"][-4:] == [
        ("ESTABLISHED", "FIN_WAIT_1"), ("FIN_WAIT_1", "FIN_WAIT_2"),
        ("FIN_WAIT_2", "TIME_WAIT"), ("TIME_WAIT", "CLOSED")]


def test_fin_wait_1_fin_with_ack_goes_straight_to_time_wait(fin_wait_1: Harness) -> None:
    """RFC 9293 3.10.7.4 eighth (FIN-WAIT-1): FIN that also acks our FIN -> TIME_WAIT."""
    h = fin_wait_1
    h.send(from_peer(flags="FA", ack=ISS + 2), at=30 * MS)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert h.tcb.state is State.TIME_WAIT


def test_fin_wait_1_retransmits_fin_at_rto_then_twice_rto(fin_wait_1: Harness) -> None:
    """RFC 6298 5.4-5.5 + RFC 9293 3.10.4: FIN retransmitted at RTO, then 2*RTO, none before."""
    h = fin_wait_1
    fin = to_peer(flags="FA")
    t0 = 20 * MS
    h.recv_nothing(at=t0 + RTO - 1)
    h.recv([fin], at=t0 + RTO)
    h.recv_nothing(at=t0 + RTO + 2 * RTO - 1)
    h.recv([fin], at=t0 + 3 * RTO)
    h.recv_nothing(at=t0 + 7 * RTO - 1)
    h.recv([fin], at=t0 + 7 * RTO)
    rt = [e for e in h.events if e["ev"] == "retransmit"]
    assert [e["count"] for e in rt] == [1, 2, 3] and rt[0]["flags"] == "FA"


def test_fin_wait_1_fin_retransmission_runs_out_to_etimedout() -> None:
    """RFC 9293 3.8.3 R2 (retries2): the FIN is given up after retries2 timeouts."""
    h = Harness(plain_config(retries2=2))
    h.passive_open()
    h.tcb.close(20 * MS)
    h.recv([to_peer(flags="FA")], at=20 * MS)
    h.recv([to_peer(flags="FA")], at=20 * MS + RTO)
    h.recv([to_peer(flags="FA")], at=20 * MS + 3 * RTO)
    h.recv_nothing(at=20 * MS + 7 * RTO)
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ETIMEDOUT


def test_fin_follows_the_data_sent_before_close(est: Harness) -> None:
    """RFC 9293 3.10.4 CLOSE: FIN_WAIT_1 at once; the FIN takes the sequence number after
    the last data byte, and its ACK leads to FIN_WAIT_2."""
    h = est
    h.tcb.send(b"bye", 20 * MS)
    h.recv([to_peer(flags="PA", payload=b"bye")], at=20 * MS)
    h.tcb.close(21 * MS)
    assert h.tcb.state is State.FIN_WAIT_1
    h.recv([to_peer(seq=ISS + 4, flags="FA")], at=21 * MS)
    h.send(from_peer(ack=ISS + 5), at=30 * MS)
    assert h.tcb.state is State.FIN_WAIT_2


def test_close_sends_nagle_held_data_with_the_fin(est: Harness) -> None:
    """RFC 9293 3.10.4 CLOSE in ESTABLISHED: "Queue this until all preceding SENDs have been
    segmentized, then form a FIN segment": data that Nagle (RFC 1122 4.2.3.4) holds back
    goes out at close, the FIN in the same segment."""
    h = est
    h.tcb.send(b"bye", 20 * MS)
    h.recv([to_peer(flags="PA", payload=b"bye")], at=20 * MS)
    h.tcb.send(b"!", 20 * MS + 500)
    h.recv_nothing(at=20 * MS + 500)             # held: "bye" is not acknowledged yet
    h.tcb.close(21 * MS)
    assert h.tcb.state is State.FIN_WAIT_1
    h.recv([to_peer(seq=ISS + 4, flags="FPA", payload=b"!")], at=21 * MS)
    h.send(from_peer(ack=ISS + 6), at=30 * MS)
    assert h.tcb.state is State.FIN_WAIT_2


def test_orphaned_fin_wait_2_times_out() -> None:
    """RFC 9293 3.3.2 (FIN-WAIT-2 waits for the peer's FIN, with no limit) bounded as Linux
    tcp_fin_timeout does: after close() a FIN_WAIT_2 connection dies after fin_timeout."""
    h = Harness(plain_config(fin_timeout=10 * SEC))
    h.passive_open()
    h.tcb.close(20 * MS)
    h.recv([to_peer(flags="FA")], at=20 * MS)
    h.send(from_peer(ack=ISS + 2), at=30 * MS)
    assert h.tcb.state is State.FIN_WAIT_2
    h.recv_nothing(at=30 * MS + 10 * SEC - 1)
    assert h.tcb.state is State.FIN_WAIT_2
    h.recv_nothing(at=30 * MS + 10 * SEC)
    assert h.tcb.state is State.CLOSED


def test_half_close_fin_wait_2_has_no_timeout_and_receives_data() -> None:
    """RFC 9293 3.6 half-close: after shutdown(SHUT_WR) FIN_WAIT_2 waits for the peer
    (no fin_timeout) and still receives data."""
    h = Harness(plain_config(fin_timeout=10 * SEC))
    h.passive_open()
    h.tcb.shutdown(1, 20 * MS)
    h.recv([to_peer(flags="FA")], at=20 * MS)
    h.send(from_peer(ack=ISS + 2), at=30 * MS)
    assert h.tcb.state is State.FIN_WAIT_2
    h.recv_nothing(at=100 * SEC)
    assert h.tcb.state is State.FIN_WAIT_2
    h.send(from_peer(ack=ISS + 2, flags="PA", payload=b"more"), at=101 * SEC)
    h.send(from_peer(seq=PISS + 5, ack=ISS + 2, flags="FA"), at=101 * SEC)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 6, win=RCVBUF - 5)])
    assert h.tcb.state is State.TIME_WAIT
    assert h.tcb.recv(100, 101 * SEC) == b"more" and h.tcb.eof


def test_send_after_shutdown_wr_is_epipe(est: Harness) -> None:
    """RFC 9293 3.10.2 SEND in FIN-WAIT: "connection closing" -> EPIPE."""
    est.tcb.shutdown(1, 20 * MS)
    try:
        est.tcb.send(b"x", 21 * MS)
    except OSError as e:
        assert e.errno == errno.EPIPE
    else:
        raise AssertionError("send after SHUT_WR must fail")


# ------------------------------------------------------------------ passive close
def test_passive_close_close_wait_last_ack_closed(close_wait: Harness) -> None:
    """RFC 9293 3.6: FIN received -> CLOSE_WAIT; close -> LAST_ACK; ACK -> CLOSED."""
    h = close_wait
    assert h.tcb.eof
    h.tcb.close(30 * MS)
    h.recv([to_peer(flags="FA", ack=PISS + 2, win=RCVBUF - 1)], at=30 * MS)
    assert h.tcb.state is State.LAST_ACK
    h.send(from_peer(seq=PISS + 2, ack=ISS + 2), at=40 * MS)
    assert h.tcb.state is State.CLOSED and h.tcb.error is None
    h.recv_nothing(at=10 * SEC)


def test_close_wait_can_still_send(close_wait: Harness) -> None:
    """RFC 9293 3.10.2 SEND in CLOSE-WAIT: allowed (half-close from the peer)."""
    h = close_wait
    assert h.tcb.send(b"late", 25 * MS) == 4
    h.recv([to_peer(flags="PA", ack=PISS + 2, payload=b"late", win=RCVBUF - 1)], at=25 * MS)


def test_last_ack_retransmits_fin_with_backoff(last_ack: Harness) -> None:
    """RFC 6298 5.4-5.5: LAST_ACK retransmits its FIN at RTO, then 2*RTO, nothing before."""
    h = last_ack
    fin = to_peer(flags="FA", ack=PISS + 2, win=RCVBUF - 1)
    t0 = 30 * MS
    h.recv_nothing(at=t0 + RTO - 1)
    h.recv([fin], at=t0 + RTO)
    h.recv_nothing(at=t0 + 3 * RTO - 1)
    h.recv([fin], at=t0 + 3 * RTO)
    h.send(from_peer(seq=PISS + 2, ack=ISS + 2), at=t0 + 3 * RTO + 10 * MS)
    assert h.tcb.state is State.CLOSED


# ------------------------------------------------------------------ simultaneous close
def test_simultaneous_close_via_closing(closing: Harness) -> None:
    """RFC 9293 3.6 figure 13: FIN_WAIT_1 -> CLOSING -> TIME_WAIT -> CLOSED."""
    h = closing
    h.send(from_peer(seq=PISS + 2, ack=ISS + 2), at=30 * MS)
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=30 * MS + TW)
    assert h.tcb.state is State.CLOSED
    assert ("FIN_WAIT_1", "CLOSING") in h.state_events()
    assert ("CLOSING", "TIME_WAIT") in h.state_events()


def test_closing_retransmits_fin_with_backoff(closing: Harness) -> None:
    """RFC 6298 5.4-5.5: in CLOSING the unacked FIN is retransmitted at RTO, 2*RTO."""
    h = closing
    fin = to_peer(flags="FA", ack=PISS + 2, win=RCVBUF - 1)
    t0 = 20 * MS  # the FIN was first sent at 20 ms
    h.recv_nothing(at=t0 + RTO - 1)
    h.recv([fin], at=t0 + RTO)
    h.recv_nothing(at=t0 + 3 * RTO - 1)
    h.recv([fin], at=t0 + 3 * RTO)


# ------------------------------------------------------------------ TIME_WAIT
def test_time_wait_reacks_retransmitted_fin_and_restarts_2msl(time_wait: Harness) -> None:
    """RFC 9293 3.10.7.4 eighth (TIME-WAIT): a retransmitted FIN is ACKed and the 2 MSL
    timeout restarts."""
    h = time_wait
    t1 = 40 * MS + 10 * SEC
    h.send(from_peer(flags="FA", ack=ISS + 2), at=t1)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    h.recv_nothing(at=40 * MS + TW)
    assert h.tcb.state is State.TIME_WAIT  # would have ended here without the restart
    h.recv_nothing(at=t1 + TW - 1)
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=t1 + TW)
    assert h.tcb.state is State.CLOSED


def test_time_wait_zero_ablation_late_fin_meets_rst() -> None:
    """Ablation time_wait = 0: no TIME_WAIT; the peer's retransmitted FIN (our ACK was lost)
    meets no TCB and is answered with RST (RFC 9293 3.10.7.1) - the hazard TIME_WAIT
    prevents (RFC 9293 3.6.1)."""
    h = Harness(plain_config(time_wait=0))
    h.passive_open()
    h.tcb.close(20 * MS)
    h.recv([to_peer(flags="FA")], at=20 * MS)
    h.send(from_peer(flags="FA", ack=ISS + 2), at=30 * MS)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert h.tcb.state is State.CLOSED
    assert ("TIME_WAIT", "CLOSED") in h.state_events()
    h.send(from_peer(flags="FA", ack=ISS + 2), at=300 * MS)
    h.recv([to_peer(seq=ISS + 2, ack=0, flags="R", win=0)])


# ------------------------------------------------------------------ RST sent by us
# (RST received in each state: test_rst_every_state.py)


def test_close_with_unread_data_sends_rst(est: Harness) -> None:
    """Linux / RFC 2525 2.17: close() with unread received data sends RST, not FIN."""
    h = est
    h.send(from_peer(flags="PA", payload=b"unread"), at=20 * MS)
    h.tcb.close(21 * MS)
    h.recv([to_peer(ack=PISS + 7, flags="RA", win=0)], at=21 * MS)
    assert h.tcb.state is State.CLOSED


def test_abort_sends_rst(est: Harness) -> None:
    """RFC 9293 3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>, CLOSED."""
    est.tcb.abort(20 * MS)
    est.recv([to_peer(flags="RA", win=0)], at=20 * MS)
    assert est.tcb.state is State.CLOSED


def test_data_after_close_in_fin_wait_2_gets_rst(fin_wait_2: Harness) -> None:
    """Linux (RFC 2525 2.17): data arriving for an orphaned connection -> RST, CLOSED."""
    h = fin_wait_2
    h.send(from_peer(ack=ISS + 2, flags="PA", payload=b"zzz"), at=35 * MS)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 1, flags="RA", win=0)])
    assert h.tcb.state is State.CLOSED


def test_new_syn_in_time_wait_reopens_when_listening(time_wait: Harness) -> None:
    """RFC 1122 4.2.2.13 / RFC 6191 2 (as Linux): a SYN with a sequence number above the old
    connection's ends TIME_WAIT and starts a new passive open."""
    from core_harness import MSS

    from rawtcp.core.segment import Options

    h = time_wait
    old = h.tcb
    h.send(from_peer(seq=PISS + 100_000, ack=0, flags="S", opts=Options(mss=MSS)), at=1 * SEC)
    h.recv([to_peer(seq=ISS, ack=PISS + 100_001, flags="SA", win=64000, opts=Options(mss=MSS))])
    assert old.state is State.CLOSED
    assert ("TIME_WAIT", "CLOSED") in h.state_events()


def test_old_syn_in_time_wait_is_acked(time_wait: Harness) -> None:
    """RFC 9293 3.10.7.4: an old SYN in TIME_WAIT is just ACKed (no new connection)."""
    h = time_wait
    h.send(from_peer(seq=PISS - 10, ack=0, flags="S"), at=1 * SEC)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert h.tcb.state is State.TIME_WAIT


# ------------------------------------------------------------------ retries run out
def _retries_out(h: Harness, fin, t0: int) -> None:
    """retries2 = 2: FIN at t0, again at t0+RTO and t0+3*RTO; at t0+7*RTO the connection
    gives up (RFC 9293 3.8.3 R2, RFC 6298 5.5) with ETIMEDOUT and sends nothing more."""
    h.recv_nothing(at=t0 + RTO - 1)
    h.recv([fin], at=t0 + RTO)
    h.recv_nothing(at=t0 + 3 * RTO - 1)
    h.recv([fin], at=t0 + 3 * RTO)
    h.recv_nothing(at=t0 + 7 * RTO - 1)
    assert h.tcb.state is not State.CLOSED
    h.recv_nothing(at=t0 + 7 * RTO)
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ETIMEDOUT
    assert h.stack.connections() == []
    h.recv_nothing(at=t0 + 100 * SEC)


def test_closing_fin_retransmission_runs_out_to_etimedout() -> None:
    """RFC 9293 3.8.3 R2 in CLOSING: the unacknowledged FIN is given up -> ETIMEDOUT."""
    h = Harness(plain_config(retries2=2))
    h.passive_open()
    h.tcb.close(20 * MS)
    h.recv([to_peer(flags="FA")], at=20 * MS)
    h.send(from_peer(flags="FA"), at=25 * MS)           # crossing FIN, ours not acked
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert h.tcb.state is State.CLOSING
    _retries_out(h, to_peer(flags="FA", ack=PISS + 2, win=RCVBUF - 1), 20 * MS)


def test_last_ack_fin_retransmission_runs_out_to_etimedout() -> None:
    """RFC 9293 3.8.3 R2 in LAST_ACK: the unacknowledged FIN is given up -> ETIMEDOUT."""
    h = Harness(plain_config(retries2=2))
    h.passive_open()
    h.send(from_peer(flags="FA"), at=20 * MS)
    h.recv([to_peer(ack=PISS + 2, win=RCVBUF - 1)])
    h.tcb.close(30 * MS)
    fin = to_peer(flags="FA", ack=PISS + 2, win=RCVBUF - 1)
    h.recv([fin], at=30 * MS)
    assert h.tcb.state is State.LAST_ACK
    _retries_out(h, fin, 30 * MS)


def test_fin_wait_1_exact_retry_count() -> None:
    """RFC 9293 3.8.3 R2 with the default retries2 = 15 (Linux): exactly 15
    retransmissions of the FIN, with the RTO doubling up to rto_max, then ETIMEDOUT."""
    h = Harness(plain_config())
    h.passive_open()
    h.tcb.close(20 * MS)
    h.take(at=20 * MS)
    times = []
    t = 20 * MS
    while h.tcb.state is State.FIN_WAIT_1 and t < 3600 * SEC:
        t = h.stack.poll_at()
        got = h.take(at=t)
        if got:
            assert got == [to_peer(flags="FA")]
            times.append(t)
    assert h.tcb.error == errno.ETIMEDOUT and len(times) == 15
    gaps = [b - a for a, b in zip([20 * MS] + times, times, strict=False)]
    assert gaps[:4] == [RTO, 2 * RTO, 4 * RTO, 8 * RTO]
    assert max(gaps) == 120 * SEC    # rto_max (RFC 6298 2.5 allows a maximum)


# ------------------------------------------------------------------ fin_timeout
def test_shutdown_then_close_starts_fin_timeout_at_close() -> None:
    """RFC 9293 3.3.2 / 3.6.1 (half-closed: FIN-WAIT-2 waits for the peer's FIN); Linux
    tcp_fin_timeout applies once the socket is orphaned: after shutdown(SHUT_WR) the
    FIN_WAIT_2 connection waits as long as needed; a later close() starts the timer."""
    h = Harness(plain_config(fin_timeout=10 * SEC))
    h.passive_open()
    h.tcb.shutdown(1, 20 * MS)
    h.recv([to_peer(flags="FA")], at=20 * MS)
    h.send(from_peer(ack=ISS + 2), at=30 * MS)
    h.recv_nothing(at=50 * SEC)
    assert h.tcb.state is State.FIN_WAIT_2
    h.tcb.close(50 * SEC)
    h.recv_nothing(at=60 * SEC - 1)
    assert h.tcb.state is State.FIN_WAIT_2
    h.recv_nothing(at=60 * SEC)
    assert h.tcb.state is State.CLOSED
    ev = [e for e in h.events if e["ev"] == "timer" and e["name"] == "fin_wait_2"]
    assert [(e["action"], e["at"]) for e in ev] == [("set", 60 * SEC), ("fired", 60 * SEC)]


def test_orphan_fin_wait_2_gets_peer_fin_before_timeout() -> None:
    """RFC 9293 3.10.7.4 eighth (FIN-WAIT-2): the peer's FIN before fin_timeout -> TIME_WAIT
    (the fin_wait_2 timer is cancelled, TIME_WAIT lasts 2 MSL)."""
    h = Harness(plain_config(fin_timeout=10 * SEC))
    h.passive_open()
    h.tcb.close(20 * MS)
    h.send(from_peer(ack=ISS + 2), at=30 * MS)
    h.take()
    h.send(from_peer(flags="FA", ack=ISS + 2), at=5 * SEC)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=5 * SEC + TW - 1)
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=5 * SEC + TW)
    assert h.tcb.state is State.CLOSED


def test_fin_is_not_sent_into_a_zero_window(est: Harness) -> None:
    """RFC 9293 3.8.6.1 / 3.10.4: the FIN occupies a sequence number, so with a zero send
    window close() queues it (FIN_WAIT_1 at once) and the persist timer probes (SND.UNA-1,
    no FIN) with backoff; the FIN goes out when the window opens."""
    h = est
    h.send(from_peer(win=0), at=20 * MS)
    h.tcb.close(30 * MS)
    assert h.tcb.state is State.FIN_WAIT_1
    h.recv_nothing(at=30 * MS + RTO - 1)
    probe = to_peer(seq=ISS)
    h.recv([probe], at=30 * MS + RTO)
    h.recv_nothing(at=30 * MS + 3 * RTO - 1)
    h.recv([probe], at=30 * MS + 3 * RTO)
    h.send(from_peer(win=1000), at=1 * SEC)
    h.recv([to_peer(flags="FA")])
    h.send(from_peer(ack=ISS + 2), at=1 * SEC + 10 * MS)
    assert h.tcb.state is State.FIN_WAIT_2


def test_fin_arriving_before_the_data_it_follows(est: Harness) -> None:
    """RFC 9293 3.10.7.4 eighth: a FIN is processed only when every byte before it has
    arrived. An early data+FIN segment is held (immediate duplicate ACK, RFC 5681 4.2);
    when the hole is filled the FIN is acked with the data and CLOSE_WAIT begins."""
    h = est
    h.send(from_peer(seq=PISS + 4, flags="FPA", payload=b"def"), at=30 * MS)
    h.recv([to_peer()])
    assert h.tcb.state is State.ESTABLISHED and not h.tcb.eof
    h.send(from_peer(flags="PA", payload=b"abc"), at=31 * MS)
    h.recv([to_peer(ack=PISS + 8, win=RCVBUF - 7)])
    assert h.tcb.state is State.CLOSE_WAIT
    assert h.tcb.recv(100, 32 * MS) == b"abcdef" and h.tcb.eof


def test_time_wait_acks_a_new_fin_at_rcv_nxt_and_restarts_2msl(time_wait: Harness) -> None:
    """RFC 9293 3.10.7.4 eighth: a FIN is acknowledged in every state; in TIME-WAIT the 2 MSL
    timeout restarts. Here the FIN sits at RCV.NXT (after the peer's first FIN), inside the
    window, so it passes the acceptability test (Linux ACKs it too: packetdrill's FreeBSD
    rcv-fin-ack-time-wait scripts)."""
    h = time_wait
    t1 = 40 * MS + 10 * SEC
    h.send(from_peer(seq=PISS + 2, flags="FA", ack=ISS + 2), at=t1)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    h.recv_nothing(at=t1 + TW - 1)
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=t1 + TW)
    assert h.tcb.state is State.CLOSED


def test_time_wait_acks_a_stray_ack_inside_the_window(time_wait: Harness) -> None:
    """TIME-WAIT (RFC 9293 3.10.7.4 fifth: only a retransmitted FIN is expected): an
    acceptable bare ACK that is not at RCV.NXT gets an ACK back and restarts 2 MSL, as Linux
    does (packetdrill's FreeBSD rcv-ack-time-wait 'middle' scripts); one at RCV.NXT is
    simply taken."""
    h = time_wait
    h.send(from_peer(seq=PISS + 2, ack=ISS + 2), at=1 * SEC)
    h.recv_nothing()
    t1 = 10 * SEC
    h.send(from_peer(seq=PISS + 3, ack=ISS + 2), at=t1)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    h.recv_nothing(at=t1 + TW - 1)
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=t1 + TW)
    assert h.tcb.state is State.CLOSED


def test_shut_rd_still_queues_what_arrives(est: Harness) -> None:
    """shutdown(SHUT_RD) (RFC 9293 3.10.4 leaves its receive side to the implementation):
    as Linux, a read returns EOF while nothing is queued, data that arrives afterwards is
    still acknowledged and queued, and a read returns it (packetdrill's shutdown-rd-wr-close
    checks this)."""
    h = est
    h.tcb.shutdown(0, T)
    assert h.tcb.recv(100, T) == b"" and h.tcb.eof
    h.send(from_peer(flags="PA", payload=b"late data"), at=T + 1 * MS)
    h.recv([to_peer(ack=PISS + 1 + 9, win=RCVBUF - 9)], at=T + 1 * MS + 40 * MS)
    assert not h.tcb.eof
    assert h.tcb.recv(100, T + 50 * MS) == b"late data"
