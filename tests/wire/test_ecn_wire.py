"""The IP ECN field (RFC 3168 5) through both codecs: ECT(0) and CE in IPv4's TOS byte and
IPv6's Traffic Class, read back into Segment.ecn; the TCP-level codecs ignore it."""

from __future__ import annotations

import pytest

from rawtcp.core.segment import CE, ECT0, Packet, Segment
from rawtcp.wire import fast
from rawtcp.wire import scapy_codec as ref


@pytest.mark.parametrize("src, dst", [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")])
@pytest.mark.parametrize("ecn", [0, ECT0, CE])
def test_ecn_codepoint_on_the_ip_header_both_codecs(src: str, dst: str, ecn: int) -> None:
    pkt = Packet(src, dst, Segment(1, 2, 3, 4, 0x10, 100, payload=b"x", ecn=ecn))
    raw = fast.encode_ip(pkt)
    assert raw == ref.encode_ip(pkt)
    if ":" in src:
        assert (int.from_bytes(raw[:4], "big") >> 20) & 0xFF == ecn   # Traffic Class
    else:
        assert raw[1] == ecn                                           # TOS
    assert fast.decode_ip(raw) == pkt == ref.decode_ip(raw)
    assert ref.from_scapy(ref.to_scapy(pkt)).segment.ecn == ecn
    assert fast.decode_tcp(fast.encode_tcp(pkt.segment, src, dst), src, dst).ecn == 0
