"""The reference codec, built on Scapy: the packet model users see.

Scapy lays out the headers, computes lengths and checksums when building, and splits the
fixed header fields when parsing.  Scapy is lenient about malformed input (it guesses, or
in a few places raises a raw ``struct.error``: in 2.8.0 a TCP-AO option of length 3 does),
so the length and sanity checks that turn bad input into :class:`ParseError` are done here
first, over the raw bytes, in the order documented for the fast codec.  Two details are
deliberately not handed to Scapy's dissector:

* TCP options: we walk the kind/length list ourselves and let Scapy decode the value of
  each option we understand (MSS, WS, SACK-permitted, SACK, timestamps) from its own
  one-option slice; unknown kinds are skipped without Scapy.
* IPv6 extension headers: their chain is walked over the raw bytes (Scapy's extension
  header classes parse TLV options that may themselves be malformed).

The property tests in ``tests/wire`` show this codec and :mod:`rawtcp.wire.fast` produce the
same bytes for every segment and agree on every input, valid or not.
"""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, TCPOptionsField, in4_chksum
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from rawtcp.core.segment import Flags, Options, Packet, Segment
from rawtcp.wire.errors import ParseError
from rawtcp.wire.layout import (
    FIXED_LENGTH,
    IPV6_FRAGMENT,
    IPV6_SKIPPED,
    PROTO_TCP,
    address_pair,
    address_str,
    check_ip_args,
    check_segment,
)

__all__ = ["decode_ip", "decode_tcp", "encode_ip", "encode_tcp", "from_scapy", "to_scapy"]

_OPTIONS_FIELD: TCPOptionsField = next(f for f in TCP.fields_desc if f.name == "options")
_SCAPY_NAME = {2: "MSS", 3: "WScale", 4: "SAckOK", 5: "SAck", 8: "Timestamp"}


# ------------------------------------------------------------------------------- building


def _scapy_options(o: Options) -> list[tuple[str, object]]:
    """The canonical layout (see rawtcp.wire.layout) as a Scapy option list."""
    out: list[tuple[str, object]] = []
    if o.mss is not None:
        out.append(("MSS", o.mss))
    if o.timestamps is not None:
        if o.sack_permitted:
            out.append(("SAckOK", b""))
        else:
            out += [("NOP", None), ("NOP", None)]
        out.append(("Timestamp", tuple(o.timestamps)))
    if o.sack_permitted and o.timestamps is None:
        out += [("NOP", None), ("NOP", None), ("SAckOK", b"")]
    if o.wscale is not None:
        out += [("NOP", None), ("WScale", o.wscale)]
    if o.sack_blocks:
        edges = tuple(edge for block in o.sack_blocks for edge in block)
        out += [("NOP", None), ("NOP", None), ("SAck", edges)]
    return out


def _tcp_layer(seg: Segment) -> TCP:
    check_segment(seg)
    t = TCP(
        sport=seg.src_port,
        dport=seg.dst_port,
        seq=seg.seq,
        ack=seg.ack,
        flags=int(seg.flags),
        window=seg.window,
        urgptr=seg.urgent,
        options=_scapy_options(seg.options),
    )
    if seg.payload:
        t = t / Raw(load=bytes(seg.payload))
    return t


def _ip_layer(src: str, dst: str, ttl: int, ident: int, ecn: int = 0) -> ScapyPacket:
    version, _a, _b = address_pair(src, dst)  # validates before Scapy sees (or resolves) it
    check_ip_args(ttl, ident)
    if version == 4:
        return IP(src=src, dst=dst, ttl=ttl, id=ident, flags="DF", proto=PROTO_TCP,
                  tos=ecn & 3)
    return IPv6(src=src, dst=dst, hlim=ttl, nh=PROTO_TCP, tc=ecn & 3)


def _build(pkt: Packet, ttl: int, ident: int) -> tuple[bytes, int]:
    ip = _ip_layer(pkt.src, pkt.dst, ttl, ident, pkt.segment.ecn)
    raw = bytes(ip / _tcp_layer(pkt.segment))
    if len(raw) > 65535 + (40 if isinstance(ip, IPv6) else 0):
        raise ValueError(f"packet of {len(raw)} bytes does not fit the IP length field")
    return raw, 20 if isinstance(ip, IP) else 40


def encode_tcp(seg: Segment, src: str, dst: str) -> bytes:
    """TCP header + options + payload, checksum over the IPv4/IPv6 pseudo-header."""
    raw, hlen = _build(Packet(src, dst, seg), 64, 0)
    return raw[hlen:]


def encode_ip(pkt: Packet, ttl: int = 64, ident: int = 0) -> bytes:
    """A whole IPv4 (DF set, no options) or IPv6 (no extension headers) packet."""
    return _build(pkt, ttl, ident)[0]


def to_scapy(pkt: Packet, ttl: int = 64, ident: int = 0) -> ScapyPacket:
    """``IP/TCP`` or ``IPv6/TCP`` with every field (lengths, checksums) filled in."""
    raw, _ = _build(pkt, ttl, ident)
    return IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)


# -------------------------------------------------------------------------------- parsing


def _scapy_option_value(kind: int, tlv: bytes) -> object:
    [(name, value)] = _OPTIONS_FIELD.m2i(None, tlv)
    if name != _SCAPY_NAME[kind]:  # pragma: no cover - Scapy's table changed
        raise AssertionError(f"scapy decoded option {kind} as {name}")
    return value


def _options(raw: bytes) -> Options:
    mss = wscale = ts = None
    sack_perm = False
    sack: tuple[tuple[int, int], ...] = ()
    i, end = 0, len(raw)
    while i < end:
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 == end:
            raise ParseError("option-overrun", f"option kind {kind} has no length byte")
        length = raw[i + 1]
        if length < 2:
            raise ParseError("bad-option-length", f"option kind {kind} length {length}")
        if i + length > end:
            raise ParseError("option-overrun", f"option kind {kind} length {length}")
        tlv = raw[i : i + length]
        if kind in FIXED_LENGTH and length != FIXED_LENGTH[kind]:
            raise ParseError("bad-option-length", f"option kind {kind} length {length}")
        if kind == 5 and (length < 10 or (length - 2) % 8):
            raise ParseError("bad-option-length", f"SACK option length {length}")
        if kind == 2:
            mss = _scapy_option_value(kind, tlv)
        elif kind == 3:
            wscale = _scapy_option_value(kind, tlv)
        elif kind == 4:
            sack_perm = True
        elif kind == 8:
            ts = tuple(_scapy_option_value(kind, tlv))  # type: ignore[arg-type]
        elif kind == 5:
            edges = _scapy_option_value(kind, tlv)
            sack = tuple(zip(edges[0::2], edges[1::2]))  # type: ignore[index]
        i += length
    return Options(mss, wscale, sack_perm, sack, ts)  # type: ignore[arg-type]


def decode_tcp(data: bytes, src: str, dst: str, verify: bool = True) -> Segment:
    """Parse a TCP segment that travelled between ``src`` and ``dst`` (see fast.decode_tcp)."""
    data = bytes(data)
    n = len(data)
    if n < 20:
        raise ParseError("short", f"TCP segment of {n} bytes, need 20")
    # Dissect the fixed header only; options are handled by _options (see module doc).
    t = TCP(data[:12] + bytes([0x50 | (data[12] & 0x0F)]) + data[13:20])
    hlen = (data[12] >> 4) * 4
    if hlen < 20:
        raise ParseError("bad-offset", f"TCP data offset {hlen // 4} words")
    if hlen > n:
        raise ParseError("truncated", f"TCP header of {hlen} bytes in a {n}-byte segment")
    if verify:
        version, _a, _b = address_pair(src, dst)
        if version == 4:
            ck = in4_chksum(PROTO_TCP, IP(src=src, dst=dst), data)
        else:
            ck = in6_chksum(PROTO_TCP, IPv6(src=src, dst=dst), data)
        if ck != 0:
            raise ParseError("bad-checksum", "TCP checksum does not verify")
    return Segment(
        src_port=t.sport,
        dst_port=t.dport,
        seq=t.seq,
        ack=t.ack,
        flags=Flags(int(t.flags) & 0xFF),
        window=t.window,
        options=_options(data[20:hlen]),
        payload=data[hlen:],
        urgent=t.urgptr,
    )


def _decode_ip4(data: bytes, verify: bool) -> Packet:
    n = len(data)
    if n < 20:
        raise ParseError("short", f"IPv4 packet of {n} bytes, need 20")
    ip = IP(data[:20])  # fixed header; options are skipped by length
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
    if ip.proto != PROTO_TCP:
        raise ParseError("not-tcp", f"IPv4 protocol {ip.proto}")
    src, dst = address_str(data[12:16]), address_str(data[16:20])
    if (src, dst) != (ip.src, ip.dst):  # pragma: no cover - both are dotted quads
        raise AssertionError("scapy and ipaddress disagree on an IPv4 address")
    seg = decode_tcp(data[ihl : ip.len], src, dst, verify)
    if ip.tos & 3:                       # RFC 3168 5: the ECN field
        seg = seg._replace(ecn=ip.tos & 3)
    return Packet(src, dst, seg)


def _decode_ip6(data: bytes, verify: bool) -> Packet:
    n = len(data)
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
    if nh != PROTO_TCP:
        raise ParseError("not-tcp", f"IPv6 next header {nh}")
    # Canonical form: Scapy's inet_ntop and ipaddress differ on e.g. IPv4-mapped addresses.
    src, dst = address_str(data[8:24]), address_str(data[24:40])
    if (src, dst) != (address_str(_pton6(ip.src)), address_str(_pton6(ip.dst))):
        raise AssertionError("scapy and ipaddress disagree on an IPv6 address")  # pragma: no cover
    seg = decode_tcp(data[i:end], src, dst, verify)
    if ip.tc & 3:                        # RFC 3168 5: the ECN field
        seg = seg._replace(ecn=ip.tc & 3)
    return Packet(src, dst, seg)


def _pton6(text: str) -> bytes:
    import ipaddress

    return ipaddress.IPv6Address(text).packed


def decode_ip(data: bytes, verify: bool = True) -> Packet:
    """Parse a whole IPv4 or IPv6 packet carrying TCP (see fast.decode_ip)."""
    data = bytes(data)
    if not data:
        raise ParseError("short", "empty packet")
    version = data[0] >> 4
    if version == 4:
        return _decode_ip4(data, verify)
    if version == 6:
        return _decode_ip6(data, verify)
    raise ParseError("bad-version", f"IP version {version}")


def from_scapy(p: ScapyPacket) -> Packet:
    """A Scapy packet (``IP/TCP``, ``IPv6/TCP``, possibly under ``Ether``) as a Packet.

    Fields left unset are filled by Scapy's build; the checksums are not verified, so a
    deliberately wrong checksum survives the trip.  Raises ParseError for non-TCP packets.
    """
    layer = p
    while layer is not None and not isinstance(layer, (IP, IPv6)):
        layer = layer.payload if layer.payload else None
    if layer is None:
        raise ParseError("not-tcp", f"no IP or IPv6 layer in {p.summary()}")
    return decode_ip(bytes(layer), verify=False)
