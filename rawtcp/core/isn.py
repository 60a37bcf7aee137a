"""RFC 6528 initial sequence numbers: ISN = M + F(4-tuple, secret), M a 4 us clock."""

from __future__ import annotations

import hashlib
import random

from .seq import MASK


class IsnGenerator:
    """Callable ``(laddr, lport, raddr, rport, now_us) -> int``. The secret key is drawn from
    the injected rng, so a seeded rng gives reproducible ISNs."""

    def __init__(self, rng: random.Random) -> None:
        self._key = rng.getrandbits(128).to_bytes(16, "big")

    def __call__(self, laddr: str, lport: int, raddr: str, rport: int, now: int) -> int:
        h = hashlib.blake2s(
            f"{laddr}|{lport}|{raddr}|{rport}".encode(), key=self._key, digest_size=4
        ).digest()
        f = int.from_bytes(h, "big")
        return (f + now // 4) & MASK  # RFC 6528 section 3: M is a 4-microsecond timer
