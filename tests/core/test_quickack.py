"""Quick-ACK mode and pingpong (Linux's delayed-ACK engine; RFC 1122 4.2.3.2 allows an ACK
to be delayed, RFC 5681 4.2 asks for one at least every second full-sized segment and
recommends not delaying at the start: RFC 5681 4.2 "an ACK SHOULD be generated for at
least every second full-sized segment", and Linux ACKs the first segments at once so the
peer's slow start is not slowed by the delayed-ACK timer)."""

from __future__ import annotations

from core_harness import ISS, PISS, RCVBUF, RTT, Harness, from_peer, plain_config, to_peer

from rawtcp.core.config import MS, SEC

T = 20 * MS
DELACK = 40 * MS


def _data(h: Harness, i: int, at: int, n: int = 10) -> None:
    h.send(from_peer(seq=PISS + 1 + i * n, flags="PA", payload=bytes(n)), at=at)


def _ack(i: int, n: int = 10, seq: int = ISS + 1):
    return to_peer(seq=seq, ack=PISS + 1 + (i + 1) * n, win=RCVBUF - (i + 1) * n)


def test_first_segments_are_acked_at_once_then_delayed() -> None:
    """quickack=2: the first two data segments get an ACK at once, the third waits for the
    delayed-ACK timer."""
    h = Harness(plain_config(quickack=2))
    h.passive_open()
    for i in range(2):
        _data(h, i, at=T + i * MS)
        h.recv([_ack(i)], at=T + i * MS)
    _data(h, 2, at=T + 2 * MS)
    h.recv_nothing(at=T + 2 * MS + DELACK - 1)
    h.recv([_ack(2)], at=T + 2 * MS + DELACK)


def test_quickack_zero_delays_from_the_start() -> None:
    h = Harness(plain_config(quickack=0))
    h.passive_open()
    _data(h, 0, at=T)
    h.recv_nothing(at=T + DELACK - 1)
    h.recv([_ack(0)], at=T + DELACK)


def test_idle_longer_than_rto_starts_quick_acks_again() -> None:
    """Linux (tcp_event_data_recv): data after more than an RTO of silence re-enters
    quick-ACK mode."""
    h = Harness(plain_config(quickack=1))
    h.passive_open()
    _data(h, 0, at=T)
    h.recv([_ack(0)], at=T)
    _data(h, 1, at=T + 1 * MS)
    h.recv_nothing(at=T + 1 * MS + DELACK - 1)
    h.recv([_ack(1)], at=T + 1 * MS + DELACK)
    later = T + 5 * SEC                       # far beyond the RTO
    _data(h, 2, at=later)
    h.recv([_ack(2)], at=later)


def test_a_reply_within_the_delayed_ack_time_enters_pingpong() -> None:
    """Interactive traffic (Linux pingpong): once we answered data within the delayed-ACK
    time, the ACK for the next request is delayed so it can ride on the reply; a delayed
    ACK that had to go alone ends pingpong."""
    h = Harness(plain_config(quickack=16, nodelay=True))
    t = h.passive_open()
    _data(h, 0, at=T)
    h.recv([_ack(0)], at=T)                   # quick ACK
    t.send(b"reply", T + 5 * MS)              # a reply 5 ms later: pingpong
    h.recv([to_peer(seq=ISS + 1, flags="PA", ack=PISS + 11, win=RCVBUF - 10,
                    payload=b"reply")], at=T + 5 * MS)
    h.send(from_peer(seq=PISS + 11, ack=ISS + 6), at=T + 5 * MS + RTT)
    _data(h, 1, at=T + 50 * MS)
    h.recv_nothing(at=T + 50 * MS + DELACK - 1)   # no quick ACK: it waits for a reply
    h.recv([_ack(1, seq=ISS + 6)], at=T + 50 * MS + DELACK)
    _data(h, 2, at=T + 200 * MS)              # pingpong ended with that lone ACK
    h.recv([_ack(2, seq=ISS + 6)], at=T + 200 * MS)
