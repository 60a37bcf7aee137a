"""Helpers for the packetdrill runner tests: run a script given as text."""

from __future__ import annotations

import textwrap

import pytest

from rawtcp.packetdrill.parser import parse_script
from rawtcp.packetdrill.runner import Result, RunOptions, run_script

#: the runner's tests fix rawtcp's ACK policy (an ACK for every segment at once), so they
#: test the runner, not the core's delayed-ACK heuristics
FIXED = {"delayed_ack": 0}


def run_text(text: str, path: str = "t.pkt", **options) -> Result:
    """Parse ``text`` (dedented) and run it on the virtual clock."""
    script = parse_script(textwrap.dedent(text).lstrip("\n"), path)
    options.setdefault("config_overrides", dict(FIXED))
    return run_script(script, RunOptions(**options))


@pytest.fixture
def run():
    return run_text
