"""RFC 9293 3.7.1 (the MSS counts no TCP options) and RFC 2018 section 3.

A data segment that also carries SACK blocks must shrink its payload so that options plus
payload still fit the peer's MSS: a 1448-byte payload plus timestamps plus one SACK block is
1512 bytes of IP on a 1500-byte link, which the link refuses (seen against Linux when both
directions carried data and the kernel's segments were lost).

The core is tested without the codec, so the option bytes are counted here from the RFCs'
layouts; that the encoded packet is that long is the wire tests' business.
"""

from __future__ import annotations

from core_harness import ISS, PISS, RTT, Harness, from_peer, plain_config, to_peer

from rawtcp.core.segment import Options, Segment

PEER_MSS = 1460
TS_BYTES = 12          # NOP NOP kind=8 len=10 (RFC 7323 appendix A layout)


def _sack_bytes(blocks: int) -> int:
    """NOP NOP kind=5 len=2+8n (RFC 2018 3)."""
    return 4 + 8 * blocks


def _option_bytes(seg: Segment) -> int:
    """TCP option bytes of a data segment (only timestamps and SACK may ride on data)."""
    o = seg.options
    assert o.mss is None and o.wscale is None and not o.sack_permitted
    return (TS_BYTES if o.timestamps is not None else 0) + (
        _sack_bytes(len(o.sack_blocks)) if o.sack_blocks else 0)


def test_data_segments_with_sack_blocks_fit_the_peer_mss() -> None:
    """RFC 9293 3.7.1 and RFC 2018 3: SACK blocks on data take room from the payload, so
    options + payload <= the peer's MSS (1460 - 12 timestamps - 12 one block = 1436)."""
    h = Harness(plain_config(window_scaling=True, sack=True, timestamps=True))
    tcb = h.connect()
    h.recv([to_peer(seq=ISS, ack=0, flags="S", opts=Options(
        mss=1460, wscale=0, sack_permitted=True, timestamps=(0, 0)))])
    h.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA", win=65535, opts=Options(
        mss=PEER_MSS, sack_permitted=True, timestamps=(1, 1), wscale=7)), at=RTT)
    h.recv([to_peer(opts=Options(timestamps=(10, 1)))])
    assert tcb.info()["sack"] and tcb.info()["timestamps"]
    # The peer's segment PISS+1.. (1000 bytes) is lost; PISS+1001.. arrives: a hole, so the
    # duplicate ACK and every later segment carry one SACK block.
    block = (PISS + 1001, PISS + 2001)
    h.send(from_peer(seq=PISS + 1001, opts=Options(timestamps=(2, 1)), payload=b"y" * 1000),
           at=RTT)
    h.recv([to_peer(opts=Options(timestamps=(10, 1), sack_blocks=(block,)))])
    tcb.send(b"x" * 20000, RTT)
    data = [s for s in h.take() if s.payload]
    assert data, "nothing sent"
    assert all(s.options.sack_blocks == (block,) for s in data)      # SACK rides on data
    for s in data:
        assert _option_bytes(s) + len(s.payload) <= PEER_MSS, (_option_bytes(s), len(s.payload))
    assert max(len(s.payload) for s in data) == PEER_MSS - TS_BYTES - _sack_bytes(1)
