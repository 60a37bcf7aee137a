"""Fixtures putting a connection in each RFC 9293 state; helpers live in core_harness.py."""

from __future__ import annotations

import pytest
from core_harness import ISS, LPORT, MSS, PEER, PISS, RCVBUF, RPORT, US, Harness, from_peer, to_peer

from rawtcp.core.config import MS
from rawtcp.core.segment import Options
from rawtcp.core.tcb import State


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def est(h: Harness) -> Harness:
    """ESTABLISHED by a passive open, t = RTT, RTO = 200 ms."""
    h.passive_open()
    return h


@pytest.fixture
def fin_wait_1(est: Harness) -> Harness:
    """We closed at t = 20 ms; our FIN (seq ISS+1) is unacknowledged."""
    est.tcb.close(20 * MS)
    est.recv([to_peer(flags="FA")], at=20 * MS)
    assert est.tcb.state is State.FIN_WAIT_1
    return est


@pytest.fixture
def fin_wait_2(fin_wait_1: Harness) -> Harness:
    fin_wait_1.send(from_peer(ack=ISS + 2), at=30 * MS)
    fin_wait_1.recv_nothing()
    assert fin_wait_1.tcb.state is State.FIN_WAIT_2
    return fin_wait_1


@pytest.fixture
def close_wait(est: Harness) -> Harness:
    est.send(from_peer(flags="FA"), at=20 * MS)
    est.recv([to_peer(ack=PISS + 2, win=RCVBUF - 1)])
    assert est.tcb.state is State.CLOSE_WAIT
    return est


@pytest.fixture
def last_ack(close_wait: Harness) -> Harness:
    close_wait.tcb.close(30 * MS)
    close_wait.recv([to_peer(flags="FA", ack=PISS + 2, win=RCVBUF - 1)], at=30 * MS)
    assert close_wait.tcb.state is State.LAST_ACK
    return close_wait


@pytest.fixture
def closing(fin_wait_1: Harness) -> Harness:
    """Simultaneous close: the peer's FIN crosses ours (it does not ack our FIN)."""
    fin_wait_1.send(from_peer(flags="FA"), at=25 * MS)
    fin_wait_1.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert fin_wait_1.tcb.state is State.CLOSING
    return fin_wait_1


@pytest.fixture
def time_wait(fin_wait_2: Harness) -> Harness:
    """FIN_WAIT_2 + peer FIN at t = 40 ms -> TIME_WAIT."""
    fin_wait_2.send(from_peer(flags="FA", ack=ISS + 2), at=40 * MS)
    fin_wait_2.recv([to_peer(seq=ISS + 2, ack=PISS + 2, win=RCVBUF - 1)])
    assert fin_wait_2.tcb.state is State.TIME_WAIT
    return fin_wait_2


@pytest.fixture
def syn_sent(h: Harness) -> Harness:
    h.connect()
    h.recv([to_peer(seq=ISS, ack=0, flags="S", win=min(RCVBUF, 65535), opts=Options(mss=MSS))])
    return h


@pytest.fixture
def syn_received(h: Harness) -> Harness:
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=0)
    h.recv([to_peer(seq=ISS, flags="SA", win=min(RCVBUF, 65535), opts=Options(mss=MSS))])
    h.tcb = h.stack.lookup(US, LPORT, PEER, RPORT)
    assert h.tcb is not None and h.tcb.state is State.SYN_RECEIVED
    return h
