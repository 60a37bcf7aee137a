"""Fixtures of the socket tests (helpers live in socket_helpers.py: a module named
conftest cannot be imported reliably when several test directories have one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from socket_helpers import Pair, make_pair


@pytest.fixture
def pair() -> Iterator[Pair]:
    """Stacks a (10.1.0.1, fd01::1) and b (10.1.0.2, fd01::2) on a MemoryLink pair."""
    p = make_pair()
    try:
        yield p
    finally:
        p.a.close()
        p.b.close()


@pytest.fixture
def pair_factory() -> Iterator:
    """make(config=..., faults_a=[rules], ...) -> Pair; everything made is closed after."""
    made: list[Pair] = []

    def make(**kw) -> Pair:
        p = make_pair(**kw)
        made.append(p)
        return p

    try:
        yield make
    finally:
        for p in made:
            p.a.close()
            p.b.close()
