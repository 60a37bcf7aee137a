"""RST and SYN arriving in every RFC 9293 state (RFC 9293 3.10.7.1-3.10.7.4 "second, check
the RST bit" / "fourth, check the SYN bit", RFC 5961 3.2 and 4.2, RFC 1337).

One test per state for the RST with exactly SEQ = RCV.NXT (what the connection becomes,
which error the user sees, and that nothing is sent back), then, for every synchronized
state, an in-window RST that is not exact and a SYN: both get a challenge ACK and change
nothing. This file is the one home of "an RST arrives in state X"; the other core test files
test the RSTs the stack sends.
"""

from __future__ import annotations

import errno

import pytest
from core_harness import (
    ISS,
    LPORT,
    MSS,
    PEER,
    PISS,
    RCVBUF,
    RPORT,
    US,
    Harness,
    from_peer,
    plain_config,
    to_peer,
)

from rawtcp.core.config import MS, SEC
from rawtcp.core.segment import Options, Segment
from rawtcp.core.tcb import State

T = 100 * MS  # after every fixture's last event, before any retransmission (RTO 200 ms)


def _rst(seq: int, ack: int | None = None) -> Segment:
    if ack is None:
        return from_peer(seq=seq, flags="R", win=0)
    return from_peer(seq=seq, ack=ack, flags="RA", win=0)


# ------------------------------------------------------------------ exact RST, per state
def test_rst_in_closed_no_tcb_is_discarded(h: Harness) -> None:
    """RFC 9293 3.10.7.1 (CLOSED): "An incoming segment containing a RST is discarded"."""
    h.send(_rst(PISS + 1), at=T)
    h.recv_nothing()
    assert h.stack.counters["rst_sent"] == 0


def test_rst_in_listen_is_ignored(h: Harness) -> None:
    """RFC 9293 3.10.7.2 first (LISTEN): an incoming RST, with or without ACK, is ignored;
    still listening."""
    lst = h.listen()
    h.send(_rst(PISS + 1), at=T)
    h.send(_rst(PISS + 1, ISS + 1), at=T)
    h.recv_nothing()
    assert not lst.closed and h.stack.connections() == []
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=T + 1)
    assert h.stack.lookup(US, LPORT, PEER, RPORT).state is State.SYN_RECEIVED


def test_rst_in_syn_sent_with_acceptable_ack_is_refused(syn_sent: Harness) -> None:
    """RFC 9293 3.10.7.3 second (SYN-SENT): RST with an acceptable ACK -> "connection
    reset" (ECONNREFUSED), CLOSED, nothing sent."""
    h = syn_sent
    h.send(_rst(0, ISS + 1), at=T)
    h.recv_nothing()
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ECONNREFUSED


def test_rst_in_syn_sent_without_ack_is_dropped(syn_sent: Harness) -> None:
    """RFC 9293 3.10.7.3 second (SYN-SENT): "Otherwise (no ACK), drop the segment"."""
    h = syn_sent
    h.send(_rst(PISS), at=T)
    h.recv_nothing()
    assert h.tcb.state is State.SYN_SENT and h.tcb.error is None


def test_rst_in_syn_received_passive_returns_to_listen(syn_received: Harness) -> None:
    """RFC 9293 3.10.7.4 second (SYN-RECEIVED, passive OPEN): back to LISTEN, no error."""
    h = syn_received
    h.send(_rst(PISS + 1), at=T)
    h.recv_nothing()
    assert h.tcb.state is State.CLOSED and h.tcb.error is None
    assert not h.listener.closed and h.listener.syn_queue == []
    assert h.stack.connections() == []
    # Still listening: a new SYN gets a SYN-ACK.
    h.send(from_peer(seq=PISS + 1000, ack=0, flags="S", opts=Options(mss=MSS)), at=T + 1)
    h.recv([to_peer(seq=ISS, ack=PISS + 1001, flags="SA", win=min(RCVBUF, 65535),
                    opts=Options(mss=MSS))])


def test_rst_in_syn_received_active_is_refused(syn_sent: Harness) -> None:
    """RFC 9293 3.10.7.4 second (SYN-RECEIVED reached from SYN-SENT by a simultaneous
    open): "the connection was refused" -> ECONNREFUSED, CLOSED."""
    h = syn_sent
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=5 * MS)
    h.take()
    assert h.tcb.state is State.SYN_RECEIVED
    h.send(_rst(PISS + 1), at=T)
    h.recv_nothing()
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ECONNREFUSED


@pytest.mark.parametrize(("state", "rcv_nxt", "err"), [
    ("est", PISS + 1, errno.ECONNRESET), ("fin_wait_1", PISS + 1, errno.ECONNRESET),
    ("fin_wait_2", PISS + 1, errno.ECONNRESET), ("close_wait", PISS + 2, errno.EPIPE),
])
def test_rst_in_open_states_is_econnreset(state: str, rcv_nxt: int, err: int,
                                          request: pytest.FixtureRequest) -> None:
    """RFC 9293 3.10.7.4 second (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT): RST with
    SEQ = RCV.NXT (RFC 5961 3.2) -> "connection reset", CLOSED, no reply. The error is
    Linux's (tcp_reset): ECONNRESET, but EPIPE in CLOSE-WAIT, where the peer had already
    finished sending."""
    h: Harness = request.getfixturevalue(state)
    h.send(_rst(rcv_nxt), at=T)
    h.recv_nothing(at=T + 10 * SEC)
    assert h.tcb.state is State.CLOSED and h.tcb.error == err
    assert h.stack.connections() == []


@pytest.mark.parametrize("state", ["closing", "last_ack"])
def test_rst_in_closing_and_last_ack_closes_quietly(state: str,
                                                    request: pytest.FixtureRequest) -> None:
    """RFC 9293 3.10.7.4 second (CLOSING, LAST-ACK): "enter the CLOSED state, delete the
    TCB, and return" - no error for the user, no reply, no more FIN retransmissions."""
    h: Harness = request.getfixturevalue(state)
    h.send(_rst(PISS + 2), at=T)
    h.recv_nothing(at=T + 10 * SEC)
    assert h.tcb.state is State.CLOSED and h.tcb.error is None


def test_rst_in_time_wait_ignored_with_rfc1337(time_wait: Harness) -> None:
    """RFC 1337 section 3 (fix F1, on by default): RST in TIME-WAIT is ignored; TIME_WAIT
    still lasts its full 2 MSL from when it began."""
    h = time_wait
    h.send(_rst(PISS + 2, ISS + 2), at=T)
    h.recv_nothing()
    assert h.tcb.state is State.TIME_WAIT
    assert h.stack.counters["dropped_rfc1337"] == 1
    h.recv_nothing(at=40 * MS + 60 * SEC - 1)
    assert h.tcb.state is State.TIME_WAIT
    h.recv_nothing(at=40 * MS + 60 * SEC)
    assert h.tcb.state is State.CLOSED


def test_rst_in_time_wait_closes_without_rfc1337() -> None:
    """RFC 9293 3.10.7.4 second (TIME-WAIT) with RFC 1337 switched off: CLOSED at once."""
    h = Harness(plain_config(rfc1337=False))
    h.passive_open()
    h.tcb.close(20 * MS)
    h.recv([to_peer(flags="FA")], at=20 * MS)
    h.send(from_peer(flags="FA", ack=ISS + 2), at=30 * MS)
    h.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert h.tcb.state is State.TIME_WAIT
    h.send(_rst(PISS + 2, ISS + 2), at=T)
    h.recv_nothing()
    assert h.tcb.state is State.CLOSED and h.tcb.error is None
    assert h.stack.connections() == []


# ------------------------------------------------------------------ RFC 5961, per state
# (fixture, RCV.NXT, the challenge ACK the state sends: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>)
SYNCHRONIZED = [
    ("syn_received", PISS + 1, to_peer()),
    ("est", PISS + 1, to_peer()),
    ("fin_wait_1", PISS + 1, to_peer(seq=ISS + 2)),
    ("fin_wait_2", PISS + 1, to_peer(seq=ISS + 2)),
    ("close_wait", PISS + 2, to_peer(ack=PISS + 2, win=RCVBUF - 1)),
    ("closing", PISS + 2, to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)),
    ("last_ack", PISS + 2, to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)),
    ("time_wait", PISS + 2, to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)),
]


@pytest.mark.parametrize(("state", "rcv_nxt", "challenge"), SYNCHRONIZED)
def test_in_window_rst_gets_challenge_ack_in_every_synchronized_state(
        state: str, rcv_nxt: int, challenge, request: pytest.FixtureRequest) -> None:
    """RFC 5961 3.2: an RST inside the window but not at RCV.NXT -> challenge ACK, the
    connection stays as it is."""
    h: Harness = request.getfixturevalue(state)
    before = h.tcb.state
    h.send(_rst(rcv_nxt + 100), at=T)
    h.recv([challenge])
    assert h.tcb.state is before and h.tcb.error is None
    assert h.stack.counters["challenge_acks"] == 1


@pytest.mark.parametrize(("state", "rcv_nxt", "challenge"), SYNCHRONIZED[1:-1])
def test_syn_gets_challenge_ack_in_every_synchronized_state(
        state: str, rcv_nxt: int, challenge, request: pytest.FixtureRequest) -> None:
    """RFC 5961 4.2 / RFC 9293 3.10.7.4 fourth: a SYN in a synchronized state, in the
    window or not, gets an ACK (challenge ACK) and never resets the connection."""
    h: Harness = request.getfixturevalue(state)
    before = h.tcb.state
    h.send(from_peer(seq=rcv_nxt + 10, ack=0, flags="S", opts=Options(mss=MSS)), at=T)
    h.recv([challenge])
    h.send(from_peer(seq=rcv_nxt + 10**6, ack=0, flags="S", opts=Options(mss=MSS)), at=T + 1)
    h.recv([challenge])
    assert h.tcb.state is before and h.tcb.error is None
    assert h.stack.counters["challenge_acks"] == 1


def test_rst_in_last_ack_after_shutdown_reports_econnreset(close_wait: Harness) -> None:
    """RFC 9293 3.10.7.4 second closes the connection quietly because, in its model, the
    user already closed. After shutdown(SHUT_WR) the user still holds the socket: it learns
    of the reset, as from Linux (tcp_reset: ECONNRESET in LAST-ACK); packetdrill's
    rcv-rst-last-ack scripts check it with SO_ERROR."""
    h = close_wait
    h.tcb.shutdown(1, 30 * MS)                          # SHUT_WR: our FIN
    h.recv([to_peer(flags="FA", ack=PISS + 2, win=RCVBUF - 1)], at=30 * MS)
    assert h.tcb.state is State.LAST_ACK and not h.tcb.orphan
    h.send(_rst(PISS + 2), at=T)
    h.recv_nothing(at=T + 10 * SEC)
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ECONNRESET
