"""The hot-path codec: ``struct`` and big-integer checksums, no Scapy.

Checksums (RFC 1071): the one's-complement sum of 16-bit words is congruent to the buffer
read as one big-endian integer, modulo 0xffff (because 2**16 == 1 mod 0xffff).  So a whole
segment is summed with one ``int.from_bytes`` and one ``%``, with no per-word Python loop.
Pieces that start at even offsets can be summed separately and added.  The one subtlety is
that the folded sum is never 0 for our inputs (the pseudo-header holds protocol 6), so
"folded sum == 0xffff" is the same as "integer sum % 0xffff == 0", which is how a received
segment verifies (RFC 9293 section 3.1, "Checksum").

Option layout and decoding rules: see :mod:`rawtcp.wire.layout`.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

from rawtcp.core.segment import (
    NO_OPTIONS,
    Options,
    Packet,
    Segment,
)
from rawtcp.wire.errors import ParseError
from rawtcp.wire.layout import (
    FIXED_LENGTH,
    IPV6_FRAGMENT,
    MAX_OPTIONS,
    PROTO_TCP,
    address_pair,
    address_str,
)

__all__ = [
    "corrupt_checksum",
    "decode_ip",
    "decode_tcp",
    "encode_ip",
    "encode_tcp",
    "fold",
    "internet_checksum",
]

_TCP = struct.Struct("!HHIIBBHHH")  # sport dport seq ack offset flags window csum urgent
_IP6AB = struct.Struct("!IHBB32s")
# IPv4 header (no options) + TCP header, the two addresses as one 8-byte field
_IP4TCP_AB = struct.Struct("!BBHHHBBH8sHHIIBBHHH")
# ... as the decoder reads it: the fields it does not use (version/IHL, ID, TTL, both
# checksums) skipped
_IP4TCP_IN = struct.Struct("!xBH2xHxB2x8sHHIIBBH2xH")
# ... and the timestamps option alone (NOP, NOP, kind 8, length 10, TSval, TSecr): what every
# segment of an established connection carries once timestamps are on (RFC 7323)
_IP4TCP_AB_TS = struct.Struct("!BBHHHBBH8sHHIIBBHHHIII")
_TS_WORD = 0x0101080A   # NOP NOP 8 10 as one 32-bit word
_TS_ONLY = (None, None, False, ())   # Options' other fields when it holds timestamps alone
_H = struct.Struct("!H")
_II = struct.Struct("!II")
_MSS = struct.Struct("!BBH")
_TS = struct.Struct("!4sII")
_WS = struct.Struct("!BBBB")
_TS_SP_PREFIX = b"\x04\x02\x08\x0a"
# the options of a SYN or SYN-ACK from Linux (and from rawtcp): MSS, SACK permitted with
# timestamps, NOP and window scale, 20 bytes (tcp_options_write's order)
_SYN_OPTS = struct.Struct("!BBH4sIIBBBB")
_SYN_WS = b"\x01\x03\x03"
_TS_PREFIX = b"\x01\x01\x08\x0a"
_SP_ALONE = b"\x01\x01\x04\x02"

_DF = 0x4000
_tnew = tuple.__new__


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data`` (what goes in the header field)."""
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    r = n % 0xFFFF
    if r == 0 and n:
        r = 0xFFFF
    return 0xFFFF - r


def _addr_sum(src: str, dst: str) -> tuple[int, int]:
    version, a, b = address_pair(src, dst)
    return version, int.from_bytes(a + b, "big")


# --------------------------------------------------------------------------------------- TCP


def _encode_options(o: Options) -> bytes:
    ts = o.timestamps
    if (o.sack_permitted and o.mss is not None and o.wscale is not None and ts is not None
            and not o.sack_blocks and len(ts) == 2):
        # a SYN's layout in one pack (the same bytes and errors as the parts below)
        return _SYN_OPTS.pack(2, 4, o.mss, _TS_SP_PREFIX, ts[0], ts[1], 1, 3, 3, o.wscale)
    parts = []
    if o.mss is not None:
        parts.append(_MSS.pack(2, 4, o.mss))
    if ts is not None:
        if len(ts) != 2:
            raise ValueError(f"timestamps must be (TSval, TSecr), got {ts!r}")
        parts.append(_TS.pack(_TS_SP_PREFIX if o.sack_permitted else _TS_PREFIX, ts[0], ts[1]))
    if o.sack_permitted and ts is None:
        parts.append(_SP_ALONE)
    if o.wscale is not None:
        parts.append(_WS.pack(1, 3, 3, o.wscale))
    blocks = o.sack_blocks
    if blocks:
        n = len(blocks)
        flat = [edge for block in blocks for edge in block]
        if len(flat) != 2 * n:
            raise ValueError(f"SACK blocks must be (left, right) pairs, got {blocks!r}")
        parts.append(struct.pack(f"!BBBB{2 * n}I", 1, 1, 5, 2 + 8 * n, *flat))
    out = b"".join(parts)
    if len(out) > MAX_OPTIONS:
        raise ValueError(
            f"options need {len(out)} bytes, TCP allows {MAX_OPTIONS}: "
            "drop SACK blocks or timestamps"
        )
    return out


# Checksum folding: a payload read as one integer is reduced by adding its halves (cut at a
# multiple of 16 bits, so the value mod 0xFFFF stays the same) before the one division; the
# three cuts fit a 1,500-byte segment and roughly halve the cost of ``% 0xFFFF`` there.
_FOLDS = tuple((s, (1 << s) - 1) for s in (5792, 2896, 1456))


def fold(n: int) -> int:
    """A smaller integer congruent to ``n`` modulo 0xFFFF (RFC 1071's end-around carry):
    worth it before ``% 0xFFFF`` for more than ~500 bytes."""
    for s, m in _FOLDS:
        n = (n >> s) + (n & m)
    return n


def _payload_sum(payload: bytes | bytearray | memoryview) -> int:
    """The payload's part of the checksum (congruent to its 16-bit word sum mod 0xFFFF; an
    odd length is padded with a zero byte), for any buffer that starts at an even offset."""
    p = int.from_bytes(payload, "big")
    if len(payload) & 1:
        p <<= 8
    return fold(p) if len(payload) > 512 else p


# The segments of one burst share one Options object (rawtcp.core.tcb_output): the last
# one encoded is kept, as a single tuple so that threads never see half of an update.
_last_options: tuple[Options | None, bytes] = (None, b"")


def _options_bytes(o: Options) -> bytes:
    """The options' bytes: none for NO_OPTIONS, the kept ones for the burst's shared object."""
    global _last_options
    if o is NO_OPTIONS:
        return b""
    last = _last_options
    if last[0] is o:
        return last[1]
    out = _encode_options(o)
    _last_options = (o, out)
    return out


def _tcp_parts(seg: Segment, pseudo: int, payload_sum: bool = True) -> tuple[bytes, bytes, Any]:
    """(header with its checksum, options, payload). ``pseudo`` is the address part of the
    pseudo-header sum. The checksum is summed from the field values (each congruent to its
    16-bit words modulo 0xFFFF), so the header is packed once."""
    o = seg.options
    payload = seg.payload
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"payload must be bytes, got {type(payload).__name__}")  # noqa: TRY004
    try:
        opts = _options_bytes(o)
        hlen = 20 + len(opts)
        sport, dport, seq, ack = seg.src_port, seg.dst_port, seg.seq, seg.ack
        flags, window, urgent = seg.flags, seg.window, seg.urgent
        total = (pseudo + PROTO_TCP + hlen + len(payload) + sport + dport + seq + ack
                 + (hlen << 10 | flags) + window + urgent)
        if opts:
            total += int.from_bytes(opts, "big")
        if payload and payload_sum:
            total += _payload_sum(payload)
        r = total % 0xFFFF or 0xFFFF  # total > 0: the pseudo-header holds protocol 6
        hdr = _TCP.pack(sport, dport, seq, ack, hlen << 2, flags, window, 0xFFFF - r, urgent)
    except (struct.error, TypeError, OverflowError) as e:   # out of range, not an integer
        raise ValueError(f"segment field out of range: {e}") from None
    return hdr, opts, payload


def _encode_tcp(seg: Segment, pseudo: int, payload_sum: bool = True) -> bytes:
    """TCP bytes; ``pseudo`` is the address part of the pseudo-header sum."""
    return b"".join(_tcp_parts(seg, pseudo, payload_sum))


def encode_tcp(seg: Segment, src: str, dst: str) -> bytes:
    """TCP header + options + payload, checksum over the IPv4/IPv6 pseudo-header."""
    return _encode_tcp(seg, _addr_sum(src, dst)[1])


def _parse_options(data: bytes, i: int, end: int) -> Options:
    # Fast paths for the layouts Linux sends: timestamps alone (an established connection),
    # and a SYN's or SYN-ACK's MSS, SACK permitted, timestamps and window scale
    n = end - i
    if n == 12 and data[i : i + 4] == _TS_PREFIX:
        return Options(timestamps=_TS.unpack_from(data, i)[1:])
    if (n == 20 and data[i] == 2 and data[i + 1] == 4 and data[i + 4 : i + 8] == _TS_SP_PREFIX
            and data[i + 16 : i + 19] == _SYN_WS):
        _k, _l, mss, _p, tsval, tsecr, _n, _k3, _l3, ws = _SYN_OPTS.unpack_from(data, i)
        return Options(mss, ws, True, (), (tsval, tsecr))
    mss = wscale = ts = None
    sack_perm = False
    sack: tuple[tuple[int, int], ...] = ()
    while i < end:
        kind = data[i]
        if kind == 0:  # EOL: the rest is padding
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            raise ParseError("option-overrun", f"option kind {kind} has no length byte")
        length = data[i + 1]
        if length < 2:
            raise ParseError("bad-option-length", f"option kind {kind} length {length}")
        if i + length > end:
            raise ParseError(
                "option-overrun", f"option kind {kind} length {length} at {i} ends past {end}"
            )
        want = FIXED_LENGTH.get(kind)
        if want is not None:
            if length != want:
                raise ParseError(
                    "bad-option-length", f"option kind {kind} length {length}, want {want}"
                )
            if kind == 2:
                mss = _H.unpack_from(data, i + 2)[0]
            elif kind == 3:
                wscale = data[i + 2]
            elif kind == 4:
                sack_perm = True
            else:
                ts = _II.unpack_from(data, i + 2)
        elif kind == 5:
            if length < 10 or (length - 2) % 8:
                raise ParseError("bad-option-length", f"SACK option length {length}")
            edges = struct.unpack_from(f"!{(length - 2) // 4}I", data, i + 2)
            sack = tuple(zip(edges[0::2], edges[1::2]))
        i += length
    return Options(mss, wscale, sack_perm, sack, ts)


def _decode_tcp(data: bytes, pseudo: int, verify: bool, start: int = 0, end: int | None = None,
                head: int = 0, ecn: int = 0) -> Segment:
    """The TCP segment ``data[start:end]`` (no copy of it is made but the payload's).

    The checksum is summed over ``data[:end]`` as one integer: the bytes before ``start``
    add ``head`` to it (modulo 0xFFFF, since ``start`` is even), which the caller gives:
    0 for an IPv4 header whose own checksum verified (a valid header sums to 0xFFFF)."""
    if end is None:
        end = len(data)
    n = end - start
    if n < 20:
        raise ParseError("short", f"TCP segment of {n} bytes, need 20")
    sport, dport, seq, ack, off, flags, window, _csum, urgent = _TCP.unpack_from(data, start)
    hlen = (off >> 4) << 2
    if hlen < 20:
        raise ParseError("bad-offset", f"TCP data offset {off >> 4} words, need >= 5")
    if hlen > n:
        raise ParseError("truncated", f"TCP header of {hlen} bytes in a {n}-byte segment")
    if verify:
        # data[:end] as one integer (padded to even length: start is even, so the head's
        # part stays head): the head's sum plus the segment's
        x = _payload_sum(data if end == len(data) else data[:end])
        if (pseudo + PROTO_TCP + n + x - head) % 0xFFFF:
            raise ParseError("bad-checksum", "TCP checksum does not verify")
    h = start + hlen
    options = NO_OPTIONS if hlen == 20 else _parse_options(data, start + 20, h)
    return Segment(sport, dport, seq, ack, flags, window, options, data[h:end], urgent, ecn)


def decode_tcp(data: bytes, src: str, dst: str, verify: bool = True) -> Segment:
    """Parse a TCP segment that travelled between ``src`` and ``dst``.

    Raises ParseError (short, bad-offset, truncated, bad-checksum, option-overrun,
    bad-option-length).  Reserved header bits are ignored.
    """
    if type(data) is not bytes:
        data = bytes(data)
    return _decode_tcp(data, _addr_sum(src, dst)[1], verify)


# ---------------------------------------------------------------------------------------- IP


# The constant parts of the two checksums of an IPv4 segment with the timestamps option
# alone, TTL 64 and IP ID 0 (what rawtcp sends), added once per address pair (_pair): the
# IP header's (version/IHL 0x45, header length, DF, TTL, protocol) and the TCP header's
# (pseudo-header protocol, data offset 8 words, the option's NOP NOP 8 10 word).
_IP4_TS_BASE = 0x4500 + 20 + _DF + (64 << 8) + PROTO_TCP
_TCP_TS_BASE = PROTO_TCP + (32 << 10) + _TS_WORD


@lru_cache(maxsize=4096)
def _pair(src: str, dst: str) -> tuple[int, bytes, int, int, int]:
    """(IP version, packed src + dst, the two as one integer: their checksum part, and
    that plus _IP4_TS_BASE and plus _TCP_TS_BASE)."""
    version, a, b = address_pair(src, dst)
    ab = a + b
    addr = int.from_bytes(ab, "big")
    return version, ab, addr, addr + _IP4_TS_BASE, addr + _TCP_TS_BASE


def encode_ip(pkt: Packet, ttl: int = 64, ident: int = 0, payload_sum: bool = True) -> bytes:
    """A whole IPv4 (DF set, no options) or IPv6 (no extension headers) packet.

    ``payload_sum=False`` leaves the payload out of the TCP checksum: for a segment handed to
    a link with segmentation offload, which rewrites that field anyway (a large segment's
    payload sum costs ~0.1 ms in Python); the checksum is then wrong, as tcpdump shows on a
    TSO host."""
    version, ab, addr, ip_base, tcp_base = _pair(pkt.src, pkt.dst)
    seg = pkt.segment
    if version == 6:
        hdr, opts, payload = _tcp_parts(seg, addr, payload_sum)
        length = len(hdr) + len(opts) + len(payload)
        try:   # RFC 3168 5: ECN in the low two bits of the Traffic Class
            ip = _IP6AB.pack(0x60000000 | (seg.ecn & 3) << 20, length, PROTO_TCP, ttl, ab)
        except struct.error as e:
            raise ValueError(f"IP field out of range: {e} (ttl={ttl}, ident={ident})") from None
        return b"".join((ip, hdr, opts, payload))
    # IPv4: both headers in one pack, both checksums summed from the field values (as
    # _tcp_parts does for the TCP header); ECN in the low two bits of TOS (RFC 3168 5)
    sport, dport, seq, ack, flags, window, o, payload, urgent, ecn = seg
    if type(payload) is not bytes and not isinstance(payload, (bytearray, memoryview)):
        raise ValueError(f"payload must be bytes, got {type(payload).__name__}")
    ts = o[4]
    if ts is not None and o[:4] == _TS_ONLY and len(ts) == 2:
        # timestamps alone: packed with the headers, summed from their values as below
        # (the constant parts come with the addresses: _pair)
        tcp_len = 32 + len(payload)
        try:
            ecn &= 3
            tsval, tsecr = ts
            total = (tcp_base + tcp_len + sport + dport + seq + ack + flags + window + urgent
                     + tsval + tsecr)
            if payload and payload_sum:
                total += _payload_sum(payload)
            itotal = ip_base + ecn + tcp_len
            if ttl != 64 or ident:
                itotal += ident + ((ttl - 64) << 8)
            hdr = _IP4TCP_AB_TS.pack(0x45, ecn, 20 + tcp_len, ident, 0x4000, ttl, 6,
                                     0xFFFF - (itotal % 0xFFFF or 0xFFFF), ab, sport, dport,
                                     seq, ack, 128, flags, window,
                                     0xFFFF - (total % 0xFFFF or 0xFFFF), urgent, 0x0101080A,
                                     tsval, tsecr)
        except (struct.error, TypeError, OverflowError) as e:   # out of range, not an integer
            raise ValueError(f"field out of range: {e} (ttl={ttl}, ident={ident})") from None
        return hdr + payload if payload else hdr
    opts = _options_bytes(o)
    hlen = 20 + len(opts)
    tcp_len = hlen + len(payload)
    try:
        ecn &= 3
        total = (addr + PROTO_TCP + tcp_len + sport + dport + seq + ack + (hlen << 10 | flags)
                 + window + urgent)
        if opts:
            total += int.from_bytes(opts, "big")
        if payload and payload_sum:
            total += _payload_sum(payload)
        itotal = 0x4500 + ecn + 20 + tcp_len + ident + _DF + (ttl << 8) + PROTO_TCP + addr
        hdr = _IP4TCP_AB.pack(0x45, ecn, 20 + tcp_len, ident, _DF, ttl, PROTO_TCP,
                              0xFFFF - (itotal % 0xFFFF or 0xFFFF), ab, sport, dport, seq,
                              ack, hlen << 2, flags, window,
                              0xFFFF - (total % 0xFFFF or 0xFFFF), urgent)
    except (struct.error, TypeError, OverflowError) as e:   # out of range, not an integer
        raise ValueError(f"field out of range: {e} (ttl={ttl}, ident={ident})") from None
    if payload:
        return b"".join((hdr, opts, payload))
    return hdr + opts if opts else hdr


def walk_ip(data: bytes, verify: bool) -> tuple[int, int, int, bytes, bytes, int]:
    """Walk the IP header(s) of any packet: (version, upper-layer start, end, packed src,
    packed dst, upper protocol). The TCP decoder and rawtcp.wire.udp share it."""
    n = len(data)
    if n == 0:
        raise ParseError("short", "empty packet")
    version = data[0] >> 4
    if version == 4:
        if n < 20:
            raise ParseError("short", f"IPv4 packet of {n} bytes, need 20")
        ihl = (data[0] & 0x0F) << 2
        if ihl < 20:
            raise ParseError("bad-ihl", f"IPv4 header length {ihl}")
        total, frag = struct.unpack_from("!H2xH", data, 2)
        if total > n:
            raise ParseError("truncated", f"IPv4 total length {total}, have {n} bytes")
        if ihl > total:
            raise ParseError("bad-ihl", f"IPv4 header length {ihl} > total length {total}")
        if verify and int.from_bytes(data[:ihl], "big") % 0xFFFF:
            raise ParseError("bad-ip-checksum", "IPv4 header checksum does not verify")
        if frag & 0x3FFF:
            raise ParseError("fragment", "IPv4 fragment (MF set or offset > 0)")
        return 4, ihl, total, data[12:16], data[16:20], data[9]
    if version == 6:
        if n < 40:
            raise ParseError("short", f"IPv6 packet of {n} bytes, need 40")
        end = 40 + _H.unpack_from(data, 4)[0]
        if end > n:
            raise ParseError("truncated", f"IPv6 payload length {end - 40}, have {n - 40}")
        nh = data[6]
        i = 40
        while nh == 0 or nh == 43 or nh == 60:
            if i + 2 > end:
                raise ParseError("truncated", f"IPv6 extension header {nh} at {i} cut off")
            hlen = (data[i + 1] + 1) << 3
            if i + hlen > end:
                raise ParseError("truncated", f"IPv6 extension header {nh} overruns payload")
            if nh == 43 and data[i + 3]:
                raise ParseError("routing-header", f"segments left {data[i + 3]}")
            nh = data[i]
            i += hlen
        if nh == IPV6_FRAGMENT:
            raise ParseError("fragment", "IPv6 fragment header")
        return 6, i, end, data[8:24], data[24:40], nh
    raise ParseError("bad-version", f"IP version {version}")


def _locate(data: bytes, verify: bool) -> tuple[int, int, bytes, bytes]:
    """(TCP start, TCP end, packed src, packed dst); ParseError "not-tcp" for another
    protocol."""
    version, start, end, a, b, proto = walk_ip(data, verify)
    if proto != PROTO_TCP:
        raise ParseError("not-tcp", f"IPv{version} protocol {proto}")
    return start, end, a, b


# source and destination strings, and the pseudo-header's address part plus the protocol
# minus the IP header's length (what the TCP checksum adds to the packet's sum), by the 8
# packed bytes of an IPv4 header (bounded)
_ADDRS: dict[bytes, tuple[str, str, int]] = {}


def _addr_strs(ab: bytes) -> tuple[str, str, int]:
    if len(_ADDRS) >= 4096:
        _ADDRS.clear()
    pair = _ADDRS[ab] = (address_str(ab[:4]), address_str(ab[4:]),
                         int.from_bytes(ab, "big") + PROTO_TCP - 20)
    return pair


def decode_ip(data: bytes, verify: bool = True) -> Packet:
    """Parse a whole IPv4 or IPv6 packet carrying TCP.  Bytes past the IP length are ignored.

    IPv4 options are skipped; IPv6 hop-by-hop, destination-options and routing headers
    (segments left 0) are skipped.  Raises ParseError (see ``errors.REASONS``).
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) >= 40 and data[0] == 0x45:
        # The common case in one unpack: IPv4 without options, not a fragment, TCP, sane
        # lengths. Anything else (and every error) takes the general path below, which
        # gives the same result for what passes here and says what is wrong with the rest.
        (tos, total, frag, proto, ab, sport, dport, seq, ack, off, flags, window,
         urgent) = _IP4TCP_IN.unpack_from(data)
        hlen = (off >> 4) << 2
        if (proto == 6 and not frag & 0x3FFF and 20 <= hlen <= total - 20
                and total <= len(data)):
            pair = _ADDRS.get(ab)
            if pair is None:
                pair = _addr_strs(ab)
            if verify:
                # both checksums: the IP header sums to 0 on its own, the whole packet
                # (IP header included) plus the pseudo-header to 0 as well (the packet's
                # sum as _payload_sum takes it, without the call)
                x = int.from_bytes(data if total == len(data) else data[:total], "big")
                if total & 1:
                    x <<= 8
                if total > 512:
                    x = fold(x)
                ok = (not int.from_bytes(data[:20], "big") % 0xFFFF
                      and not (pair[2] + total + x) % 0xFFFF)
            else:
                ok = True
            if ok:
                h = 20 + hlen
                if hlen == 20:
                    options = NO_OPTIONS
                elif hlen == 32 and data[40:44] == _TS_PREFIX:
                    options = _tnew(Options, (None, None, False, (),
                                              _II.unpack_from(data, 44)))
                else:
                    options = _parse_options(data, 40, h)
                # (new_packet / new_segment without their partial's call)
                return _tnew(Packet, (pair[0], pair[1], _tnew(Segment, (
                    sport, dport, seq, ack, flags, window, options, data[h:total], urgent,
                    tos & 3))))
    start, end, a, b = _locate(data, verify)
    # RFC 3168 5: ECN in TOS (IPv4 byte 1) or Traffic Class (IPv6, bits 4-5 of byte 1)
    if data[0] >> 4 == 4:
        ecn = data[1] & 3
        head = 0                      # verified by _locate when verify: sums to 0
    else:
        ecn = (data[1] >> 4) & 3
        head = int.from_bytes(data[:start], "big") if verify else 0
    seg = _decode_tcp(data, int.from_bytes(a + b, "big"), verify, start, end, head, ecn)
    return Packet(address_str(a), address_str(b), seg)


def corrupt_checksum(ip_packet: bytes) -> bytes:
    """The same packet with one bit of its TCP checksum flipped (fault injection).

    A single-bit change always breaks the one's-complement sum, unlike inverting all 16
    bits (0x0000 and 0xffff are the same number in one's complement).
    """
    ip_packet = bytes(ip_packet)
    start, end, _a, _b = _locate(ip_packet, verify=False)
    if end - start < 18:
        raise ParseError("short", "no room for a TCP checksum")
    out = bytearray(ip_packet)
    out[start + 17] ^= 0x01
    return bytes(out)
