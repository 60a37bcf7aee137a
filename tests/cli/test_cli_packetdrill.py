"""`--packetdrill FILE` on `rawtcp experiment run` and `rawtcp connect/listen` (issue 10):
the run written as a packetdrill script from the kernel peer's point of view."""

from __future__ import annotations

import json

from test_cli import one_line, run

from rawtcp.packetdrill import parse_file
from rawtcp.packetdrill.script import Packet, Syscall


def test_experiment_run_writes_the_peers_script(tmp_path):
    path = tmp_path / "fad.pkt"
    r = run("experiment", "run", "final-ack-drop", "--json", "--packetdrill", str(path))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    script = parse_file(str(path))
    pkts = [e for e in script.events if isinstance(e, Packet)]
    calls = [e.name for e in script.events if isinstance(e, Syscall)]
    # the kernel accepted: it listens; rawtcp's SYN comes in, the kernel's SYN-ACK goes out
    assert calls[:4] == ["socket", "setsockopt", "bind", "listen"] and "accept" in calls
    assert (pkts[0].direction, pkts[0].flags) == ("<", "S")
    assert (pkts[1].direction, pkts[1].flags) == (">", "S.")
    # final-ack-drop: the kernel's FIN goes out twice (the final ACK was dropped)
    fins = [p for p in pkts if p.direction == ">" and "F" in p.flags]
    assert len(fins) >= 2 and fins[0].seq_start == fins[1].seq_start
    n_out = sum(1 for e in res["events"] if e.get("ev") == "seg" and e.get("dir") == "out") \
        if "events" in res else None
    assert n_out is None or n_out >= sum(1 for p in pkts if p.direction == "<")
    assert "packetdrill --ip_version=ipv4" in path.read_text()      # how to replay on Linux


def test_packetdrill_file_in_a_missing_directory_is_exit_2(tmp_path):
    bad = tmp_path / "no" / "such" / "dir" / "x.pkt"
    r = run("experiment", "run", "handshake", "--packetdrill", str(bad))
    assert r.returncode == 2 and "--packetdrill" in one_line(r.stderr)
    assert "===" not in r.stdout
    r = run("connect", "10.1.2.3", "7", "--packetdrill", str(bad))
    assert r.returncode == 2 and "--packetdrill" in one_line(r.stderr)


def test_parallel_run_ends_cleanly():
    """-j 2: worker processes run the scripts; the pool ends without killing them (no
    traceback on stderr), and the last line counts every script."""
    import os

    scripts = os.path.join(os.path.dirname(__file__), "..", "packetdrill", "scripts")
    n = len([f for f in os.listdir(scripts) if f.endswith(".pkt")])
    r = run("packetdrill", "-j", "2", scripts)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "Terminated" not in r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"{n} passed, 0 failed"
