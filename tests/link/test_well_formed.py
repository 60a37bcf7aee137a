"""inet.well_formed, the check every link makes before handing a packet up: the IP version,
header length and total length agree with the bytes held (its IPv4 fast path included)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from rawtcp.link.inet import well_formed


def _expected(pkt: bytes) -> bool:
    """The rule spelled out: IPv4 IHL >= 20 and IHL <= total length <= bytes held; IPv6 40
    bytes of header plus the payload length within the bytes held; nothing else."""
    if pkt and pkt[0] >> 4 == 4:
        if len(pkt) < 20:
            return False
        ihl = (pkt[0] & 0x0F) * 4
        total = struct.unpack_from("!H", pkt, 2)[0]
        return 20 <= ihl <= total <= len(pkt)
    if pkt and pkt[0] >> 4 == 6:
        return len(pkt) >= 40 and 40 + struct.unpack_from("!H", pkt, 4)[0] <= len(pkt)
    return False


@given(st.sampled_from([0x45, 0x46, 0x4F, 0x44, 0x60, 0x30]),
       st.binary(max_size=80), st.integers(0, 100) | st.none())
def test_well_formed_follows_the_rule(first: int, rest: bytes, total: int | None) -> None:
    pkt = bytearray([first]) + rest
    if total is not None and len(pkt) >= 6:
        struct.pack_into("!H", pkt, 4 if first >> 4 == 6 else 2, total)
    assert well_formed(bytes(pkt)) == _expected(bytes(pkt))


def test_edges() -> None:
    hdr = bytearray(20)
    hdr[0] = 0x45
    for total, ok in ((19, False), (20, True), (21, False)):
        struct.pack_into("!H", hdr, 2, total)
        assert well_formed(bytes(hdr)) is ok
    assert not well_formed(b"") and not well_formed(b"\x45" * 19)
