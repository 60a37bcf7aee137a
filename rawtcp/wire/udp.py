"""UDP (RFC 768) and ICMP/ICMPv6 error messages (RFC 792, RFC 4443): the fast codec.

Kept apart from :mod:`rawtcp.wire.fast` so the TCP receive path does not change: the runtime
calls :func:`decode_non_tcp` only for a packet the TCP decoder refused as ``not-tcp``.

Checksums: UDP over IPv4 may carry 0 = "no checksum" (RFC 768, "If the computed checksum is
zero, it is transmitted as all ones"; a received 0 is not verified); we always send one.
Over IPv6 the UDP checksum is mandatory (RFC 8200 8.1): a received 0 is ``udp-no-checksum``.
ICMPv4 sums the ICMP message only (RFC 792), ICMPv6 adds the pseudo-header with next header
58 (RFC 4443 2.3).

An ICMP error quotes the packet that caused it (RFC 792: the IP header + 64 bits of data;
RFC 1812 4.3.2.3 / RFC 4443 2.4(c): as much as fits in 576 / 1280 bytes). The decoder reads
the quoted IP header and the first 8 transport bytes (ports; the sequence number for TCP),
which is all RFC 5927 needs to find the socket. Other ICMP messages (echo, redirects, ...)
are ``icmp-not-error`` and dropped.
"""

from __future__ import annotations

import struct

from rawtcp.core.datagram import (
    _ERROR_TYPES,
    KIND_CODES,
    Datagram,
    IcmpError,
    icmp_kind,
    port_unreachable,
    quote_limit,
)
from rawtcp.wire.errors import ParseError
from rawtcp.wire.fast import internet_checksum, walk_ip
from rawtcp.wire.layout import PROTO_TCP, address_pair, address_str

__all__ = ["KIND_CODES", "PROTO_ICMP", "PROTO_ICMP6", "PROTO_UDP", "Datagram", "IcmpError",
           "decode_non_tcp", "encode_datagram", "encode_icmp_error", "encode_udp",
           "icmp_kind", "port_unreachable", "quote_limit"]

PROTO_UDP = 17
PROTO_ICMP = 1
PROTO_ICMP6 = 58

_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_ICMP = struct.Struct("!BBHI")       # type code checksum rest-of-header
_DF = 0x4000

# ------------------------------------------------------------------------------ encoding
def _ip(version: int, a: bytes, b: bytes, proto: int, body: bytes, ttl: int = 64) -> bytes:
    if version == 4:
        fields = [0x45, 0, 20 + len(body), 0, _DF, ttl, proto, 0, a, b]
        fields[7] = internet_checksum(_IP4.pack(*fields))
        return _IP4.pack(*fields) + body
    return _IP6.pack(0x60000000, len(body), proto, ttl, a, b) + body


def _pseudo_sum(a: bytes, b: bytes, proto: int, length: int) -> int:
    return int.from_bytes(a + b, "big") + proto + length


def _fold(total: int) -> int:
    r = total % 0xFFFF or (0xFFFF if total else 0)
    return 0xFFFF - r


def _body_int(data: bytes) -> int:
    n = int.from_bytes(data, "big")
    return n << 8 if len(data) & 1 else n


def encode_udp(d: Datagram) -> bytes:
    """UDP header + payload, checksum over the pseudo-header (0 is sent as 0xffff)."""
    version, a, b = address_pair(d.src, d.dst)
    return _udp(d, a, b)


def _udp(d: Datagram, a: bytes, b: bytes) -> bytes:
    payload = bytes(d.payload)
    length = 8 + len(payload)
    try:
        hdr = _UDP.pack(d.sport, d.dport, length, 0)
    except struct.error as e:
        raise ValueError(f"datagram field out of range: {e} ({d})") from None
    if length > 0xFFFF:
        raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
    csum = _fold(_pseudo_sum(a, b, PROTO_UDP, length) + _body_int(hdr) + _body_int(payload))
    return _UDP.pack(d.sport, d.dport, length, csum or 0xFFFF) + payload


def encode_datagram(d: Datagram, ttl: int = 64) -> bytes:
    """A whole IPv4 (DF set) or IPv6 packet carrying ``d``."""
    version, a, b = address_pair(d.src, d.dst)
    return _ip(version, a, b, PROTO_UDP, _udp(d, a, b), ttl)


def _synth_quote(e: IcmpError, version: int) -> bytes:
    """The quoted packet when none was given: its IP header + 8 transport bytes."""
    _v, a, b = address_pair(e.qsrc, e.qdst)
    if e.proto == PROTO_TCP:
        l4 = struct.pack("!HHI", e.qsport, e.qdport, e.qseq)
    else:
        l4 = _UDP.pack(e.qsport, e.qdport, 8, 0)
    return _ip(version, a, b, e.proto, l4)


def encode_icmp_error(e: IcmpError, ttl: int = 64) -> bytes:
    """A whole IPv4+ICMP or IPv6+ICMPv6 error packet."""
    version, a, b = address_pair(e.src, e.dst)
    quote = bytes(e.quote) if e.quote else _synth_quote(e, version)
    quote = quote[:quote_limit(version)]
    rest = e.mtu if version == 6 else (e.mtu & 0xFFFF)
    hdr = _ICMP.pack(e.type, e.code, 0, rest)
    if version == 4:
        csum = internet_checksum(hdr + quote)
        return _ip(4, a, b, PROTO_ICMP, _ICMP.pack(e.type, e.code, csum, rest) + quote, ttl)
    length = 8 + len(quote)
    csum = _fold(_pseudo_sum(a, b, PROTO_ICMP6, length) + _body_int(hdr) + _body_int(quote))
    return _ip(6, a, b, PROTO_ICMP6, _ICMP.pack(e.type, e.code, csum, rest) + quote, ttl)


# ------------------------------------------------------------------------------ decoding
def _decode_udp(data: bytes, version: int, a: bytes, b: bytes, verify: bool) -> Datagram:
    n = len(data)
    if n < 8:
        raise ParseError("short", f"UDP datagram of {n} bytes, need 8")
    sport, dport, length, csum = _UDP.unpack_from(data)
    if length < 8 or length > n:
        raise ParseError("bad-udp-length", f"UDP length {length} with {n} bytes")
    data = data[:length]   # RFC 768: the length field counts; bytes past it are padding
    if csum == 0:
        if version == 6:
            raise ParseError("udp-no-checksum", "UDP over IPv6 without a checksum (RFC 8200 8.1)")
    elif verify and (_pseudo_sum(a, b, PROTO_UDP, length) + _body_int(data)) % 0xFFFF:
        raise ParseError("bad-udp-checksum", "UDP checksum does not verify")
    return Datagram(address_str(a), address_str(b), sport, dport, data[8:])


def _decode_icmp(data: bytes, version: int, a: bytes, b: bytes, verify: bool) -> IcmpError:
    n = len(data)
    if n < 8:
        raise ParseError("short", f"ICMP message of {n} bytes, need 8")
    type_, code, _csum, rest = _ICMP.unpack_from(data)
    if verify:
        total = _body_int(data)
        if version == 6:
            total += _pseudo_sum(a, b, PROTO_ICMP6, n)
        if total % 0xFFFF:
            raise ParseError("bad-icmp-checksum", "ICMP checksum does not verify")
    if type_ not in _ERROR_TYPES[version]:
        raise ParseError("icmp-not-error", f"ICMP type {type_} is not an error message")
    quote = data[8:]
    # the quoted packet: its header must be whole; its lengths and checksums are not checked
    # (the sender may have cut it short; RFC 1122 3.2.2 asks only for header + 8 bytes)
    qn = len(quote)
    if qn == 0 or quote[0] >> 4 != version:
        raise ParseError("bad-icmp-quote", "the quoted packet is not of the same IP version")
    if version == 4:
        ihl = (quote[0] & 0x0F) << 2
        if ihl < 20 or qn < ihl + 8:
            raise ParseError("bad-icmp-quote", f"quoted IPv4 header + 8 bytes cut off ({qn})")
        proto, qa, qb, i = quote[9], quote[12:16], quote[16:20], ihl
    else:
        if qn < 48:
            raise ParseError("bad-icmp-quote", f"quoted IPv6 header + 8 bytes cut off ({qn})")
        proto, qa, qb, i = quote[6], quote[8:24], quote[24:40], 40
    qsport, qdport, qseq = struct.unpack_from("!HHI", quote, i)
    if proto != PROTO_TCP:
        qseq = 0
    mtu = rest if version == 6 and type_ == 2 else (rest & 0xFFFF if (type_, code) == (3, 4)
                                                    and version == 4 else 0)
    return IcmpError(address_str(a), address_str(b), type_, code, proto, address_str(qa),
                     address_str(qb), qsport, qdport, qseq, mtu, quote)


def decode_non_tcp(data: bytes, verify: bool = True) -> Datagram | IcmpError:
    """Parse an IP packet carrying UDP or an ICMP/ICMPv6 error.

    Raises ParseError: the IP reasons of :func:`rawtcp.wire.fast.decode_ip`, plus
    ``not-udp`` (another protocol), ``bad-udp-length``, ``bad-udp-checksum``,
    ``udp-no-checksum``, ``bad-icmp-checksum``, ``icmp-not-error``, ``bad-icmp-quote``.
    """
    if type(data) is not bytes:
        data = bytes(data)
    version, start, end, a, b, proto = walk_ip(data, verify)
    if proto == PROTO_UDP:
        return _decode_udp(data[start:end], version, a, b, verify)
    if (version, proto) in ((4, PROTO_ICMP), (6, PROTO_ICMP6)):
        return _decode_icmp(data[start:end], version, a, b, verify)
    raise ParseError("not-udp", f"IP protocol {proto} is neither TCP, UDP nor ICMP")


def corrupt_checksum_non_tcp(ip_packet: bytes) -> bytes:
    """The same UDP or ICMP packet with one bit of its transport checksum flipped (fault
    injection, like :func:`rawtcp.wire.fast.corrupt_checksum` for TCP)."""
    data = bytes(ip_packet)
    version, start, end, _a, _b, proto = walk_ip(data, verify=False)
    off = 6 if proto == PROTO_UDP else 2
    if end - start < off + 2:
        raise ParseError("short", "no room for a checksum")
    out = bytearray(data)
    out[start + off + 1] ^= 0x01
    return bytes(out)
