"""Small IP helpers the links need: checksums, header peeks, trimming padding."""

from __future__ import annotations

import ipaddress
import struct


def csum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 Internet checksum (ones' complement of the ones' complement sum)."""
    if len(data) % 2:
        data += b"\0"
    s = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def ip_version(pkt: bytes) -> int:
    return pkt[0] >> 4 if pkt else 0


def addresses_of(pkt: bytes) -> tuple[str, str] | None:
    """(src, dst) of an IPv4/IPv6 packet in canonical form, None when too short."""
    v = ip_version(pkt)
    if v == 4 and len(pkt) >= 20:
        return str(ipaddress.IPv4Address(pkt[12:16])), str(ipaddress.IPv4Address(pkt[16:20]))
    if v == 6 and len(pkt) >= 40:
        return str(ipaddress.IPv6Address(pkt[8:24])), str(ipaddress.IPv6Address(pkt[24:40]))
    return None


def l4(pkt: bytes) -> tuple[int, int] | None:
    """(protocol, offset of the transport header), None when malformed.

    IPv6 extension headers are not walked: the next-header of the fixed header is returned.
    """
    v = ip_version(pkt)
    if v == 4 and len(pkt) >= 20:
        ihl = (pkt[0] & 0x0F) * 4
        if ihl < 20 or len(pkt) < ihl:
            return None
        return pkt[9], ihl
    if v == 6 and len(pkt) >= 40:
        return pkt[6], 40
    return None


def well_formed(pkt: bytes) -> bool:
    """Version, header length and total length agree with the bytes we hold."""
    n = len(pkt)
    if n >= 20 and pkt[0] == 0x45:        # IPv4 without options: every packet of a link
        return 20 <= (pkt[2] << 8 | pkt[3]) <= n
    v = ip_version(pkt)
    if v == 4:
        if len(pkt) < 20:
            return False
        ihl = (pkt[0] & 0x0F) * 4
        total = struct.unpack_from("!H", pkt, 2)[0]
        return ihl >= 20 and ihl <= total <= len(pkt)
    if v == 6:
        return len(pkt) >= 40 and 40 + struct.unpack_from("!H", pkt, 4)[0] <= len(pkt)
    return False


def trim(pkt: bytes) -> bytes:
    """Cut link-layer padding beyond the IP total length (Ethernet pads to 60 bytes)."""
    if ip_version(pkt) == 4:
        return pkt[:struct.unpack_from("!H", pkt, 2)[0]]
    return pkt[:40 + struct.unpack_from("!H", pkt, 4)[0]]


def fix_transport_checksum(pkt: bytes) -> bytes:
    """Recompute the TCP/UDP checksum of a packet whose checksum was left partial.

    Used for frames marked TP_STATUS_CSUMNOTREADY (checksum offload on veth: the sender's
    kernel left only the pseudo-header sum in the field).
    """
    info = l4(pkt)
    if info is None:
        return pkt
    proto, off = info
    if proto == 6:
        field = off + 16
    elif proto == 17:
        field = off + 6
    else:
        return pkt
    if len(pkt) < field + 2:
        return pkt
    src, dst = (pkt[12:16], pkt[16:20]) if ip_version(pkt) == 4 else (pkt[8:24], pkt[24:40])
    seg = bytearray(pkt[off:])
    seg[field - off:field - off + 2] = b"\0\0"
    c = csum(pseudo_header(src, dst, proto, len(seg)) + bytes(seg))
    if proto == 17 and c == 0:
        c = 0xFFFF
    out = bytearray(pkt)
    out[field:field + 2] = struct.pack("!H", c)
    return bytes(out)
