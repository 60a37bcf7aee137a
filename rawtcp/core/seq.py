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


# The comparisons and unwrap below are sub() written out (d = (a - b) & MASK is the distance
# a - b modulo 2**32; it is negative exactly when d >= HALF): they run several times per
# segment, and a call of sub() inside each doubled their cost.


def lt(a: int, b: int) -> bool:
    return (a - b) & MASK >= HALF


def le(a: int, b: int) -> bool:
    d = (a - b) & MASK
    return d == 0 or d >= HALF


def gt(a: int, b: int) -> bool:
    d = (a - b) & MASK
    return d != 0 and d < HALF


def ge(a: int, b: int) -> bool:
    return (a - b) & MASK < HALF


def between(lo: int, x: int, hi: int) -> bool:
    """lo <= x < hi in sequence space."""
    return le(lo, x) and lt(x, hi)


def unwrap(ref: int, wire: int) -> int:
    """The absolute (unwrapped) number nearest to ``ref`` whose low 32 bits are ``wire``."""
    d = (wire - ref) & MASK
    return ref + d - MOD if d >= HALF else ref + d
