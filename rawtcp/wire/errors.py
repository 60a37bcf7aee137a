"""Errors raised by the wire codecs.

Every malformed input to a decoder raises :class:`ParseError` and nothing else, so the
runtime can drop the packet and count it under ``exc.reason``.  Encoders raise plain
:class:`ValueError` when asked to build something TCP/IP cannot carry (a port above 65535,
options longer than 40 bytes, ...): that is a programming error, not bad input from a peer.
"""

from __future__ import annotations

# The short codes, documented in one place.  A counter or a trace `drop` event uses them as
# its reason ("bad-checksum" is the name the contracts already use for TCP checksum drops).
REASONS: dict[str, str] = {
    "short": "fewer bytes than the fixed IPv4/IPv6/TCP header",
    "bad-version": "IP version nibble is neither 4 nor 6",
    "bad-ihl": "IPv4 header length below 20 bytes or beyond the total length",
    "truncated": "a length field (IPv4 total length, IPv6 payload length, extension header, "
    "TCP data offset) points past the end of the bytes",
    "bad-ip-checksum": "IPv4 header checksum does not verify",
    "fragment": "an IPv4 or IPv6 fragment (rawtcp does not reassemble)",
    "routing-header": "IPv6 routing header with segments left: we are not the final destination",
    "not-tcp": "the upper-layer protocol is not TCP",
    "bad-offset": "TCP data offset below 5 (20 bytes)",
    "bad-checksum": "TCP checksum over the pseudo-header does not verify",
    "option-overrun": "a TCP option runs past the end of the TCP header",
    "bad-option-length": "a TCP option length below 2, or wrong for its kind "
    "(MSS 4, WS 3, SACK-permitted 2, timestamps 10, SACK 2+8n with n >= 1)",
}

# The UDP/ICMP decoder (rawtcp.wire.udp.decode_non_tcp, only for packets the TCP decoder
# called not-tcp) adds these to the IP reasons above.
UDP_REASONS: dict[str, str] = {
    "not-udp": "the upper-layer protocol is neither TCP, UDP nor ICMP/ICMPv6",
    "bad-udp-length": "UDP length field below 8 or past the end of the IP payload",
    "bad-udp-checksum": "UDP checksum over the pseudo-header does not verify",
    "udp-no-checksum": "UDP over IPv6 with checksum 0 (mandatory, RFC 8200 8.1)",
    "bad-icmp-checksum": "ICMP/ICMPv6 checksum does not verify",
    "icmp-not-error": "an ICMP message that is not an error (echo, redirect, ...)",
    "bad-icmp-quote": "an ICMP error whose quoted IP header + 8 bytes is cut off",
}


class ParseError(ValueError):
    """Malformed packet.  ``reason`` is one of the short codes in :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
