"""The TCP_CONGESTION socket option as Linux reads and writes it (tcp(7)): the name of the
congestion control algorithm, up to 16 bytes (TCP_CA_NAME_MAX) with NUL padding. An unknown
name is ENOENT, as Linux answers for an algorithm that is not loaded."""

from __future__ import annotations

import errno
import struct

from .config import CONGESTION_ALGORITHMS

TCP_CA_NAME_MAX = 16


def congestion_from_option(value: object) -> str:
    """setsockopt(IPPROTO_TCP, TCP_CONGESTION, b"reno") -> "reno"; OSError ENOENT for a
    name rawtcp does not have (an int is read as its 4 bytes, as the kernel would)."""
    if isinstance(value, int) and not isinstance(value, bool):
        raw = struct.pack("i", value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise TypeError("TCP_CONGESTION takes a bytes-like name such as b\"cubic\"")
    name = raw[: TCP_CA_NAME_MAX - 1].split(b"\0", 1)[0].decode("latin-1")
    if name not in CONGESTION_ALGORITHMS:
        raise OSError(errno.ENOENT, f"{errno.errorcode[errno.ENOENT]}: TCP_CONGESTION "
                                    f"{name!r} is not available; use one of "
                                    f"{', '.join(CONGESTION_ALGORITHMS)}")
    return name


def congestion_option_value(name: str, buflen: int | None) -> bytes | int:
    """getsockopt(IPPROTO_TCP, TCP_CONGESTION, 16) -> b"cubic" + NULs, as Linux (the name
    padded to min(buflen, 16) bytes); without buflen the first 4 bytes as an int."""
    raw = name.encode().ljust(TCP_CA_NAME_MAX, b"\0")
    if not buflen:
        return struct.unpack("i", raw[:4])[0]
    return raw[: min(buflen, TCP_CA_NAME_MAX)]


__all__ = ["TCP_CA_NAME_MAX", "congestion_from_option", "congestion_option_value"]
