"""A burst of data segments from one output pass (tcb_output: the first segment is made in
full, the others repeat its ACK, window and options): every segment still carries what RFC
9293 3.10.7.4 (ACK = RCV.NXT), RFC 7323 3 (TSopt in every segment, TSecr = TS.Recent) and
RFC 2018 4 (SACK blocks in every segment while data is held out of order) ask, and data
that changes a segment (urgent data, RFC 9293 3.8.5) is not repeated from a plain one."""

from __future__ import annotations

from cc_harness import sack_harness
from core_harness import PISS, from_peer

from rawtcp.core.config import MS
from rawtcp.core.segment import URG, Options
from rawtcp.core.seq import MASK

T = 20 * MS


def _hold_out_of_order(h) -> tuple[int, int]:
    """The peer's bytes 100..199 arrive before 0..99: a SACK block to report."""
    s = PISS + 1 + 100
    h.send(from_peer(seq=s, payload=b"y" * 100, opts=Options(timestamps=(50, 0))), at=T)
    h.take()
    return s & MASK, (s + 100) & MASK


def test_every_segment_of_a_burst_carries_ack_window_timestamps_and_sack() -> None:
    h = sack_harness(timestamps=True, rack=False)
    block = _hold_out_of_order(h)
    tcb = h.tcb
    mss = tcb.smss - 12                           # the SACK option's room (NOP NOP + 1 block)
    tcb.send(bytes(6 * mss), T + MS)
    got = h.take(at=T + MS)
    assert len(got) >= 4, got                     # the initial window's burst
    # TSecr: the handshake ACK's TSval, 2 (RFC 7323 4.3: out-of-order text does not move
    # TS.Recent)
    want_opts = Options(sack_blocks=(block,), timestamps=((T + MS) // 1000, 2))
    for seg in got:
        assert seg.ack == tcb.rcv_nxt & MASK
        assert seg.options == want_opts
        assert len(seg.payload) == mss
    assert len({seg.window for seg in got}) == 1
    assert [seg.seq for seg in got] == [(got[0].seq + i * mss) & MASK for i in range(len(got))]


def test_urgent_data_is_not_copied_from_a_plain_segment() -> None:
    """RFC 9293 3.8.5 / RFC 6093: every segment sent while the urgent byte is not yet
    acknowledged has URG and a pointer to it, counted from its own sequence number."""
    h = sack_harness(timestamps=True, rack=False)
    tcb = h.tcb
    mss = tcb.smss
    tcb.send_urgent(bytes(3 * mss), T)
    got = h.take(at=T)
    assert len(got) == 3
    end = got[0].seq + 3 * mss
    for seg in got:
        assert seg.flags & URG
        assert seg.urgent == (end - seg.seq) & 0xFFFF
