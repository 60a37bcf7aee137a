"""The Scapy reference for :mod:`rawtcp.wire.udp`: UDP datagrams and ICMP/ICMPv6 errors.

Scapy builds the headers and computes lengths and checksums (``in4_chksum``/``in6_chksum``
for verification); the length checks that turn bad input into :class:`ParseError` are done
first over the raw bytes, in the order the fast codec documents. The property tests in
``tests/wire/test_udp_wire.py`` show both codecs give the same bytes and the same values.
"""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP, in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from rawtcp.wire.errors import ParseError
from rawtcp.wire.layout import IPV6_FRAGMENT, IPV6_SKIPPED, PROTO_TCP, address_pair, address_str
from rawtcp.wire.udp import (
    _ERROR_TYPES,
    PROTO_ICMP,
    PROTO_ICMP6,
    PROTO_UDP,
    Datagram,
    IcmpError,
    quote_limit,
)

__all__ = ["decode_non_tcp", "encode_datagram", "encode_icmp_error"]


def _ip(version: int, src: str, dst: str, proto: int, ttl: int):
    if version == 4:
        return IP(src=src, dst=dst, ttl=ttl, id=0, flags="DF", proto=proto)
    return IPv6(src=src, dst=dst, hlim=ttl, nh=proto)


def encode_datagram(d: Datagram, ttl: int = 64) -> bytes:
    version, _a, _b = address_pair(d.src, d.dst)
    if not (0 <= d.sport <= 0xFFFF and 0 <= d.dport <= 0xFFFF):
        raise ValueError(f"datagram field out of range ({d})")
    return bytes(_ip(version, d.src, d.dst, PROTO_UDP, ttl)
                 / UDP(sport=d.sport, dport=d.dport) / Raw(load=bytes(d.payload)))


def encode_icmp_error(e: IcmpError, ttl: int = 64) -> bytes:
    version, _a, _b = address_pair(e.src, e.dst)
    quote = bytes(e.quote)
    if not quote:
        if e.proto == PROTO_TCP:
            l4 = e.qsport.to_bytes(2, "big") + e.qdport.to_bytes(2, "big") \
                + e.qseq.to_bytes(4, "big")
        else:
            l4 = bytes(UDP(sport=e.qsport, dport=e.qdport, len=8, chksum=0))
        quote = bytes(_ip(version, e.qsrc, e.qdst, e.proto, 64) / Raw(load=l4))
    quote = quote[:quote_limit(version)]
    rest = (e.mtu if version == 6 else e.mtu & 0xFFFF).to_bytes(4, "big")
    if version == 4:
        hdr = bytes([e.type, e.code, 0, 0]) + rest
        csum = scapy_checksum(hdr + quote)
        body = bytes([e.type, e.code]) + csum.to_bytes(2, "big") + rest + quote
        assert ICMP(body).type == e.type    # Scapy reads back what was built
        return bytes(_ip(4, e.src, e.dst, PROTO_ICMP, ttl) / Raw(load=body))
    hdr = bytes([e.type, e.code, 0, 0]) + rest
    csum = in6_chksum(PROTO_ICMP6, IPv6(src=e.src, dst=e.dst), hdr + quote)
    body = bytes([e.type, e.code]) + csum.to_bytes(2, "big") + rest + quote
    return bytes(_ip(6, e.src, e.dst, PROTO_ICMP6, ttl) / Raw(load=body))


def _walk(data: bytes, verify: bool) -> tuple[int, bytes, str, str, int, object]:
    n = len(data)
    if n == 0:
        raise ParseError("short", "empty packet")
    version = data[0] >> 4
    if version == 4:
        if n < 20:
            raise ParseError("short", f"IPv4 packet of {n} bytes, need 20")
        ip = IP(data[:20])
        ihl = ip.ihl * 4
        if ihl < 20:
            raise ParseError("bad-ihl", f"IPv4 header length {ihl}")
        if ip.len > n:
            raise ParseError("truncated", f"IPv4 total length {ip.len}, have {n} bytes")
        if ihl > ip.len:
            raise ParseError("bad-ihl", f"IPv4 header length {ihl} > total length {ip.len}")
        if verify and scapy_checksum(data[:ihl]) != 0:
            raise ParseError("bad-ip-checksum", "IPv4 header checksum does not verify")
        if ip.flags.MF or ip.frag:
            raise ParseError("fragment", "IPv4 fragment")
        return 4, data[ihl:ip.len], address_str(data[12:16]), address_str(data[16:20]), \
            ip.proto, ip
    if version == 6:
        if n < 40:
            raise ParseError("short", f"IPv6 packet of {n} bytes, need 40")
        ip = IPv6(data[:40])
        end = 40 + ip.plen
        if end > n:
            raise ParseError("truncated", f"IPv6 payload length {ip.plen}, have {n - 40}")
        nh, i = ip.nh, 40
        while nh in IPV6_SKIPPED:
            if i + 2 > end:
                raise ParseError("truncated", f"IPv6 extension header {nh} cut off")
            hlen = (data[i + 1] + 1) * 8
            if i + hlen > end:
                raise ParseError("truncated", f"IPv6 extension header {nh} overruns payload")
            if nh == 43 and data[i + 3] != 0:
                raise ParseError("routing-header", f"segments left {data[i + 3]}")
            nh, i = data[i], i + hlen
        if nh == IPV6_FRAGMENT:
            raise ParseError("fragment", "IPv6 fragment header")
        return 6, data[i:end], address_str(data[8:24]), address_str(data[24:40]), nh, ip
    raise ParseError("bad-version", f"IP version {version}")


def _pseudo(version: int, src: str, dst: str):
    return IP(src=src, dst=dst) if version == 4 else IPv6(src=src, dst=dst)


def decode_non_tcp(data: bytes, verify: bool = True) -> Datagram | IcmpError:
    data = bytes(data)
    version, body, src, dst, proto, _ip_hdr = _walk(data, verify)
    if proto == PROTO_UDP:
        if len(body) < 8:
            raise ParseError("short", f"UDP datagram of {len(body)} bytes, need 8")
        u = UDP(body[:8])
        if u.len < 8 or u.len > len(body):
            raise ParseError("bad-udp-length", f"UDP length {u.len} with {len(body)} bytes")
        body = body[:u.len]
        if u.chksum == 0:
            if version == 6:
                raise ParseError("udp-no-checksum", "UDP over IPv6 without a checksum")
        elif verify:
            p = _pseudo(version, src, dst)
            sumf = in4_chksum if version == 4 else in6_chksum
            if sumf(PROTO_UDP, p, body) not in (0, 0xFFFF):
                raise ParseError("bad-udp-checksum", "UDP checksum does not verify")
        return Datagram(src, dst, u.sport, u.dport, body[8:])
    if (version, proto) not in ((4, PROTO_ICMP), (6, PROTO_ICMP6)):
        raise ParseError("not-udp", f"IP protocol {proto} is neither TCP, UDP nor ICMP")
    if len(body) < 8:
        raise ParseError("short", f"ICMP message of {len(body)} bytes, need 8")
    if verify:
        ok = (scapy_checksum(body) == 0 if version == 4 else
              in6_chksum(PROTO_ICMP6, _pseudo(6, src, dst), body) in (0, 0xFFFF))
        if not ok:
            raise ParseError("bad-icmp-checksum", "ICMP checksum does not verify")
    type_, code = body[0], body[1]
    rest = int.from_bytes(body[4:8], "big")
    if type_ not in _ERROR_TYPES[version]:
        raise ParseError("icmp-not-error", f"ICMP type {type_} is not an error message")
    quote = body[8:]
    if not quote or quote[0] >> 4 != version:
        raise ParseError("bad-icmp-quote", "the quoted packet is not of the same IP version")
    if version == 4:
        q = IP(quote[:20]) if len(quote) >= 20 else None
        ihl = (quote[0] & 0x0F) * 4
        if q is None or ihl < 20 or len(quote) < ihl + 8:
            raise ParseError("bad-icmp-quote", "quoted IPv4 header + 8 bytes cut off")
        qproto, qsrc, qdst, l4 = q.proto, q.src, q.dst, quote[ihl:ihl + 8]
    else:
        if len(quote) < 48:
            raise ParseError("bad-icmp-quote", "quoted IPv6 header + 8 bytes cut off")
        qproto, l4 = quote[6], quote[40:48]
        qsrc, qdst = address_str(quote[8:24]), address_str(quote[24:40])
    qsport = int.from_bytes(l4[0:2], "big")
    qdport = int.from_bytes(l4[2:4], "big")
    qseq = int.from_bytes(l4[4:8], "big") if qproto == PROTO_TCP else 0
    if version == 6:
        mtu = rest if type_ == 2 else 0
    else:
        mtu = rest & 0xFFFF if (type_, code) == (3, 4) else 0
    return IcmpError(src, dst, type_, code, qproto, address_str(_packed(qsrc)),
                     address_str(_packed(qdst)), qsport, qdport, qseq, mtu, quote)


def _packed(text: str) -> bytes:
    import ipaddress

    return ipaddress.ip_address(text).packed
