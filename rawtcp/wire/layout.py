"""What both codecs agree on: option kinds, the canonical option layout, input checks.

Canonical option layout (the one Linux's ``tcp_options_write`` produces, so our segments look
like the kernel's in a capture).  Every block is a multiple of 4 bytes, so no trailing padding:

====================  =========================================  =====
option present        bytes                                      size
====================  =========================================  =====
MSS                   ``02 04 mss(2)``                           4
timestamps + SACK-ok  ``04 02 08 0a tsval(4) tsecr(4)``          12
timestamps only       ``01 01 08 0a tsval(4) tsecr(4)``          12
SACK-ok, no TS        ``01 01 04 02``                            4
window scale          ``01 03 03 ws``                            4
SACK blocks (n=1..4)  ``01 01 05 len (left(4) right(4))*n``      4+8n
====================  =========================================  =====

in that order.  The options may take at most 40 bytes (RFC 9293 section 3.1: data offset
is 4 bits of 32-bit words), e.g. timestamps + 3 SACK blocks, or MSS + 4 SACK blocks.

Decoding (RFC 9293 section 3.2, "a TCP implementation MUST be able to receive a TCP option
in any segment"; RFC 9293 section 3.1 option format): EOL ends the list, NOP is skipped,
every other option has kind and length; unknown kinds are skipped by their length; a known
kind with the wrong length, or any length below 2, is ``bad-option-length``; an option that
runs past the header is ``option-overrun``.  When an option appears twice the last one
wins (as in Linux's ``tcp_parse_options``).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from rawtcp.core.segment import Options, Segment

EOL, NOP, MSS, WSCALE, SACK_PERM, SACK, TIMESTAMP = 0, 1, 2, 3, 4, 5, 8

# Required total length (kind + length bytes included) of the fixed-size options we parse.
FIXED_LENGTH = {MSS: 4, WSCALE: 3, SACK_PERM: 2, TIMESTAMP: 10}

MAX_OPTIONS = 40
IPV6_SKIPPED = (0, 43, 60)  # hop-by-hop, routing (segments left 0 only), destination options
IPV6_FRAGMENT = 44
PROTO_TCP = 6


def options_length(o: Options) -> int:
    """Bytes the canonical layout of ``o`` takes."""
    n = 0
    if o.mss is not None:
        n += 4
    if o.timestamps is not None:
        n += 12
    if o.wscale is not None:
        n += 4
    if o.sack_permitted and o.timestamps is None:
        n += 4
    if o.sack_blocks:
        n += 4 + 8 * len(o.sack_blocks)
    return n


def _check_uint(name: str, value: object, bits: int) -> None:
    if not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")  # noqa: TRY004
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name}={value} does not fit in {bits} bits (0..{(1 << bits) - 1})")


def check_segment(seg: Segment) -> None:
    """Raise ValueError if ``seg`` cannot be put on the wire."""
    _check_uint("src_port", seg.src_port, 16)
    _check_uint("dst_port", seg.dst_port, 16)
    _check_uint("seq", seg.seq, 32)
    _check_uint("ack", seg.ack, 32)
    _check_uint("flags", seg.flags, 8)
    _check_uint("window", seg.window, 16)
    _check_uint("urgent", seg.urgent, 16)
    o = seg.options
    if o.mss is not None:
        _check_uint("mss", o.mss, 16)
    if o.wscale is not None:
        _check_uint("wscale", o.wscale, 8)
    if o.timestamps is not None:
        if len(o.timestamps) != 2:
            raise ValueError("timestamps must be (TSval, TSecr)")
        _check_uint("TSval", o.timestamps[0], 32)
        _check_uint("TSecr", o.timestamps[1], 32)
    for block in o.sack_blocks:
        if len(block) != 2:
            raise ValueError(f"SACK block {block!r} must be (left, right)")
        _check_uint("SACK left edge", block[0], 32)
        _check_uint("SACK right edge", block[1], 32)
    n = options_length(o)
    if n > MAX_OPTIONS:
        raise ValueError(
            f"options need {n} bytes, TCP allows {MAX_OPTIONS}: drop SACK blocks or timestamps"
        )
    if not isinstance(seg.payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"payload must be bytes, got {type(seg.payload).__name__}")  # noqa: TRY004


@lru_cache(maxsize=4096)
def address_pair(src: str, dst: str) -> tuple[int, bytes, bytes]:
    """(IP version, packed src, packed dst).  ValueError on a bad or mixed-family pair."""
    try:
        a = ipaddress.ip_address(src)
        b = ipaddress.ip_address(dst)
    except ValueError as e:
        raise ValueError(f"{e}: give IP addresses as strings like '10.0.0.1' or "
                         "'fd00::1'") from None
    if a.version != b.version:
        raise ValueError(f"src {src} and dst {dst} are not the same IP version")
    return a.version, a.packed, b.packed


@lru_cache(maxsize=4096)
def address_str(packed: bytes) -> str:
    """Canonical string form (``ipaddress``) of a packed IPv4 or IPv6 address."""
    return str(ipaddress.ip_address(packed))


def check_ip_args(ttl: int, ident: int) -> None:
    _check_uint("ttl", ttl, 8)
    _check_uint("ident", ident, 16)
