"""UDP (RFC 768) and ICMP/ICMPv6 errors (RFC 792, RFC 4443): the fast codec
(rawtcp.wire.udp) against the Scapy reference (rawtcp.wire.scapy_udp).

Both build the same bytes for every datagram and ICMP error, both decode any bytes to the
same value or raise ParseError with the same reason; nothing else escapes (fuzzed)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtcp.wire import ParseError, fast, udp
from rawtcp.wire import scapy_udp as ref
from rawtcp.wire.errors import UDP_REASONS
from rawtcp.wire.udp import Datagram, IcmpError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
u16 = st.integers(0, 0xFFFF)
V4 = ("10.0.0.1", "10.0.0.2")
V6 = ("fd00::1", "fd00::2")
pairs = st.sampled_from([V4, V6])


@st.composite
def datagrams(draw) -> Datagram:
    a, b = draw(pairs)
    return Datagram(a, b, draw(u16), draw(u16), draw(st.binary(max_size=300)))


@st.composite
def icmp_errors(draw) -> IcmpError:
    d = draw(datagrams())
    raw = udp.encode_datagram(d)
    e = udp.port_unreachable(raw, d)
    kind = draw(st.sampled_from(["port", "proto", "tcp-quote", "mtu"]))
    v = e.version
    if kind == "proto":
        t, c = udp.KIND_CODES[(v, "proto-unreachable")]
        e = e._replace(type=t, code=c)
    elif kind == "tcp-quote":
        e = e._replace(proto=6, qseq=draw(st.integers(0, 2**32 - 1)), quote=b"")
    elif kind == "mtu":
        e = e._replace(type=3, code=4, mtu=draw(st.integers(68, 1500))) if v == 4 else \
            e._replace(type=2, code=0, mtu=draw(st.integers(1280, 9000)))
    return e


@SETTINGS
@given(datagrams())
def test_datagram_codecs_build_identical_bytes_and_round_trip(d: Datagram) -> None:
    raw = udp.encode_datagram(d)
    assert ref.encode_datagram(d) == raw
    assert udp.decode_non_tcp(raw) == d == ref.decode_non_tcp(raw)


@SETTINGS
@given(icmp_errors())
def test_icmp_codecs_build_identical_bytes_and_decode_alike(e: IcmpError) -> None:
    raw = udp.encode_icmp_error(e)
    assert ref.encode_icmp_error(e) == raw
    got = udp.decode_non_tcp(raw)
    assert got == ref.decode_non_tcp(raw)
    assert isinstance(got, IcmpError)
    assert (got.type, got.code, got.proto, got.qsrc, got.qdst, got.qsport, got.qdport,
            got.qseq, got.mtu) == (e.type, e.code, e.proto, e.qsrc, e.qdst, e.qsport,
                                   e.qdport, e.qseq, e.mtu)


def test_port_unreachable_quotes_the_datagram_rfc792_rfc4443() -> None:
    """RFC 792 / RFC 1812 4.3.2.3: the quote holds the IP header and the start of the data,
    within 576 bytes in all; RFC 4443 2.4(c): within 1280 bytes for ICMPv6."""
    for a, b in (V4, V6):
        d = Datagram(a, b, 5000, 53, b"x" * 2000)
        raw = udp.encode_datagram(d)
        e = udp.port_unreachable(raw, d)
        pkt = udp.encode_icmp_error(e)
        assert len(pkt) == (576 if e.version == 4 else 1280)
        got = udp.decode_non_tcp(pkt)
        assert got.kind == "port-unreachable"
        assert (got.src, got.dst, got.qsport, got.qdport) == (b, a, 5000, 53)
        assert raw.startswith(got.quote)


def test_ipv4_zero_checksum_means_none_but_we_always_send_one_rfc768() -> None:
    """RFC 768: a transmitted checksum of 0 means the sender computed none; a computed 0 is
    sent as 0xffff."""
    raw = bytearray(udp.encode_datagram(Datagram(*V4, 1, 2, b"hello")))
    assert raw[26:28] != b"\0\0"
    raw[26:28] = b"\0\0"
    raw[28] ^= 0xFF             # payload changed: no checksum to catch it
    assert udp.decode_non_tcp(bytes(raw)).payload[0] == ord("h") ^ 0xFF
    # find ports whose checksum computes to 0: it must go out as 0xffff
    for sport in range(65536):
        r = udp.encode_datagram(Datagram(*V4, sport, 7, b""))
        if r[26:28] == b"\xff\xff":
            assert udp.decode_non_tcp(r).sport == sport == ref.decode_non_tcp(r).sport
            assert ref.encode_datagram(Datagram(*V4, sport, 7, b"")) == r
            break
    else:
        pytest.fail("no port gives a zero checksum")


def test_ipv6_zero_checksum_is_refused_rfc8200() -> None:
    """RFC 8200 8.1: UDP over IPv6 must carry a checksum; a 0 is dropped."""
    raw = bytearray(udp.encode_datagram(Datagram(*V6, 1, 2, b"hello")))
    raw[46:48] = b"\0\0"
    for codec in (udp, ref):
        with pytest.raises(ParseError) as ei:
            codec.decode_non_tcp(bytes(raw))
        assert ei.value.reason == "udp-no-checksum"


def test_bad_checksums_lengths_and_non_errors_are_parse_errors() -> None:
    raw = udp.encode_datagram(Datagram(*V4, 1, 2, b"hello"))
    bad = bytearray(raw)
    bad[-1] ^= 1
    long = bytearray(raw)
    long[24:26] = struct.pack("!H", 100)
    echo = bytearray(udp.encode_icmp_error(udp.port_unreachable(raw, udp.decode_non_tcp(raw))))
    echo[20] = 8                # echo request: not an error
    echo[22:24] = b"\0\0"
    echo[22:24] = struct.pack("!H", fast.internet_checksum(bytes(echo[20:])))
    other = bytearray(raw)
    other[9] = 47               # GRE
    other[10:12] = b"\0\0"
    other[10:12] = struct.pack("!H", fast.internet_checksum(bytes(other[:20])))
    icmp = udp.encode_icmp_error(udp.port_unreachable(raw, udp.decode_non_tcp(raw)))
    bad_icmp = bytearray(icmp)
    bad_icmp[-1] ^= 1
    cut = bytearray(udp.encode_icmp_error(udp.port_unreachable(raw[:24],
                                                               udp.decode_non_tcp(raw))))
    cut[22:24] = b"\0\0"
    cut[22:24] = struct.pack("!H", fast.internet_checksum(bytes(cut[20:])))
    v6 = bytearray(udp.encode_datagram(Datagram(*V6, 1, 2, b"hello")))
    v6[46:48] = b"\0\0"
    cases = [(bad_icmp, "bad-icmp-checksum"), (cut, "bad-icmp-quote"),
             (v6, "udp-no-checksum"), (bad, "bad-udp-checksum"), (long, "bad-udp-length"),
             (echo, "icmp-not-error"),
             (other, "not-udp"), (raw[:25], "truncated")]
    for data, reason in cases:
        for codec in (udp, ref):
            with pytest.raises(ParseError) as ei:
                codec.decode_non_tcp(bytes(data))
            assert ei.value.reason == reason, (codec, reason)
    assert {r for _, r in cases} >= set(UDP_REASONS)


def _agree(data: bytes) -> None:
    try:
        a = udp.decode_non_tcp(data)
    except ParseError as e:
        with pytest.raises(ParseError) as ei:
            ref.decode_non_tcp(data)
        assert ei.value.reason == e.reason
        return
    assert ref.decode_non_tcp(data) == a


@SETTINGS
@given(st.binary(max_size=120))
def test_random_bytes_both_codecs_agree(data: bytes) -> None:
    _agree(data)


@SETTINGS
@given(st.one_of(datagrams().map(udp.encode_datagram), icmp_errors().map(udp.encode_icmp_error)),
       st.data())
def test_mutated_packets_both_codecs_agree(raw: bytes, data) -> None:
    """Fuzz: flip, cut and overwrite bytes of valid packets (checksums mostly break)."""
    b = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        b = b[:data.draw(st.integers(0, len(b)))]
    _agree(bytes(b))
    _agree(bytes(b))
