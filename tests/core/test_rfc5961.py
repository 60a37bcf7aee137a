"""RFC 5961 (blind in-window attacks) and the sequence number check of RFC 9293 3.10.7.4."""

from __future__ import annotations

from core_harness import ISS, PISS, RCVBUF, Harness, from_peer, plain_config, to_peer

from rawtcp.core.config import MS, SEC
from rawtcp.core.segment import Options
from rawtcp.core.tcb import State

T = 20 * MS


def test_rst_out_of_window_is_silently_dropped(est: Harness) -> None:
    """RFC 5961 3.2 / RFC 9293 3.10.7.4: RST outside the window -> dropped, no reply."""
    est.send(from_peer(seq=PISS + 1 + RCVBUF + 10, flags="R", win=0), at=T)
    est.send(from_peer(seq=PISS - 10, flags="R", win=0), at=T)
    est.recv_nothing()
    assert est.tcb.state is State.ESTABLISHED
    assert est.stack.counters["dropped_unacceptable_rst"] == 2


def test_syn_in_established_gets_challenge_ack(est: Harness) -> None:
    """RFC 5961 4.2: any SYN in a synchronized state -> challenge ACK, no reset."""
    est.send(from_peer(seq=PISS + 1, ack=0, flags="S", opts=Options(mss=1460)), at=T)
    est.recv([to_peer()])
    assert est.tcb.state is State.ESTABLISHED


def test_syn_out_of_window_in_established_gets_ack(est: Harness) -> None:
    """RFC 9293 3.10.7.4 first: unacceptable segment (even a SYN) -> ACK, no reset."""
    est.send(from_peer(seq=PISS + 200_000, ack=0, flags="S"), at=T)
    est.recv([to_peer()])
    assert est.tcb.state is State.ESTABLISHED


def test_ack_too_old_gets_challenge_ack(est: Harness) -> None:
    """RFC 5961 5.2: SEG.ACK < SND.UNA - MAX.SND.WND -> challenge ACK, segment dropped."""
    est.send(from_peer(ack=ISS + 1 - 70_000, flags="PA", payload=b"evil"), at=T)
    est.recv([to_peer()])
    assert est.tcb.readable == 0
    assert est.stack.counters["dropped_ack_too_old"] == 1


def test_ack_of_unsent_data_is_answered_and_dropped(est: Harness) -> None:
    """RFC 9293 3.10.7.4 fifth / RFC 5961 5.2: SEG.ACK > SND.NXT -> ACK, drop."""
    est.send(from_peer(ack=ISS + 5000, flags="PA", payload=b"evil"), at=T)
    est.recv([to_peer()])
    assert est.tcb.readable == 0


def test_unacceptable_data_gets_ack(est: Harness) -> None:
    """RFC 9293 3.10.7.4 first: data outside the window -> <SEQ=SND.NXT><ACK=RCV.NXT><ACK>."""
    est.send(from_peer(seq=PISS + 1 + RCVBUF + 5, flags="PA", payload=b"far"), at=T)
    est.recv([to_peer()])
    assert est.stack.counters["dropped_unacceptable"] == 1
    drops = [e for e in est.events if e["ev"] == "drop"]
    assert drops[-1]["reason"] == "unacceptable" and drops[-1]["len"] == 3


def test_challenge_ack_rate_limit() -> None:
    """RFC 5961 7: challenge ACKs are rate limited (challenge_ack_limit per second)."""
    h = Harness(plain_config(challenge_ack_limit=2))
    h.passive_open()
    for i in range(4):
        h.send(from_peer(seq=PISS + 10 + i, flags="R", win=0), at=T + i)
    h.recv([to_peer(), to_peer()])
    assert h.stack.counters["challenge_acks_limited"] == 2
    h.send(from_peer(seq=PISS + 50, flags="R", win=0), at=1 * SEC + T)
    h.recv([to_peer()])


def test_no_ack_flag_is_dropped(est: Harness) -> None:
    """RFC 9293 3.10.7.4 fifth: "if the ACK bit is off, drop the segment and return"."""
    est.send(from_peer(flags="P", payload=b"noack"), at=T)
    est.recv_nothing()
    assert est.tcb.readable == 0


def test_ack_range_boundary_max_snd_wnd() -> None:
    """RFC 5961 5.2: SEG.ACK is acceptable in [SND.UNA - MAX.SND.WND, SND.NXT]. An old ACK
    exactly at the lower edge is processed (its data accepted); one below gets a challenge
    ACK and its data is dropped."""
    h = Harness()
    h.passive_open()   # the peer's window (MAX.SND.WND) is 64000
    h.send(from_peer(ack=ISS + 1 - 64000, flags="PA", payload=b"ok"), at=T)
    assert h.tcb.readable == 2 and h.stack.counters["challenge_acks"] == 0
    h.send(from_peer(seq=PISS + 3, ack=ISS + 1 - 64001, flags="PA", payload=b"no"), at=T + 1)
    h.recv([to_peer(ack=PISS + 3, win=RCVBUF - 2)])
    assert h.tcb.readable == 2 and h.stack.counters["challenge_acks"] == 1


def test_challenge_acks_limited_across_kinds() -> None:
    """RFC 5961 7: one stack-wide budget of challenge ACKs per second covers RST, SYN and
    old-ACK challenges alike; a new second gives a new budget."""
    h = Harness(plain_config(challenge_ack_limit=3))
    h.passive_open()
    h.send(from_peer(seq=PISS + 10, flags="R", win=0), at=T)
    h.send(from_peer(seq=PISS + 10, ack=0, flags="S"), at=T + 1)
    h.send(from_peer(ack=ISS + 1 - 70_000, flags="A"), at=T + 2)
    h.send(from_peer(seq=PISS + 11, flags="R", win=0), at=T + 3)
    h.send(from_peer(seq=PISS + 12, ack=0, flags="S"), at=T + 4)
    h.recv([to_peer(), to_peer(), to_peer()])
    assert h.stack.counters["challenge_acks"] == 3
    assert h.stack.counters["challenge_acks_limited"] == 2
    assert h.tcb.state is State.ESTABLISHED
    h.send(from_peer(seq=PISS + 13, flags="R", win=0), at=SEC)
    h.recv([to_peer()])
