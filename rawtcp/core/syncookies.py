"""SYN cookies (RFC 4987 3.6; Linux net.ipv4.tcp_syncookies): answer a SYN without keeping
any state, and rebuild the connection from the third segment of the handshake.

The initial sequence number of the SYN-ACK *is* the state. Ours is 32 bits:

    bits 31..24   a counter that advances every PERIOD (64 s), so a cookie ages out
    bits 23..2    a keyed hash of the counter, the 4-tuple and the peer's ISN
    bits 1..0     which entry of MSS_TABLE the peer's MSS was rounded down to

The returning ACK acknowledges cookie + 1; its sequence number is the peer's ISN + 1. The
cookie is valid when its counter is at most MAX_AGE periods old and the hash matches.

What the cookie cannot hold (window scale, SACK-permitted) rides in the low bits of the
TSval of the SYN-ACK, which the peer echoes in every segment's TSecr (RFC 7323): bits 3..0
the peer's window scale (15: none), bit 4 SACK-permitted. Without timestamps the connection
gets neither, as on Linux.
"""

from __future__ import annotations

import hashlib
import random

from .config import SEC

MSS_TABLE = (536, 1300, 1440, 1460)
PERIOD = 64 * SEC
MAX_AGE = 2
TS_BITS = 6
_NO_WSCALE = 15


def mss_index(mss: int) -> int:
    """The largest table entry not above the peer's MSS (536, the RFC minimum, at least)."""
    i = 0
    for k, m in enumerate(MSS_TABLE):
        if m <= mss:
            i = k
    return i


def encode_ts_options(wscale: int | None, sack: bool) -> int:
    return (_NO_WSCALE if wscale is None else min(wscale, 14)) | (0x10 if sack else 0)


def decode_ts_options(ecr: int) -> tuple[int | None, bool]:
    ws = ecr & 0x0F
    return (None if ws == _NO_WSCALE else ws), bool(ecr & 0x10)


class SynCookies:
    """Cookies keyed by a secret drawn from the stack's rng (reproducible when seeded)."""

    def __init__(self, rng: random.Random) -> None:
        self._key = rng.getrandbits(128).to_bytes(16, "big")

    def _hash(self, t: int, four: tuple[str, int, str, int], peer_isn: int) -> int:
        text = f"{t}|{four[0]}|{four[1]}|{four[2]}|{four[3]}|{peer_isn}".encode()
        h = hashlib.blake2s(text, key=self._key, digest_size=4).digest()
        return int.from_bytes(h, "big") & 0x3FFFFF

    def make(self, now: int, four: tuple[str, int, str, int], peer_isn: int,
             peer_mss: int) -> tuple[int, int]:
        """(cookie, the MSS it remembers) for a SYN from ``four`` = (laddr, lport, raddr,
        rport) whose sequence number is ``peer_isn``."""
        t = now // PERIOD
        i = mss_index(peer_mss)
        return ((t & 0xFF) << 24) | (self._hash(t, four, peer_isn) << 2) | i, MSS_TABLE[i]

    def check(self, now: int, four: tuple[str, int, str, int], peer_isn: int,
              cookie: int) -> int | None:
        """The peer's MSS the cookie remembers, or None when it is forged or too old."""
        t_now = now // PERIOD
        t8 = cookie >> 24
        for age in range(MAX_AGE + 1):
            t = t_now - age
            if t < 0:
                break
            if (t & 0xFF) == t8 and (cookie >> 2) & 0x3FFFFF == self._hash(t, four, peer_isn):
                return MSS_TABLE[cookie & 3]
        return None


__all__ = ["MSS_TABLE", "PERIOD", "MAX_AGE", "SynCookies", "mss_index", "encode_ts_options",
           "decode_ts_options"]
