"""Helpers for the packetdrill runner tests: run a script given as text."""

from __future__ import annotations

import textwrap

import pytest

from rawtcp.packetdrill.parser import parse_script
from rawtcp.packetdrill.runner import Result, RunOptions, run_script


def run_text(text: str, path: str = "t.pkt", **options) -> Result:
    """Parse ``text`` (dedented) and run it on the virtual clock."""
    script = parse_script(textwrap.dedent(text).lstrip("\n"), path)
    return run_script(script, RunOptions(**options))


@pytest.fixture
def run():
    return run_text
