"""Property tests: the fast codec and the Scapy reference codec are interchangeable.

For every encodable segment (any flags, sequence numbers, window, option combination that
fits the 40 option bytes of RFC 9293 section 3.1, payload) over IPv4 and IPv6:
both codecs produce the same bytes and both decode them back to the same Segment.
For every input at all (random bytes, random IP-looking bytes, mutated valid packets with and
without repaired checksums): both codecs raise ParseError with the same reason, or both
return equal Packets; nothing else ever escapes.
"""

from __future__ import annotations

import ipaddress
import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from wire_helpers import fix_checksums, ipv4_bytes, ipv6_bytes, tcp_bytes

from rawtcp.core.segment import Flags, Options, Packet, Segment
from rawtcp.wire import ParseError, corrupt_checksum, fast
from rawtcp.wire import scapy_codec as ref
from rawtcp.wire.layout import MAX_OPTIONS, options_length

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
bad_values = st.sampled_from([-1, 1 << 32, 1 << 16, 256, 1.5, "x"])


@st.composite
def options(draw: st.DrawFn) -> Options:
    o = Options(
        mss=draw(st.none() | u16),
        wscale=draw(st.none() | st.integers(0, 255)),
        sack_permitted=draw(st.booleans()),
        timestamps=draw(st.none() | st.tuples(u32, u32)),
    )
    room = (MAX_OPTIONS - options_length(o) - 4) // 8  # SACK option: 4 + 8 per block
    if room >= 1 and draw(st.booleans()):
        n = draw(st.integers(1, min(4, room)))
        o = o.__class__(
            o.mss,
            o.wscale,
            o.sack_permitted,
            tuple(draw(st.lists(st.tuples(u32, u32), min_size=n, max_size=n))),
            o.timestamps,
        )
    assert options_length(o) <= MAX_OPTIONS
    return o


segments = st.builds(
    Segment,
    src_port=u16,
    dst_port=u16,
    seq=u32,
    ack=u32,
    flags=st.integers(0, 255).map(Flags),
    window=u16,
    options=options(),
    payload=st.binary(max_size=64) | st.binary(min_size=1000, max_size=1500),
    urgent=u16,
    ecn=st.just(0),      # the IP layer's field: `packets` draws it
)

v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)
address_pairs = st.tuples(v4, v4) | st.tuples(v6, v6)
# the IP ECN field (RFC 3168 5) rides on the Segment; only the IP-level codecs carry it
packets = st.builds(lambda ab, seg, ecn: Packet(ab[0], ab[1], seg._replace(ecn=ecn)),
                    address_pairs, segments, st.integers(0, 3))


def outcome(decode, data: bytes, **kw):
    """('ok', value) or ('error', reason); any exception other than ParseError propagates."""
    try:
        return ("ok", decode(data, **kw))
    except ParseError as e:
        assert e.reason, "ParseError without a reason"
        return ("error", e.reason)


def assert_agree(data: bytes) -> None:
    for verify in (True, False):
        a = outcome(fast.decode_ip, data, verify=verify)
        b = outcome(ref.decode_ip, data, verify=verify)
        assert a == b, f"fast {a} != scapy {b} for {data.hex()} verify={verify}"


# ----------------------------------------------------------------------- valid segments


# what every segment of an established connection carries (RFC 7323): the fast codec packs
# this layout with the headers in one go, so it gets its own draw (half of the packets)
ts_only_packets = st.builds(
    lambda ab, seg, ts, ecn: Packet(ab[0], ab[1], seg._replace(
        options=Options(timestamps=ts), ecn=ecn)),
    address_pairs, segments, st.tuples(u32, u32), st.integers(0, 3))

# what a SYN or SYN-ACK from Linux carries (MSS, SACK permitted, timestamps, NOP, window
# scale): both fast codecs have a path of their own for it
syn_layout_packets = st.builds(
    lambda ab, seg, mss, ws, ts, ecn: Packet(ab[0], ab[1], seg._replace(
        options=Options(mss=mss, wscale=ws, sack_permitted=True, timestamps=ts), ecn=ecn)),
    address_pairs, segments, u16, st.integers(0, 255), st.tuples(u32, u32),
    st.integers(0, 3))


@SETTINGS
@given(packets | ts_only_packets | syn_layout_packets, st.integers(0, 255), u16)
def test_both_codecs_build_identical_packets_that_decode_to_the_original(
    pkt: Packet, ttl: int, ident: int
) -> None:
    raw = fast.encode_ip(pkt, ttl=ttl, ident=ident)
    assert raw == ref.encode_ip(pkt, ttl=ttl, ident=ident)
    canonical = Packet(
        str(ipaddress.ip_address(pkt.src)), str(ipaddress.ip_address(pkt.dst)), pkt.segment
    )
    assert fast.decode_ip(raw) == canonical
    assert ref.decode_ip(raw) == canonical


@SETTINGS
@given(ts_only_packets, st.sampled_from([0, 1]), bad_values)
def test_timestamps_out_of_range_raise_value_error_in_both(pkt: Packet, which: int,
                                                           bad) -> None:
    assume(not (isinstance(bad, int) and 0 <= bad < 1 << 32))
    ts = list(pkt.segment.options.timestamps)
    ts[which] = bad
    pkt = pkt._replace(segment=pkt.segment._replace(options=Options(timestamps=tuple(ts))))
    for codec in (fast, ref):
        with pytest.raises(ValueError):
            codec.encode_ip(pkt)


@SETTINGS
@given(address_pairs, segments)
def test_tcp_level_codecs_agree_and_round_trip(ab: tuple[str, str], seg: Segment) -> None:
    src, dst = ab
    raw = fast.encode_tcp(seg, src, dst)
    assert raw == ref.encode_tcp(seg, src, dst)
    # Options are laid out in whole 32-bit words (RFC 9293 section 3.1, Data Offset).
    assert (raw[12] >> 4) * 4 == 20 + options_length(seg.options)
    assert fast.decode_tcp(raw, src, dst) == seg
    assert ref.decode_tcp(raw, src, dst) == seg


@SETTINGS
@given(packets)
def test_scapy_model_round_trip(pkt: Packet) -> None:
    p = ref.to_scapy(pkt)
    assert bytes(p) == fast.encode_ip(pkt)
    assert ref.from_scapy(p) == fast.decode_ip(bytes(p))


@SETTINGS
@given(packets, st.data())
def test_any_single_bit_flip_in_the_segment_is_caught_by_the_checksum(
    pkt: Packet, data: st.DataObject
) -> None:
    """RFC 9293 section 3.1: the checksum covers header, options, payload (and the
    pseudo-header); a one-bit change always changes a one's-complement sum."""
    raw = fast.encode_ip(pkt)
    start = 20 if raw[0] >> 4 == 4 else 40
    pos = data.draw(st.integers(start, len(raw) - 1))
    if pos == start + 12:
        assume(False)  # the data offset nibble: may fail earlier as bad-offset/truncated
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(raw)
    bad[pos] ^= 1 << bit
    for codec in (fast, ref):
        with pytest.raises(ParseError) as e:
            codec.decode_ip(bytes(bad))
        assert e.value.reason == "bad-checksum"
    assert_agree(bytes(bad))


@SETTINGS
@given(packets)
def test_corrupt_checksum_is_caught_and_changes_nothing_else(pkt: Packet) -> None:
    raw = fast.encode_ip(pkt)
    bad = corrupt_checksum(raw)
    assert bad != raw and len(bad) == len(raw)
    for codec in (fast, ref):
        with pytest.raises(ParseError) as e:
            codec.decode_ip(bad)
        assert e.value.reason == "bad-checksum"
        assert codec.decode_ip(bad, verify=False) == fast.decode_ip(raw)


@SETTINGS
@given(address_pairs, segments)
def test_pseudo_header_is_covered(ab: tuple[str, str], seg: Segment) -> None:
    """Delivering the segment between other addresses breaks the checksum (RFC 9293 3.1)."""
    src, dst = ab
    raw = fast.encode_tcp(seg, src, dst)
    a = ipaddress.ip_address(src)
    other = str(type(a)(int(a) ^ 1))
    for codec in (fast, ref):
        with pytest.raises(ParseError) as e:
            codec.decode_tcp(raw, other, dst)
        assert e.value.reason == "bad-checksum"


# ----------------------------------------------------------------------- invalid segments


@SETTINGS
@given(
    segments,
    st.sampled_from(["src_port", "dst_port", "seq", "ack", "window", "urgent", "flags"]),
    bad_values,
)
def test_unencodable_segments_raise_value_error_in_both(seg: Segment, field: str, bad) -> None:
    limit = {"seq": 1 << 32, "ack": 1 << 32, "flags": 256}.get(field, 1 << 16)
    assume(not (isinstance(bad, int) and 0 <= bad < limit))
    seg = seg.replace(**{field: bad})
    for codec in (fast, ref):
        with pytest.raises(ValueError):
            codec.encode_tcp(seg, "10.0.0.1", "10.0.0.2")


@SETTINGS
@given(segments, st.lists(st.tuples(u32, u32), min_size=5, max_size=8))
def test_options_beyond_40_bytes_raise_value_error_in_both(seg: Segment, blocks) -> None:
    seg = seg.replace(options=Options(sack_blocks=tuple(blocks)))
    for codec in (fast, ref):
        with pytest.raises(ValueError, match="40"):
            codec.encode_tcp(seg, "fd00::1", "fd00::2")


def test_mixed_address_families_raise_value_error_in_both() -> None:
    seg = Segment(1, 2, 3)
    for codec in (fast, ref):
        with pytest.raises(ValueError, match="same IP version"):
            codec.encode_ip(Packet("10.0.0.1", "fd00::1", seg))
        with pytest.raises(ValueError):
            codec.encode_ip(Packet("example.com", "10.0.0.1", seg))
        with pytest.raises(ValueError):
            codec.encode_ip(Packet("10.0.0.1", "10.0.0.2", seg), ttl=256)


# ----------------------------------------------------------------------- arbitrary input

# RAWTCP_FUZZ_EXAMPLES=20000 for a long fuzzing session.
FUZZ = settings(
    max_examples=int(os.environ.get("RAWTCP_FUZZ_EXAMPLES", "1000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=120))
def test_random_bytes_both_codecs_agree(data: bytes) -> None:
    assert_agree(data)


@FUZZ
@given(st.sampled_from([0x45, 0x46, 0x4F, 0x44, 0x60]), st.binary(max_size=120))
def test_random_ip_looking_bytes_agree(first: int, rest: bytes) -> None:
    assert_agree(bytes([first]) + rest)
    assert_agree(fix_checksums(bytes([first]) + rest))


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("grow"), st.binary(min_size=1, max_size=8), st.just(0)),
)


def mutate(raw: bytes, ops) -> bytes:
    b = bytearray(raw)
    for op, x, y in ops:
        if op == "grow":
            b += x
        elif not b:
            continue
        elif op == "flip":
            b[x % len(b)] ^= 1 << y
        elif op == "set":
            b[x % len(b)] = y
        elif op == "cut":
            del b[x % len(b) :]
    return bytes(b)


@FUZZ
@given(packets | syn_layout_packets, st.lists(mutation, min_size=1, max_size=4), st.booleans())
def test_mutated_valid_packets_both_codecs_agree(pkt: Packet, ops, repair: bool) -> None:
    data = mutate(fast.encode_ip(pkt), ops)
    if repair:
        data = fix_checksums(data)
    assert_agree(data)


@FUZZ
@given(
    address_pairs,
    st.binary(max_size=40).map(lambda b: b + b"\x01" * (-len(b) % 4)),
    st.binary(max_size=16),
    st.integers(0, 15) | st.none(),
)
def test_random_tcp_options_both_codecs_agree(ab, opts: bytes, payload: bytes, words) -> None:
    """Random option lists with valid checksums reach the option parsers themselves."""
    src, dst = ab
    seg = tcp_bytes(src, dst, options=opts, payload=payload, offset_words=words)
    if ":" in src:
        data = ipv6_bytes(src, dst, seg)
    else:
        data = ipv4_bytes(src, dst, seg)
    assert_agree(data)
    a = outcome(fast.decode_tcp, seg, src=src, dst=dst)
    b = outcome(ref.decode_tcp, seg, src=src, dst=dst)
    assert a == b


@FUZZ
@given(address_pairs, st.binary(max_size=80), st.integers(0, 15))
def test_random_tcp_bytes_give_parse_error_or_a_segment(ab, data: bytes, offset: int) -> None:
    """decode_tcp on arbitrary bytes (data offset forced to every value): a typed ParseError
    ('short', 'truncated', 'bad-offset', 'bad-checksum', option errors) or a Segment, the
    same in both codecs, with and without checksum verification; nothing else escapes."""
    src, dst = ab
    if len(data) > 12:
        data = data[:12] + bytes([(offset << 4) | (data[12] & 0x0F)]) + data[13:]
    for verify in (True, False):
        a = outcome(fast.decode_tcp, data, src=src, dst=dst, verify=verify)
        b = outcome(ref.decode_tcp, data, src=src, dst=dst, verify=verify)
        assert a == b
        if a[0] == "error":
            assert a[1] in ("short", "truncated", "bad-offset", "bad-checksum",
                            "option-overrun", "bad-option-length")


def test_a_full_segment_with_timestamps_and_a_sack_block_fits_the_mtu() -> None:
    """RFC 9293 3.7.1 (MSS counts no options) with RFC 7323 timestamps (12 bytes) and one
    RFC 2018 SACK block (4 + 8 bytes): the 1436-byte payload the core sends fills a 1500-byte
    IPv4 packet exactly (tests/core checks the core's arithmetic without the codec)."""
    from rawtcp.core.segment import Flags, Options, Packet, Segment
    from rawtcp.wire.fast import encode_ip

    seg = Segment(80, 49152, 1001, 5001, Flags.ACK, 64000,
                  Options(timestamps=(10, 1), sack_blocks=((6001, 7001),)), bytes(1436))
    assert len(encode_ip(Packet("10.0.0.1", "10.0.0.2", seg))) == 1500


@SETTINGS
@given(st.binary(max_size=70_000))
def test_fold_keeps_the_value_modulo_0xffff_and_never_reaches_zero(data: bytes) -> None:
    """RFC 1071 2(A)/(B): 16-bit words may be summed in any grouping (2**16 == 1 mod 0xffff),
    so adding the halves of a buffer's integer keeps its sum; a non-zero sum stays non-zero
    (the encoder relies on that to tell 0x0000 from 0xffff)."""
    n = int.from_bytes(data, "big")
    f = fast.fold(n)
    assert f % 0xFFFF == n % 0xFFFF
    assert (f == 0) == (n == 0)
    if n.bit_length() > 6000:            # past the first cut: it got smaller
        assert f.bit_length() < n.bit_length()
