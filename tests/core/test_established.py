"""ESTABLISHED: data transfer, delayed ACK (RFC 1122 4.2.3.2), Nagle (RFC 896 / RFC 1122
4.2.3.4), flow control and zero-window probing (RFC 9293 3.8.6), retransmission
(RFC 6298), fast retransmit / recovery (RFC 5681 3.2, RFC 6582), keep-alive (RFC 1122
4.2.3.6)."""

from __future__ import annotations

import errno

from core_harness import ISS, MSS, PISS, RCVBUF, RTO, RTT, Harness, from_peer, plain_config, to_peer

from rawtcp.core.config import MS, SEC
from rawtcp.core.tcb import State

T = 20 * MS


# ------------------------------------------------------------------ receiving, delayed ACK
def test_delayed_ack_fires_after_timeout(est: Harness) -> None:
    """RFC 1122 4.2.3.2: an ACK may be delayed (here 40 ms, < 500 ms)."""
    h = est
    h.send(from_peer(flags="PA", payload=b"x" * 100), at=T)
    h.recv_nothing(at=T + 40 * MS - 1)
    h.recv([to_peer(ack=PISS + 101, win=RCVBUF - 100)], at=T + 40 * MS)
    assert h.tcb.recv(1000, T + 41 * MS) == b"x" * 100


def test_delayed_ack_every_second_full_segment(est: Harness) -> None:
    """RFC 1122 4.2.3.2 / RFC 5681 4.2: ACK at least every second full-sized segment."""
    h = est
    h.send(from_peer(flags="A", payload=b"a" * MSS), at=T)
    h.recv_nothing()
    h.send(from_peer(seq=PISS + 1 + MSS, flags="A", payload=b"b" * MSS), at=T + 1)
    h.recv([to_peer(ack=PISS + 1 + 2 * MSS, win=RCVBUF - 2 * MSS)])


def test_out_of_order_data_is_acked_at_once(est: Harness) -> None:
    """RFC 5681 4.2 / RFC 1122 4.2.2.21: out-of-order data -> immediate duplicate ACK;
    filling the hole -> immediate ACK of everything."""
    h = est
    h.send(from_peer(seq=PISS + 101, flags="PA", payload=b"y" * 100), at=T)
    h.recv([to_peer(ack=PISS + 1)])
    h.send(from_peer(seq=PISS + 1, flags="A", payload=b"x" * 100), at=T + 1)
    h.recv([to_peer(ack=PISS + 201, win=RCVBUF - 200)])
    assert h.tcb.recv(1000, T + 2) == b"x" * 100 + b"y" * 100


def test_delayed_ack_disabled() -> None:
    """RFC 1122 4.2.3.2 ablation: config.delayed_ack = 0 ACKs every data segment at once."""
    h = Harness(plain_config(delayed_ack=0))
    h.passive_open()
    h.send(from_peer(flags="PA", payload=b"x" * 10), at=T)
    h.recv([to_peer(ack=PISS + 11, win=RCVBUF - 10)])


def test_data_is_acked_with_piggyback(est: Harness) -> None:
    """RFC 9293 3.10.7.4: the ACK rides on outgoing data, no separate pure ACK."""
    h = est
    h.send(from_peer(flags="PA", payload=b"ping"), at=T)
    h.tcb.send(b"pong", T + 1 * MS)
    h.recv([to_peer(ack=PISS + 5, flags="PA", payload=b"pong", win=RCVBUF - 4)], at=T + 100 * MS)


def test_window_update_after_reading() -> None:
    """RFC 1122 4.2.3.3: once the app frees enough buffer the window update is sent. As
    Linux (tcp_cleanup_rbuf), "enough" means the window left was at most half the buffer
    and the new one at least doubles it: reading a little from a mostly empty buffer sends
    nothing (the peer is not held back), reading after more than half was filled does."""
    h = Harness(plain_config(delayed_ack=0))
    h.passive_open()
    for i in range(4):
        h.send(from_peer(seq=PISS + 1 + i * MSS, payload=bytes(MSS)), at=T)
    assert len(h.take()) == 4
    assert len(h.tcb.recv(100_000, T + 1)) == 4 * MSS
    h.recv_nothing(at=T + 1)                      # 58 kB of 64 kB still open: no update
    n = RCVBUF // MSS - 4                          # fill the buffer to its last segment
    for i in range(4, 4 + n):
        h.send(from_peer(seq=PISS + 1 + i * MSS, payload=bytes(MSS)), at=T + 2)
    h.take(at=T + 2)
    assert len(h.tcb.recv(100_000, T + 3)) == n * MSS
    h.recv([to_peer(ack=PISS + 1 + (4 + n) * MSS, win=RCVBUF)], at=T + 3)


def test_window_update_of_a_full_buffer_waits_for_a_sixteenth_of_it() -> None:
    """RFC 1122 4.2.3.3 (receiver SWS avoidance) as Linux applies it (__tcp_select_window):
    while the buffer is more than half full, a window below a 16th of it is not worth
    offering, so reads that free less send no update; the read that frees a 16th does."""
    h = Harness(plain_config(delayed_ack=0))
    h.passive_open()
    n, rest = divmod(RCVBUF, MSS)
    for i in range(n):
        h.send(from_peer(seq=PISS + 1 + i * MSS, payload=bytes(MSS)), at=T)
    h.send(from_peer(seq=PISS + 1 + n * MSS, payload=bytes(rest)), at=T)
    acks = h.take()
    assert acks[-1].window == 0                    # full: the window is closed
    assert len(h.tcb.recv(2000, T + 1)) == 2000    # 2,000 free: more than an MSS, less
    h.recv_nothing(at=T + 1)                       # than RCVBUF / 16 (4,000): no update
    assert len(h.tcb.recv(2000, T + 2)) == 2000    # 4,000 free: a 16th
    h.recv([to_peer(ack=PISS + 1 + RCVBUF, win=4000)], at=T + 2)


# ------------------------------------------------------------------ sending, Nagle
def test_large_write_is_split_into_mss_segments(est: Harness) -> None:
    """RFC 9293 3.7.1: segments carry at most the peer's MSS; PSH on the last one."""
    h = est
    data = bytes(range(256)) * 12  # 3072
    h.tcb.send(data, T)
    h.recv([to_peer(payload=data[:MSS]), to_peer(seq=ISS + 1 + MSS, payload=data[MSS:2 * MSS]),
            to_peer(seq=ISS + 1 + 2 * MSS, flags="PA", payload=data[2 * MSS:])], at=T)


def test_nagle_holds_second_small_segment_until_ack(est: Harness) -> None:
    """RFC 896 / RFC 1122 4.2.3.4: one small segment in flight; the next waits for its ACK."""
    h = est
    h.tcb.send(b"a", T)
    h.recv([to_peer(flags="PA", payload=b"a")], at=T)
    h.tcb.send(b"b", T + 1)
    h.tcb.send(b"c", T + 2)
    h.recv_nothing(at=T + 5 * MS)
    h.send(from_peer(ack=ISS + 2), at=T + 10 * MS)
    h.recv([to_peer(seq=ISS + 2, flags="PA", payload=b"bc")])


def test_nodelay_sends_small_segments_at_once() -> None:
    """TCP_NODELAY disables Nagle (RFC 1122 4.2.3.4 "MUST be able to disable")."""
    h = Harness(plain_config(nodelay=True))
    h.passive_open()
    h.tcb.send(b"a", T)
    h.tcb.send(b"b", T + 1)
    h.recv([to_peer(flags="PA", payload=b"a"), to_peer(seq=ISS + 2, flags="PA", payload=b"b")],
           at=T + 1)


def test_send_respects_peer_window(est: Harness) -> None:
    """RFC 9293 3.8.6: never send beyond SND.UNA + SND.WND."""
    h = est
    h.send(from_peer(win=2000), at=T)
    h.tcb.send(bytes(5000), T + 1)
    # 1460 fit; the 540 left would be a silly window (RFC 1122 4.2.3.4): held back.
    h.recv([to_peer(payload=bytes(MSS))], at=T + 1)
    h.send(from_peer(ack=ISS + 1 + MSS, win=2000), at=T + 10 * MS)
    h.recv([to_peer(seq=ISS + 1 + MSS, payload=bytes(MSS))])
    assert h.tcb.info()["snd_nxt"] == ISS + 1 + 2 * MSS <= ISS + 1 + MSS + 2000


def test_sender_sws_avoidance_waits_for_useful_window(est: Harness) -> None:
    """RFC 1122 4.2.3.4: with data waiting, do not send a tiny segment into a window that
    is much smaller than the largest window seen; send once the window takes a full
    segment."""
    h = est
    h.tcb.send(bytes(4000), T)
    assert len(h.take(at=T)) == 3
    # The peer acks everything but leaves only 100 bytes of window.
    h.send(from_peer(ack=ISS + 4001, win=100), at=T + 10 * MS)
    h.tcb.send(bytes(4000), T + 11 * MS)
    h.recv_nothing(at=T + 11 * MS)
    # The window opens to 2000: one full segment goes; the 540 left would be silly again.
    h.send(from_peer(ack=ISS + 4001, win=2000), at=T + 12 * MS)
    h.recv([to_peer(seq=ISS + 4001, payload=bytes(MSS))])


# ------------------------------------------------------------------ zero window
def test_zero_window_probes_with_backoff_and_no_data(est: Harness) -> None:
    """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: with a zero window, send no data, only probes,
    with exponential backoff; resume when the window opens."""
    h = est
    h.send(from_peer(win=0), at=T)
    h.tcb.send(b"hello", T + 1)
    h.recv_nothing(at=T + 1 + RTO - 1)
    probe = to_peer(seq=ISS)  # SND.UNA - 1, no data: elicits an ACK with the window
    h.recv([probe], at=T + 1 + RTO)
    h.send(from_peer(win=0), at=T + 1 + RTO + 10 * MS)        # still zero
    h.recv_nothing(at=T + 1 + 3 * RTO - 1)
    h.recv([probe], at=T + 1 + 3 * RTO)
    h.recv_nothing(at=T + 1 + 7 * RTO - 1)
    h.recv([probe], at=T + 1 + 7 * RTO)
    h.send(from_peer(win=1000), at=T + 2 * SEC)               # window opens
    h.recv([to_peer(flags="PA", payload=b"hello")])
    assert h.tcb.state is State.ESTABLISHED


def test_never_sends_new_data_into_zero_window_even_at_rto(est: Harness) -> None:
    """RFC 9293 3.8.6.1: data outstanding when the peer closes its window is not resent
    into the zero window at RTO; probes are sent instead."""
    h = est
    h.tcb.send(b"x" * 100, T)
    h.recv([to_peer(flags="PA", payload=b"x" * 100)], at=T)
    h.send(from_peer(ack=ISS + 1, win=0), at=T + 10 * MS)     # acks nothing, closes the window
    h.tcb.send(b"y" * 100, T + 11 * MS)
    times = []
    while h.now < T + 5 * SEC:
        t = h.stack.poll_at()
        for seg in h.take(at=t):
            assert seg == to_peer(seq=ISS), f"not a zero-window probe: {seg}"
            times.append(t)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) >= 3 and all(b == 2 * a for a, b in zip(gaps, gaps[1:], strict=False))
    h.send(from_peer(ack=ISS + 1, win=5000), at=T + 7 * SEC)     # window opens: all data goes
    h.recv([to_peer(flags="PA", payload=b"x" * 100 + b"y" * 100)])


# ------------------------------------------------------------------ retransmission
def test_data_retransmitted_at_rto_then_twice_rto(est: Harness) -> None:
    """RFC 6298 5.1, 5.4, 5.5: retransmit at RTO, then 2*RTO; nothing before."""
    h = est
    h.tcb.send(b"d" * 100, T)
    seg = to_peer(flags="PA", payload=b"d" * 100)
    h.recv([seg], at=T)
    h.recv_nothing(at=T + RTO - 1)
    h.recv([seg], at=T + RTO)
    h.recv_nothing(at=T + 3 * RTO - 1)
    h.recv([seg], at=T + 3 * RTO)
    assert h.tcb.info()["rto"] == 4 * RTO
    h.send(from_peer(ack=ISS + 101), at=T + 3 * RTO + 10 * MS)
    assert h.tcb.info()["rto"] == 4 * RTO  # Karn: no sample from a retransmission
    assert h.tcb.info()["retransmits"] == 0
    h.recv_nothing(at=T + 10 * SEC)


def test_data_retransmission_runs_out_to_etimedout() -> None:
    """RFC 9293 3.8.3 R2: after retries2 timeouts the connection fails with ETIMEDOUT."""
    h = Harness(plain_config(retries2=3))
    h.passive_open()
    h.tcb.send(b"z", T)
    h.recv([to_peer(flags="PA", payload=b"z")], at=T)
    assert len(h.take(at=T + 7 * RTO)) == 3
    h.recv_nothing(at=T + 15 * RTO)
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ETIMEDOUT


def test_rtt_sample_updates_rto(est: Harness) -> None:
    """RFC 6298 2.3: SRTT/RTTVAR follow samples; RTO floor rto_min."""
    h = est
    info = h.tcb.info()
    assert info["srtt"] == 10 * MS and info["rttvar"] == 5 * MS
    h.tcb.send(b"q", T)
    h.send(from_peer(ack=ISS + 2), at=T + 150 * MS)
    info = h.tcb.info()
    assert info["srtt"] == (7 * 10 * MS + 150 * MS) // 8
    assert info["rttvar"] == (3 * 5 * MS + 140 * MS) // 4
    # RFC 6298 2.3/2.4 with Linux's rto_min floor of 200 ms.
    assert info["rto"] == max(200 * MS, info["srtt"] + 4 * info["rttvar"])


def test_fast_retransmit_on_three_dup_acks() -> None:
    """RFC 5681 3.2: the third duplicate ACK retransmits the missing segment at once
    (NewReno, RFC 6582 3.2), before any RTO; the full ACK ends recovery."""
    h = Harness(plain_config(nodelay=True))
    h.passive_open()
    data = bytes(5 * MSS)
    h.tcb.send(data, T)
    assert len(h.take(at=T)) == 5
    h.send(from_peer(ack=ISS + 1 + MSS), at=T + 10 * MS)       # segment 2 lost
    h.send(from_peer(ack=ISS + 1 + MSS), at=T + 11 * MS)
    h.send(from_peer(ack=ISS + 1 + MSS), at=T + 12 * MS)
    h.recv_nothing()
    h.send(from_peer(ack=ISS + 1 + MSS), at=T + 13 * MS)       # third duplicate
    h.recv([to_peer(seq=ISS + 1 + MSS, payload=bytes(MSS))])
    assert h.tcb.info()["in_recovery"]
    assert h.stack.counters["fast_retransmits"] == 1
    h.send(from_peer(ack=ISS + 1 + 5 * MSS), at=T + 25 * MS)
    assert not h.tcb.info()["in_recovery"]
    assert h.tcb.info()["cwnd"] == h.tcb.info()["ssthresh"] or h.tcb.info()["cwnd"] <= 3 * MSS


def test_newreno_partial_ack_retransmits_next_hole() -> None:
    """RFC 6582 3.2 step 5: a partial ACK retransmits the next unacknowledged segment."""
    h = Harness(plain_config(nodelay=True))
    h.passive_open()
    h.tcb.send(bytes(6 * MSS), T)
    assert len(h.take(at=T)) == 6
    for i in range(4):
        h.send(from_peer(ack=ISS + 1 + MSS), at=T + 10 * MS + i)  # 2 and 4 lost
    h.recv([to_peer(seq=ISS + 1 + MSS, payload=bytes(MSS))])
    h.send(from_peer(ack=ISS + 1 + 3 * MSS), at=T + 20 * MS)     # partial ACK
    got = h.take()
    assert got and got[0] == to_peer(seq=ISS + 1 + 3 * MSS, payload=bytes(MSS))


# ------------------------------------------------------------------ keep-alive
def test_keepalive_probes_then_etimedout() -> None:
    """RFC 1122 4.2.3.6: keep-alive after idle time, probes every interval, and the
    connection dies (RST, ETIMEDOUT) when keepalive_probes go unanswered (Linux)."""
    h = Harness(plain_config(keepalive=True, keepalive_time=10 * SEC,
                             keepalive_intvl=1 * SEC, keepalive_probes=2))
    h.passive_open()  # ESTABLISHED at 10 ms
    t0 = 10 * MS
    probe = to_peer(seq=ISS)
    h.recv_nothing(at=t0 + 10 * SEC - 1)
    h.recv([probe], at=t0 + 10 * SEC)
    h.recv([probe], at=t0 + 11 * SEC)
    h.recv([to_peer(flags="RA", win=0)], at=t0 + 12 * SEC)
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ETIMEDOUT


def test_keepalive_answered_keeps_connection() -> None:
    """RFC 1122 4.2.3.6: an answered probe restarts the idle timer."""
    h = Harness(plain_config(keepalive=True, keepalive_time=10 * SEC,
                             keepalive_intvl=1 * SEC, keepalive_probes=2))
    h.passive_open()
    t0 = 10 * MS
    h.recv([to_peer(seq=ISS)], at=t0 + 10 * SEC)
    h.send(from_peer(), at=t0 + 10 * SEC + 10 * MS)
    h.recv_nothing(at=t0 + 20 * SEC)
    h.recv([to_peer(seq=ISS)], at=t0 + 20 * SEC + 10 * MS)
    assert h.tcb.state is State.ESTABLISHED


def test_keepalive_off_by_default(est: Harness) -> None:
    """Keep-alive is off unless asked for (RFC 1122 4.2.3.6 "MUST default to off")."""
    est.recv_nothing(at=3 * 3600 * SEC)
    assert est.tcb.state is State.ESTABLISHED


def test_receiver_sws_keeps_window_closed_until_useful() -> None:
    """RFC 1122 4.2.3.3: a zero window is not reopened by a few bytes; it opens once the
    application frees min(MSS, rcvbuf/2), and then a window update is sent at once."""
    h = Harness(plain_config(delayed_ack=0, rcvbuf=4 * MSS))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S"), at=0)
    h.take()
    h.send(from_peer(), at=10 * MS)
    h.tcb = h.listener.accept()
    for i in range(4):
        h.send(from_peer(seq=PISS + 1 + i * 536, payload=bytes(536)), at=T)
    # peer MSS 536 (no option): 4 * 536 of 4 * 1460 bytes buffer used
    h.take()
    rest = 4 * MSS - 4 * 536
    h.send(from_peer(seq=PISS + 1 + 4 * 536, payload=bytes(rest)), at=T + 1)
    h.recv([to_peer(ack=PISS + 1 + 4 * MSS, win=0)])
    h.tcb.recv(100, T + 2)                    # 100 bytes free: not worth a window
    h.recv_nothing()
    h.send(from_peer(seq=PISS + 4 * MSS), at=T + 3)  # zero-window probe from the peer
    h.recv([to_peer(ack=PISS + 1 + 4 * MSS, win=0)])
    h.tcb.recv(1000, T + 4)                   # 1100 free >= min(MSS=536, rcvbuf/2)
    h.recv([to_peer(ack=PISS + 1 + 4 * MSS, win=1100)])


def test_setting_nodelay_pushes_held_small_segment(est: Harness) -> None:
    """RFC 1122 4.2.3.4 / RFC 9293 3.7.4 (Nagle "MUST" be possible to disable): TCP_NODELAY
    set while Nagle holds data sends the data at once (as Linux)."""
    h = est
    h.tcb.send(b"a", T)
    h.tcb.send(b"b", T + 1)
    h.recv([to_peer(flags="PA", payload=b"a")], at=T + 1)
    h.tcb.options.nodelay = True
    h.tcb.options_changed(T + 2)
    h.recv([to_peer(seq=ISS + 2, flags="PA", payload=b"b")], at=T + 2)


def test_delayed_ack_never_waits_more_than_200_ms() -> None:
    """RFC 1122 4.2.3.2 (delay MUST be < 0.5 s; rawtcp's bound is 200 ms): a configured
    delayed_ack of 400 ms (its range allows up to 500 ms) is capped at 200 ms."""
    h = Harness(plain_config(delayed_ack=400 * MS))
    h.passive_open()
    h.send(from_peer(flags="PA", payload=b"x" * 10), at=T)
    h.recv_nothing(at=T + 200 * MS - 1)
    h.recv([to_peer(ack=PISS + 11, win=RCVBUF - 10)], at=T + 200 * MS)


def test_fin_after_data_waits_for_the_delayed_ack(est: Harness) -> None:
    """RFC 9293 3.10.7.4 eighth (ACK the FIN) with RFC 1122 4.2.3.2 (an ACK may wait), as
    Linux's tcp_fin: after data the FIN puts the connection in pingpong mode and its ACK
    goes with the delayed ACK already pending for the data (one ACK for both)."""
    h = est
    h.send(from_peer(flags="PA", payload=b"abc"), at=T)
    h.recv_nothing(at=T + 5 * MS)
    h.send(from_peer(seq=PISS + 4, flags="FA"), at=T + 5 * MS)
    h.recv_nothing(at=T + 40 * MS - 1)
    h.recv([to_peer(ack=PISS + 5, win=RCVBUF - 4)], at=T + 40 * MS)  # the data's delack
    h.recv_nothing(at=T + 1 * SEC)
    assert h.tcb.state is State.CLOSE_WAIT


def test_fin_after_data_is_acked_by_our_fin_when_the_application_closes(est: Harness) -> None:
    """The point of delaying it (Linux): the application reads EOF and closes within the
    delayed-ACK time, so its FIN carries the ACK of the peer's: one segment, not two."""
    h = est
    h.send(from_peer(flags="PA", payload=b"abc"), at=T)
    h.send(from_peer(seq=PISS + 4, flags="FA"), at=T + 5 * MS)
    assert h.tcb.recv(10, T + 6 * MS) == b"abc"
    h.tcb.close(T + 6 * MS)
    h.recv([to_peer(flags="FA", ack=PISS + 5, win=RCVBUF - 4)], at=T + 6 * MS)
    h.recv_nothing(at=T + 100 * MS)
    assert h.tcb.state is State.LAST_ACK


def test_fin_without_data_is_acked_at_once(est: Harness) -> None:
    """No data ever arrived: the ACK of the FIN goes at once (Linux: its delayed-ACK
    timeout is still 0; the conformance script close-remote-fin-then-close wants it)."""
    h = est
    h.send(from_peer(flags="FA"), at=T)
    h.recv([to_peer(ack=PISS + 2, win=RCVBUF - 1)], at=T)   # the right edge stays
    assert h.tcb.state is State.CLOSE_WAIT


def test_no_fast_retransmit_for_dup_acks_below_recover_after_timeout() -> None:
    """RFC 6582 3.2 step 2 / 4.1: after a retransmission timeout, duplicate ACKs that do
    not cover "recover" (the highest sequence sent before the timeout) do not start fast
    retransmit again."""
    h = Harness(plain_config(nodelay=True))
    h.passive_open()
    h.tcb.send(bytes(5 * MSS), T)
    assert len(h.take(at=T)) == 5
    h.recv([to_peer(payload=bytes(MSS))], at=T + RTO)         # timeout: first segment again
    for i in range(3):
        h.send(from_peer(ack=ISS + 1), at=T + RTO + 10 * MS + i)  # duplicates of snd_una
    h.recv_nothing()
    assert h.stack.counters["fast_retransmits"] == 0
    assert not h.tcb.info()["in_recovery"]


def test_newreno_full_recovery_sequence() -> None:
    """RFC 6582 3.2: fast retransmit at the 3rd duplicate ACK (cwnd = ssthresh + 3 SMSS),
    each further duplicate inflates cwnd by one SMSS (step 4), a partial ACK retransmits
    the next hole and deflates (step 5), the full ACK ends recovery with
    cwnd = min(ssthresh, FlightSize + SMSS) (step 3)."""
    h = Harness(plain_config(nodelay=True, congestion="reno", rack=False))
    h.passive_open()
    h.tcb.send(bytes(8 * MSS), T)
    assert len(h.take(at=T)) == 8
    s = ISS + 1
    for i in range(4):                       # segments 1 and 5 lost: ACK + 3 duplicates
        h.send(from_peer(ack=s + MSS), at=T + 10 * MS + i)
    h.recv([to_peer(seq=s + MSS, payload=bytes(MSS))])
    info = h.tcb.info()
    ssthresh = 7 * MSS // 2                     # RFC 5681 (4): FlightSize / 2
    assert info["ssthresh"] == ssthresh and info["cwnd"] == ssthresh + 3 * MSS
    h.send(from_peer(ack=s + MSS), at=T + 14 * MS)
    assert h.tcb.info()["cwnd"] == ssthresh + 4 * MSS
    h.recv_nothing()                            # nothing new to send, no second retransmit
    h.send(from_peer(ack=s + 5 * MSS), at=T + 20 * MS)  # partial: 5 is the next hole
    got = h.take()
    assert got[0] == to_peer(seq=s + 5 * MSS, payload=bytes(MSS))
    assert h.tcb.info()["in_recovery"]
    assert h.tcb.info()["cwnd"] == ssthresh + 4 * MSS - 4 * MSS + MSS
    h.send(from_peer(ack=s + 8 * MSS), at=T + 30 * MS)  # full ACK, nothing left in flight
    info = h.tcb.info()
    assert not info["in_recovery"] and info["cwnd"] == min(ssthresh, 0 + MSS)


def test_karn_no_rtt_sample_from_a_retransmitted_segment(est: Harness) -> None:
    """RFC 6298 3 and 5 (Karn's algorithm): the ACK of a retransmitted segment gives no RTT
    sample (SRTT/RTTVAR unchanged) and the backed-off RTO is kept for the next segment;
    the first valid sample from a fresh segment collapses it again (RFC 6298 2.3)."""
    h = est
    before = h.tcb.info()
    h.tcb.send(b"k", T)
    h.take(at=T)
    h.recv([to_peer(flags="PA", payload=b"k")], at=T + RTO)       # retransmitted
    h.send(from_peer(ack=ISS + 2), at=T + RTO + 5 * MS)              # ambiguous ACK
    info = h.tcb.info()
    assert (info["srtt"], info["rttvar"]) == (before["srtt"], before["rttvar"])
    assert info["rto"] == 2 * RTO
    t1 = T + 1 * SEC
    h.tcb.send(b"l", t1)
    h.recv([to_peer(seq=ISS + 2, flags="PA", payload=b"l")], at=t1)
    h.recv_nothing(at=t1 + 2 * RTO - 1)                      # still the backed-off RTO
    h.recv([to_peer(seq=ISS + 2, flags="PA", payload=b"l")], at=t1 + 2 * RTO)
    h.send(from_peer(ack=ISS + 3), at=t1 + 2 * RTO + 5 * MS)         # ambiguous again
    t2 = T + 3 * SEC
    h.tcb.send(b"m", t2)
    h.take(at=t2)
    h.send(from_peer(ack=ISS + 4), at=t2 + 50 * MS)                  # fresh sample: 50 ms
    info = h.tcb.info()
    assert info["srtt"] == (7 * before["srtt"] + 50 * MS) // 8
    assert info["rto"] == RTO


def test_configurable_rto_bounds() -> None:
    """RFC 6298 2.4 / 2.5: RTO never below rto_min nor above rto_max, however it backs
    off (here rto_min 1 s, rto_max 3 s: 1 s, 2 s, 3 s, 3 s)."""
    h = Harness(plain_config(rto_min=1 * SEC, rto_max=3 * SEC, retries2=4))
    h.passive_open()
    h.tcb.send(b"z", T)
    h.take(at=T)
    times = []
    while h.tcb.state is State.ESTABLISHED:
        t = h.stack.poll_at()
        if h.take(at=t):
            times.append(t - T)
    assert times == [1 * SEC, 3 * SEC, 6 * SEC, 9 * SEC]
    assert h.tcb.error == errno.ETIMEDOUT


def test_overlapping_retransmission_delivers_new_bytes_once() -> None:
    """RFC 9293 3.10.7.4 (seventh, "trim to the window"): a segment that starts before
    RCV.NXT is trimmed; only the new bytes are delivered, and once."""
    h = Harness(plain_config(delayed_ack=0))
    h.passive_open()
    h.send(from_peer(flags="PA", payload=b"abc"), at=T)
    h.recv([to_peer(ack=PISS + 4, win=RCVBUF - 3)])
    h.send(from_peer(flags="PA", payload=b"abcdef"), at=T + 1)
    h.recv([to_peer(ack=PISS + 7, win=RCVBUF - 6)])
    h.send(from_peer(flags="PA", payload=b"abcdef"), at=T + 2)     # pure duplicate: ACK at once
    h.recv([to_peer(ack=PISS + 7, win=RCVBUF - 6)])
    assert h.tcb.recv(100, T + 3) == b"abcdef"


def test_text_beyond_the_window_is_trimmed() -> None:
    """RFC 9293 3.10.7.4 (first/seventh): only the part of a segment inside the receive
    window is accepted; the rest (and a FIN after it) is dropped and must be resent."""
    h = Harness(plain_config(delayed_ack=0, rcvbuf=1000))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S"), at=0)
    h.take()
    h.send(from_peer(), at=RTT)
    h.tcb = h.listener.accept()
    h.send(from_peer(flags="FPA", payload=bytes(range(250)) * 6), at=T)
    h.recv([to_peer(ack=PISS + 1001, win=0)])
    assert h.tcb.readable == 1000 and h.tcb.state is State.ESTABLISHED
    assert h.tcb.recv(2000, T + 1) == (bytes(range(250)) * 4)


def test_sender_sws_override_timeout_sends_what_the_window_allows(est: Harness) -> None:
    """RFC 1122 4.2.3.4 (sender SWS avoidance, "override timeout"): data held back by a
    small window goes out when the timer (here the persist timer, one RTO) expires, but
    only as much as the window allows."""
    h = est
    h.tcb.send(bytes(4000), T)
    assert len(h.take(at=T)) == 3
    h.send(from_peer(ack=ISS + 4001, win=100), at=T + 10 * MS)
    h.tcb.send(bytes(4000), T + 11 * MS)
    h.recv_nothing(at=T + 11 * MS + RTO - 1)
    h.recv([to_peer(seq=ISS + 4001, payload=bytes(100))], at=T + 11 * MS + RTO)


def test_out_of_order_memory_is_bounded_against_a_hostile_peer(est: Harness) -> None:
    """A peer that sends 1-byte segments into every other byte of the window (each piece
    costs more than its byte) cannot make the connection hold more than its receive buffer
    (+1/8) of out-of-order data: the highest data is pruned (as Linux's
    tcp_prune_ofo_queue; RFC 2018 8 lets a receiver renege on SACKed data), the lowest is
    kept, and filling the first hole still delivers in order."""
    h = est
    n = RCVBUF // 2 - 1
    for i in range(n):
        h.send(from_peer(seq=PISS + 2 + 2 * i, flags="A", payload=b"z"), at=T)
    ooo = h.tcb.out_of_order
    assert ooo.cost <= RCVBUF + RCVBUF // 8
    assert h.stack.counters["ooo_pruned_bytes"] > 0
    kept = ooo.nbytes
    assert 0 < kept < n
    assert [e for e in h.events if e["ev"] == "prune"]
    h.take()
    h.send(from_peer(seq=PISS + 1, flags="A", payload=b"a"), at=T + 1)   # fill the first hole
    assert h.tcb.recv(10, T + 2) == b"az"                       # the lowest piece was kept


def test_limited_transmit_sends_new_data_on_the_first_two_dupacks() -> None:
    """RFC 3042 (RFC 5681 3.2): on the first and the second duplicate ACK one new segment
    each goes out beyond cwnd, cwnd unchanged; the third starts fast retransmit, and the
    two Limited Transmit segments are left out of FlightSize for ssthresh (RFC 5681 3.2
    step 2)."""
    h = Harness(plain_config(nodelay=True, congestion="reno", rack=False))
    h.passive_open()
    h.tcb.send(bytes(30 * MSS), T)
    flight = len(h.take(at=T))
    cwnd = h.tcb.cc.cwnd
    s = ISS + 1
    for i in range(2):                        # segment 1 lost: duplicates of its ACK
        h.send(from_peer(ack=s), at=T + 10 * MS + i)
        h.recv([to_peer(seq=s + (flight + i) * MSS, payload=bytes(MSS))])
        assert h.tcb.cc.cwnd == cwnd and not h.tcb.info()["in_recovery"]
    h.send(from_peer(ack=s), at=T + 10 * MS + 2)
    got = h.take()
    assert got[0].seq == s and len(got[0].payload) == MSS          # fast retransmit
    assert h.tcb.info()["in_recovery"]
    assert h.tcb.cc.ssthresh == max(flight * MSS // 2, 2 * MSS)
