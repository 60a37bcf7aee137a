"""Builders for test packets that do not go through either codec under test.

Checksums here use Scapy's ``checksum`` (RFC 1071), not the fast codec's big-integer trick,
so a test that builds bytes with these helpers checks the codecs against a third party.
"""

from __future__ import annotations

import ipaddress
import struct

from scapy.utils import checksum


def tcp_bytes(
    src: str,
    dst: str,
    *,
    sport: int = 40000,
    dport: int = 80,
    seq: int = 1,
    ack: int = 0,
    flags: int = 0x02,
    window: int = 65535,
    urgent: int = 0,
    options: bytes = b"",
    payload: bytes = b"",
    offset_words: int | None = None,
    fix_checksum: bool = True,
) -> bytes:
    """A TCP segment with raw option bytes (padded with nothing: pass a multiple of 4)."""
    words = offset_words if offset_words is not None else 5 + len(options) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, words << 4, flags, window, 0, urgent)
    seg = hdr + options + payload
    if fix_checksum:
        seg = set_tcp_checksum(seg, src, dst)
    return seg


def pseudo_header(src: str, dst: str, length: int) -> bytes:
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version == 4:
        return a.packed + b.packed + struct.pack("!BBH", 0, 6, length)
    return a.packed + b.packed + struct.pack("!I3xB", length, 6)


def set_tcp_checksum(seg: bytes, src: str, dst: str) -> bytes:
    if len(seg) < 18:
        return seg
    zeroed = seg[:16] + b"\0\0" + seg[18:]
    ck = checksum(pseudo_header(src, dst, len(seg)) + zeroed)
    return zeroed[:16] + struct.pack("!H", ck) + zeroed[18:]


def ipv4_bytes(
    src: str,
    dst: str,
    payload: bytes,
    *,
    proto: int = 6,
    ihl: int = 5,
    ip_options: bytes = b"",
    total: int | None = None,
    flags_frag: int = 0x4000,
    ttl: int = 64,
    ident: int = 0,
    fix_checksum: bool = True,
) -> bytes:
    tot = total if total is not None else 20 + len(ip_options) + len(payload)
    hdr = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            0,
            tot,
            ident,
            flags_frag,
            ttl,
            proto,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        + ip_options
    )
    if fix_checksum:
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6_bytes(
    src: str,
    dst: str,
    payload: bytes,
    *,
    nh: int = 6,
    plen: int | None = None,
    hlim: int = 64,
) -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s",
            0x60000000,
            plen if plen is not None else len(payload),
            nh,
            hlim,
            ipaddress.IPv6Address(src).packed,
            ipaddress.IPv6Address(dst).packed,
        )
        + payload
    )


def ext_header(nh: int, body: bytes = b"\0" * 6) -> bytes:
    """An IPv6 extension header (hop-by-hop / routing / dest-opts layout); len(body) = 8k+6."""
    assert (len(body) + 2) % 8 == 0
    return bytes([nh, (len(body) + 2) // 8 - 1]) + body


def fix_checksums(packet: bytes) -> bytes:
    """Recompute the IPv4 header and TCP checksums of a possibly mutated packet, where the
    headers are sane enough to find them; otherwise return it unchanged."""
    if not packet:
        return packet
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        ihl = (packet[0] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        if 20 <= ihl <= len(packet):
            hdr = packet[:10] + b"\0\0" + packet[12:ihl]
            packet = hdr[:10] + struct.pack("!H", checksum(hdr)) + packet[12:]
        if 20 <= ihl <= total <= len(packet):
            src = str(ipaddress.IPv4Address(packet[12:16]))
            dst = str(ipaddress.IPv4Address(packet[16:20]))
            seg = set_tcp_checksum(packet[ihl:total], src, dst)
            packet = packet[:ihl] + seg + packet[total:]
    elif version == 6 and len(packet) >= 40:
        end = 40 + struct.unpack_from("!H", packet, 4)[0]
        if packet[6] == 6 and end <= len(packet):
            src = str(ipaddress.IPv6Address(packet[8:24]))
            dst = str(ipaddress.IPv6Address(packet[24:40]))
            packet = packet[:40] + set_tcp_checksum(packet[40:end], src, dst) + packet[end:]
    return packet
