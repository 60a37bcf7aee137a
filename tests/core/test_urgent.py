"""Urgent data (RFC 9293 3.8.5 and 3.10.7.4 sixth; the pointer as RFC 6093 and Linux with
tcp_stdurg=0: it points one past the urgent byte)."""

from __future__ import annotations

import errno

import pytest
from core_harness import ISS, PISS, Harness, from_peer, to_peer

from rawtcp.core.config import MS

T = 20 * MS


def test_urgent_byte_is_held_out_of_line_and_reads_stop_at_the_mark(est: Harness) -> None:
    """The issue 9 case: "ABCDEFGH" with URG and pointer 8, then "IJKL": reads give
    "ABCDEFG", then (past the mark) "IJKL"; recv(MSG_OOB) gives "H", once."""
    h, t = est, est.tcb
    h.send(from_peer(flags="PAU", payload=b"ABCDEFGH") .replace(urgent=8), at=T)
    h.send(from_peer(seq=PISS + 9, flags="PA", payload=b"IJKL"), at=T + 1)
    assert not t.urgent.at_mark
    assert t.recv(100, T + 2) == b"ABCDEFG"
    assert t.urgent.at_mark                                  # sockatmark()
    assert t.recv_urgent(peek=True) == b"H"
    assert t.recv_urgent() == b"H"
    with pytest.raises(OSError) as e:
        t.recv_urgent()
    assert e.value.errno == errno.EINVAL                     # read already
    assert t.recv(100, T + 3) == b"IJKL"
    assert not t.urgent.at_mark


def test_oobinline_keeps_the_byte_in_the_stream(est: Harness) -> None:
    """SO_OOBINLINE: the urgent byte stays in line; the read still stops at the mark."""
    h, t = est, est.tcb
    t.urgent.inline = True
    h.send(from_peer(flags="PAU", payload=b"ABCDEFGH").replace(urgent=8), at=T)
    h.send(from_peer(seq=PISS + 9, flags="PA", payload=b"IJKL"), at=T + 1)
    assert t.recv(100, T + 2) == b"ABCDEFG"
    assert t.urgent.at_mark
    assert t.recv(100, T + 3) == b"HIJKL"
    with pytest.raises(OSError) as e:
        t.recv_urgent()
    assert e.value.errno == errno.EINVAL


def test_urgent_pointer_ahead_of_the_data_is_eagain_until_the_byte_comes(est: Harness) -> None:
    """RFC 9293 3.8.5: the pointer may point beyond the segment: the byte is announced
    (EAGAIN) and taken out when it arrives."""
    h, t = est, est.tcb
    h.send(from_peer(flags="PAU", payload=b"ab").replace(urgent=5), at=T)
    with pytest.raises(BlockingIOError):
        t.recv_urgent()
    h.send(from_peer(seq=PISS + 3, flags="PA", payload=b"cdef"), at=T + 1)
    assert t.recv(100, T + 2) == b"abcd"
    assert t.recv_urgent() == b"e"
    assert t.recv(100, T + 3) == b"f"


def test_no_urgent_data_is_einval(est: Harness) -> None:
    with pytest.raises(OSError) as e:
        est.tcb.recv_urgent()
    assert e.value.errno == errno.EINVAL


def test_send_urgent_sets_urg_and_the_pointer_until_acked(est: Harness) -> None:
    """send(MSG_OOB): the last byte is urgent; segments carry URG with the pointer one past
    it (RFC 6093 / Linux) until the peer acknowledges it; then no more URG."""
    h, t = est, est.tcb
    t.send_urgent(b"xyz", T)
    h.recv([to_peer(flags="PAU", payload=b"xyz").replace(urgent=3)], at=T)
    h.send(from_peer(ack=ISS + 4), at=T + 10 * MS)
    t.send(b"more", T + 11 * MS)
    h.recv([to_peer(seq=ISS + 4, flags="PA", payload=b"more")], at=T + 11 * MS)
    assert t.urgent.snd_up is None
