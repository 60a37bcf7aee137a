"""Opening connections: RFC 9293 3.5 (three-way handshake), 3.10.7.2 (LISTEN),
3.10.7.3 (SYN-SENT), simultaneous open, SYN retransmission (RFC 6298, RFC 9293 3.8.1)."""

from __future__ import annotations

import errno

from core_harness import ISS, MSS, PISS, RCVBUF, RTO, RTT, Harness, from_peer, to_peer

from rawtcp.core.config import MS, SEC
from rawtcp.core.segment import Options
from rawtcp.core.tcb import State


def test_passive_open(h: Harness) -> None:
    """RFC 9293 3.5 figure 6: LISTEN -> SYN_RECEIVED -> ESTABLISHED."""
    h.passive_open()
    assert ("LISTEN", "SYN_RECEIVED") in h.state_events()
    assert ("SYN_RECEIVED", "ESTABLISHED") in h.state_events()
    assert h.tcb.info()["rto"] == RTO


def test_active_open(h: Harness) -> None:
    """RFC 9293 3.5 figure 6: CLOSED -> SYN_SENT -> ESTABLISHED, ACK of the SYN-ACK."""
    h.active_open()
    assert h.state_events()[:2] == [("CLOSED", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED")]


def test_active_open_data_queued_in_syn_sent_goes_with_the_ack(syn_sent: Harness) -> None:
    """RFC 9293 3.10.2: data SENT in SYN-SENT is queued and sent once ESTABLISHED."""
    h = syn_sent
    assert h.tcb.send(b"hello", 1 * MS) == 5
    h.recv_nothing(at=2 * MS)
    h.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA", opts=Options(mss=MSS)), at=RTT)
    h.recv([to_peer(flags="PA", payload=b"hello")])


def test_simultaneous_open(syn_sent: Harness) -> None:
    """RFC 9293 3.5 figure 8: SYN crosses SYN -> SYN_RECEIVED and SYN-ACK; the peer's own
    SYN-ACK (its SYN again, acknowledging ours) completes the open at once, with nothing
    more to send (as Linux: connect() returns without waiting for a retransmission)."""
    h = syn_sent
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=5 * MS)
    h.recv([to_peer(seq=ISS, flags="SA", win=min(RCVBUF, 65535), opts=Options(mss=MSS))])
    assert h.tcb.state is State.SYN_RECEIVED
    h.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA", opts=Options(mss=MSS)), at=6 * MS)
    h.recv_nothing()
    assert h.tcb.state is State.ESTABLISHED
    assert h.state_events()[-2:] == [("SYN_SENT", "SYN_RECEIVED"),
                                     ("SYN_RECEIVED", "ESTABLISHED")]
    # data flows both ways from here
    h.send(from_peer(flags="PA", payload=b"hi"), at=7 * MS)
    assert h.tcb.recv(10, 8 * MS) == b"hi"


def test_simultaneous_open_syn_ack_acking_nothing_is_not_taken(syn_sent: Harness) -> None:
    """RFC 9293 3.10.7.4: only a SYN-ACK that acknowledges our SYN completes the open; one
    with another ACK is unacceptable: it gets an ACK and the state stays."""
    h = syn_sent
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=5 * MS)
    h.take()
    h.send(from_peer(seq=PISS, ack=ISS + 5, flags="SA", opts=Options(mss=MSS)), at=6 * MS)
    assert h.tcb.state is State.SYN_RECEIVED
    assert h.take() != []


def test_syn_retransmitted_with_backoff_then_etimedout() -> None:
    """RFC 6298 5.5 + RFC 9293 3.8.3 (R2 for SYN): SYN at 1 s, 2 s, 4 s ... then ETIMEDOUT."""
    from core_harness import plain_config

    h = Harness(plain_config(syn_retries=3))
    tcb = h.connect()
    syn = to_peer(seq=ISS, ack=0, flags="S", win=min(RCVBUF, 65535), opts=Options(mss=MSS))
    h.recv([syn], at=0)
    h.recv_nothing(at=1 * SEC - 1)
    h.recv([syn], at=1 * SEC)
    h.recv_nothing(at=3 * SEC - 1)
    h.recv([syn], at=3 * SEC)
    h.recv_nothing(at=7 * SEC - 1)
    h.recv([syn], at=7 * SEC)
    assert tcb.state is State.SYN_SENT
    h.recv_nothing(at=15 * SEC - 1)
    assert tcb.state is State.SYN_SENT
    h.recv_nothing(at=15 * SEC)
    assert tcb.state is State.CLOSED and tcb.error == errno.ETIMEDOUT
    assert any(e["ev"] == "retransmit" for e in h.events)


def test_syn_sent_rst_with_bad_ack_is_ignored(syn_sent: Harness) -> None:
    """RFC 9293 3.10.7.3 first: an RST whose ACK is unacceptable is dropped."""
    h = syn_sent
    h.send(from_peer(seq=0, ack=ISS + 5, flags="RA", win=0), at=RTT)
    h.recv_nothing()
    assert h.tcb.state is State.SYN_SENT


def test_syn_sent_bad_ack_gets_rst(syn_sent: Harness) -> None:
    """RFC 9293 3.10.7.3 first: SEG.ACK =< ISS or > SND.NXT -> <SEQ=SEG.ACK><CTL=RST>."""
    h = syn_sent
    h.send(from_peer(seq=PISS, ack=ISS + 100, flags="SA"), at=RTT)
    h.recv([to_peer(seq=ISS + 100, ack=0, flags="R", win=0)])
    assert h.tcb.state is State.SYN_SENT


def test_syn_sent_close_goes_closed(syn_sent: Harness) -> None:
    """RFC 9293 3.10.4 CLOSE in SYN-SENT: delete the TCB, nothing sent."""
    h = syn_sent
    h.tcb.close(1 * MS)
    h.recv_nothing(at=5 * SEC)
    assert h.tcb.state is State.CLOSED


def test_syn_received_retransmits_syn_ack_then_gives_up() -> None:
    """RFC 6298 5.5: SYN-ACK retransmitted at RTO, 2*RTO...; synack_retries, then CLOSED."""
    from core_harness import plain_config

    h = Harness(plain_config(synack_retries=2))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=0)
    sa = to_peer(seq=ISS, flags="SA", win=min(RCVBUF, 65535), opts=Options(mss=MSS))
    h.recv([sa])
    h.recv_nothing(at=1 * SEC - 1)
    h.recv([sa], at=1 * SEC)
    h.recv_nothing(at=3 * SEC - 1)
    h.recv([sa], at=3 * SEC)
    h.recv_nothing(at=7 * SEC)
    assert h.stack.connections() == []
    assert h.listener.accept() is None


def test_syn_received_duplicate_syn_resends_syn_ack(syn_received: Harness) -> None:
    """RFC 9293 3.10.7.4 / Linux: a retransmitted SYN in SYN_RECEIVED gets the SYN-ACK again."""
    h = syn_received
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=500 * MS)
    h.recv([to_peer(seq=ISS, flags="SA", win=min(RCVBUF, 65535), opts=Options(mss=MSS))])


def test_syn_received_bad_ack_gets_rst(syn_received: Harness) -> None:
    """RFC 9293 3.10.7.4 fifth (SYN-RECEIVED): unacceptable ACK -> <SEQ=SEG.ACK><CTL=RST>."""
    h = syn_received
    h.send(from_peer(ack=ISS + 50), at=RTT)
    h.recv([to_peer(seq=ISS + 50, ack=0, flags="R", win=0)])
    assert h.tcb.state is State.SYN_RECEIVED


def test_data_with_final_ack_of_handshake(syn_received: Harness) -> None:
    """RFC 9293 3.10.7.4: the ACK completing the handshake may carry data."""
    h = syn_received
    h.send(from_peer(flags="PA", payload=b"abc"), at=RTT)
    assert h.tcb.state is State.ESTABLISHED
    h.recv([to_peer(ack=PISS + 4, win=RCVBUF - 3)], at=RTT + 40 * MS)
    assert h.listener.accept().recv(10, RTT + 41 * MS) == b"abc"


def test_retransmitted_syn_ack_in_established_is_acked_again(h: Harness) -> None:
    """RFC 9293 3.10.7.4 first: our ACK of the SYN-ACK was lost; the peer's retransmitted
    SYN-ACK is a duplicate (unacceptable) and is answered with an ACK."""
    h.active_open()
    h.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA", opts=Options(mss=MSS)), at=1 * SEC)
    h.recv([to_peer()])
    assert h.tcb.state is State.ESTABLISHED


def test_trace_has_relative_numbers_for_the_syn(h: Harness) -> None:
    """RFC 9293 3.4 (ISS/IRS) as traced: seg events carry rseq/rack relative to ISS/IRS
    (docs/contracts.md)."""
    h.active_open()
    segs = [(e["dir"], e["flags"], e["rseq"], e["rack"]) for e in h.events if e["ev"] == "seg"]
    assert segs == [("out", "S", 0, None), ("in", "SA", 0, 1), ("out", "A", 1, 1)]


def test_close_in_syn_received_sends_fin_after_the_handshake(syn_sent: Harness) -> None:
    """RFC 9293 3.10.4 CLOSE in SYN-RECEIVED: enter FIN-WAIT-1; the FIN is queued until
    our SYN is acknowledged, then sent (RFC 9293 3.10.7.4 fifth: the ACK of the SYN keeps
    FIN-WAIT-1)."""
    h = syn_sent
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=5 * MS)
    h.take()
    assert h.tcb.state is State.SYN_RECEIVED
    h.tcb.close(6 * MS)
    assert h.tcb.state is State.FIN_WAIT_1
    h.recv_nothing(at=6 * MS)
    h.send(from_peer(), at=10 * MS)
    h.recv([to_peer(flags="FA")])
    assert h.tcb.state is State.FIN_WAIT_1
    h.send(from_peer(ack=ISS + 2), at=20 * MS)
    assert h.tcb.state is State.FIN_WAIT_2


def test_syn_in_window_in_syn_received_returns_to_listen(syn_received: Harness) -> None:
    """RFC 9293 3.10.7.4 fourth (SYN-RECEIVED, passive OPEN): a SYN inside the window
    (not the retransmitted original) returns the connection to LISTEN: the child is gone,
    nothing is sent, and the listener answers the peer's next SYN afresh."""
    h = syn_received
    h.send(from_peer(seq=PISS + 100, ack=0, flags="S", opts=Options(mss=MSS)), at=RTT)
    h.recv_nothing()
    assert h.tcb.state is State.CLOSED and h.tcb.error is None
    assert h.stack.connections() == [] and h.listener.syn_queue == []
    h.send(from_peer(seq=PISS + 100, ack=0, flags="S", opts=Options(mss=MSS)), at=2 * RTT)
    h.recv([to_peer(seq=ISS, ack=PISS + 101, flags="SA", win=min(RCVBUF, 65535),
                    opts=Options(mss=MSS))])


def test_syn_in_syn_received_after_simultaneous_open_gets_challenge_ack(
        syn_sent: Harness) -> None:
    """RFC 9293 3.10.7.4 fourth (SYN-RECEIVED from an active OPEN: "handle per the
    directions for synchronized states") + RFC 5961 4.2: challenge ACK, no change."""
    h = syn_sent
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=5 * MS)
    h.take()
    h.send(from_peer(seq=PISS + 100, ack=0, flags="S"), at=6 * MS)
    h.recv([to_peer()])
    assert h.tcb.state is State.SYN_RECEIVED
