"""Sequence-number arithmetic modulo 2**32 (RFC 9293 section 3.4)."""

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def add(a: int, n: int) -> int:
    """a + n modulo 2**32."""
    return (a + n) & MASK


def sub(a: int, b: int) -> int:
    """Signed distance a - b, in the range [-2**31, 2**31)."""
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


def lt(a: int, b: int) -> bool:
    return sub(a, b) < 0


def le(a: int, b: int) -> bool:
    return sub(a, b) <= 0


def gt(a: int, b: int) -> bool:
    return sub(a, b) > 0


def ge(a: int, b: int) -> bool:
    return sub(a, b) >= 0


def between(lo: int, x: int, hi: int) -> bool:
    """lo <= x < hi in sequence space."""
    return le(lo, x) and lt(x, hi)


def unwrap(ref: int, wire: int) -> int:
    """The absolute (unwrapped) number nearest to ``ref`` whose low 32 bits are ``wire``."""
    return ref + sub(wire, ref & MASK)
