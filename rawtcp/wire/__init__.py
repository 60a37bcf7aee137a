"""Bytes <-> Segments, IPv4 and IPv6, checksums included.

The names here are the fast ``struct`` codec (:mod:`rawtcp.wire.fast`).  The Scapy reference
codec lives in :mod:`rawtcp.wire.scapy_codec`; ``to_scapy`` and ``from_scapy`` come from it
and Scapy is imported only when one of them is first used, so the hot path never pays for
importing Scapy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rawtcp.wire.errors import ParseError
from rawtcp.wire.fast import corrupt_checksum, decode_ip, decode_tcp, encode_ip, encode_tcp

if TYPE_CHECKING:
    from rawtcp.wire.scapy_codec import from_scapy, to_scapy

__all__ = [
    "ParseError",
    "corrupt_checksum",
    "decode_ip",
    "decode_tcp",
    "encode_ip",
    "encode_tcp",
    "from_scapy",
    "to_scapy",
]


def __getattr__(name: str) -> Any:
    if name in ("to_scapy", "from_scapy"):
        from rawtcp.wire import scapy_codec

        return getattr(scapy_codec, name)
    raise AttributeError(f"module 'rawtcp.wire' has no attribute {name!r}")
