"""RFC 9293 3.7.1 (the MSS counts no TCP options) and RFC 2018 section 3.

A data segment that also carries SACK blocks must shrink its payload so that options plus
payload still fit the peer's MSS: a 1448-byte payload plus timestamps plus one SACK block is
1512 bytes of IP on a 1500-byte link, which the link refuses (seen against Linux when both
directions carried data and the kernel's segments were lost).
"""

import random

from rawtcp.core.config import MS, Config
from rawtcp.core.segment import Flags, Options, Packet, Segment
from rawtcp.core.stack import Stack
from rawtcp.wire.fast import encode_ip

PEER_MSS = 1460


def test_data_segments_with_sack_blocks_fit_the_peer_mss():
    st = Stack(Config(), isn=lambda *a: 1000, rng=random.Random(1))
    tcb = st.connect(st.bind("10.0.0.1", 80), "10.0.0.1", "10.0.0.2", 5000, 0)
    st.take_packets()
    now = 10 * MS

    def peer(seq: int, flags: Flags, opts: Options, payload: bytes = b"") -> None:
        st.on_packet(Packet("10.0.0.2", "10.0.0.1",
                            Segment(5000, 80, seq, 1001, flags, 65535, opts, payload)), now)

    peer(5000, Flags.SYN | Flags.ACK,
         Options(mss=PEER_MSS, sack_permitted=True, timestamps=(1, 1), wscale=7))
    st.take_packets()
    assert tcb.info()["sack"] and tcb.info()["timestamps"]
    # The peer's segment 5001..6001 is lost; 6001..7001 arrives: a hole, so SACK blocks.
    peer(6001, Flags.ACK, Options(timestamps=(2, 1)), b"y" * 1000)
    st.take_packets()
    tcb.send(b"x" * 20000, now)
    data = [p for p in st.take_packets() if p.segment.payload]
    assert data, "nothing sent"
    assert all(p.segment.options.sack_blocks for p in data)       # SACK rides on data
    for p in data:
        assert len(encode_ip(p)) <= PEER_MSS + 40, (len(encode_ip(p)), len(p.segment.payload))
    assert max(len(p.segment.payload) for p in data) == PEER_MSS - 12 - 12  # ts, 1 block
