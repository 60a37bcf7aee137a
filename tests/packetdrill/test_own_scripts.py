"""The project's own packetdrill scripts (tests/packetdrill/scripts/*.pkt) pass against rawtcp.

Each script states, in packetdrill's language, how rawtcp must behave on one close path,
retransmission or RFC 5961 case (the RFC 9293 section is cited in the script's comments); the
runner plays the peer on the virtual clock. A second test checks that the runner would notice:
each script with one expected outbound segment altered fails at that line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rawtcp.packetdrill import parse_file, parse_script
from rawtcp.packetdrill.runner import run_script

SCRIPTS = sorted((Path(__file__).parent / "scripts").glob("*.pkt"))


def test_the_scripts_are_there() -> None:
    names = {p.stem for p in SCRIPTS}
    for must in ("close-active-client", "close-simultaneous", "close-passive",
                 "close-unread-data-rst", "shutdown-wr-half-close",
                 "close-fin-wait-1-retransmit", "close-closing-fin-retransmit",
                 "close-last-ack-fin-retransmit", "time-wait-reack-fin",
                 "handshake-lost-third-ack-data", "handshake-synack-retransmit",
                 "rfc5961-rst", "rfc5961-syn", "rfc5961-ack"):
        assert must in names


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_passes(path: Path) -> None:
    text = path.read_text()
    assert "RFC 9293" in text or "RFC 5961" in text, "every script cites its RFC section"
    res = run_script(parse_file(path))
    assert res.status == "PASS", "\n".join(res.diagnostics())


_ACK = re.compile(r"^(\s*\S+ > [^\n]* ack )(\d+)", re.M)


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_fails_when_an_expectation_is_wrong(path: Path) -> None:
    """The last outbound line that checks an ACK number, off by one: the run must fail there."""
    text = path.read_text()
    matches = list(_ACK.finditer(text))
    assert matches, "the script expects at least one outbound ACK"
    m = matches[-1]
    bad = text[:m.start(2)] + str(int(m.group(2)) + 1) + text[m.end(2):]
    line = text.count("\n", 0, m.start()) + 1
    res = run_script(parse_script(bad, str(path)))
    assert res.status == "FAIL"
    assert res.failure is not None and res.failure.line == line, res.diagnostics()
