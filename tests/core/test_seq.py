"""Sequence-number arithmetic (RFC 9293 3.4): the comparisons and unwrap agree with the
signed distance sub() for any two numbers, across the wrap."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rawtcp.core.seq import HALF, MASK, MOD, add, ge, gt, le, lt, sub, unwrap

u32 = st.integers(0, MASK)
# near the wrap and near half the space, where a sign mistake would show
edges = st.sampled_from([0, 1, HALF - 1, HALF, HALF + 1, MASK - 1, MASK])
nums = u32 | edges


@given(nums, nums)
def test_comparisons_follow_the_signed_distance(a: int, b: int) -> None:
    d = sub(a, b)
    assert -HALF <= d < HALF and (b + d) & MASK == a
    assert lt(a, b) == (d < 0)
    assert le(a, b) == (d <= 0)
    assert gt(a, b) == (d > 0)
    assert ge(a, b) == (d >= 0)


@given(st.integers(0, 1 << 40), nums)
def test_unwrap_is_the_nearest_absolute_number(ref: int, wire: int) -> None:
    x = unwrap(ref, wire)
    assert x & MASK == wire
    assert -HALF <= x - ref < HALF          # nearest: within half the space of ref


def test_add_wraps() -> None:
    assert add(MASK, 1) == 0 and add(HALF, HALF) == 0 and add(5, MOD) == 5
