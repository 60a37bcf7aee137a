"""Fixtures of the `rawtcp run` / rawtcp.patch tests: a persistent lab (as `rawtcp lab up`
makes it: kernel in one namespace, rawtcp's AF_PACKET link in the other, whose kernel has no
address), removed after each test. Helpers live in run_helpers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from run_helpers import Lab, make_lab


@pytest.fixture
def lab(tmp_path) -> Iterator[Lab]:
    made = make_lab(str(tmp_path / "labs"))
    try:
        yield made
    finally:
        made.down()
