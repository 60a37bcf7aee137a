"""`rawtcp experiment run NAME --peer-swap`: the arguments it refuses, with one line and exit 2,
before any lab is built; and the Python API's refusal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rawtcp.experiments.peerswap import SCENARIOS, run_peer_swap


def _rawtcp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("args, words", [
    (["handshake", "--peer-swap"], "does not support --peer-swap (supported: lifecycle"),
    (["zero-window", "--peer-swap", "--json"], "does not support --peer-swap"),
    (["lifecycle", "--peer-swap", "--runs", "3"], "--peer-swap runs the experiment once"),
    (["lifecycle", "--peer-swap", "--packetdrill", "/tmp/x.pkt"], "--packetdrill"),
    (["lifecycle", "--peer-swap", "--drop", "out flgs=A"], "unknown key 'flgs'"),
])
def test_refused_with_one_line_and_exit_2(args: list[str], words: str) -> None:
    p = _rawtcp("experiment", "run", *args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


def test_help_names_the_option() -> None:
    p = _rawtcp("experiment", "run", "--help")
    assert p.returncode == 0 and "--peer-swap" in p.stdout


def test_api_refuses_an_experiment_without_a_scenario() -> None:
    with pytest.raises(LookupError, match="does not support --peer-swap"):
        run_peer_swap("syn-drop")
    assert "syn-drop" not in SCENARIOS
