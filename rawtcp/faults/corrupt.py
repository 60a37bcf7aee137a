"""The ``corrupt`` action on bytes: spoil a packet's TCP checksum.

The engine only marks a delivery ``corrupt``; whoever encodes the packet applies this to the
IP bytes (:func:`rawtcp.trace.encode_packet` ``(pkt, corrupt=True)`` is encode + this, and is
what a runtime should call). The bit flip itself is the wire codec's
:func:`rawtcp.wire.corrupt_checksum`: one implementation for every caller.
"""

from __future__ import annotations

from rawtcp.wire import ParseError, corrupt_checksum

__all__ = ["corrupt_tcp_checksum"]


def corrupt_tcp_checksum(ip: bytes) -> bytes:
    """Return ``ip`` with its TCP checksum changed in one bit (never a valid equivalent in
    ones' complement). Bytes that are not IPv4/IPv6 + TCP come back unchanged."""
    try:
        return corrupt_checksum(ip)
    except ParseError:
        return ip
