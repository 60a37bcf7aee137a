"""Sweeps against the Linux kernel in private labs: what dropping (or duplicating) one
segment of `lifecycle` and `final-ack-drop` does is what RFC 9293 and RFC 6298 predict, runs
go in parallel child processes, and SIGTERM/Ctrl-C leave no lab behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rawtcp.cli import main
from rawtcp.experiments.sweep import Fault, sweep
from rawtcp.host import registry
from rawtcp.lab.base import tag_pid

pytestmark = pytest.mark.kernel

# lifecycle's runs end after rawtcp's TIME_WAIT (2 MSL); 2 x 0.3 s instead of the lab's 2 s
# keeps the tests short and changes nothing before it (every run of a sweep gets it)
SHORT_TIME_WAIT = ["--config", "msl=300000"]


def _left_by(pids: set[int]) -> list[str]:
    """Kernel objects (registered, or namespaces named after a pid) of these processes."""
    out = [f"{e.kind}:{e.name}" for e in registry.entries() if e.pid in pids]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout.split("\n")
    out += [n.split()[0] for n in names if n.split() and tag_pid(n.split()[0]) in pids]
    return out


def _row(rows: list[dict], pred) -> dict:
    found = [r for r in rows if pred(r)]
    assert len(found) == 1, rows
    return found[0]


def test_lifecycle_first_four_segments(tmp_path, capsys):
    """`rawtcp experiment sweep lifecycle --max-segments 4 --jobs 2 --json --report DIR`
    (and a short TIME_WAIT):
    - the SYN lost: rawtcp retransmits it when its initial RTO (1 s) expires (RFC 6298 2.1,
      RFC 9293 3.8.1);
    - the SYN-ACK lost: the handshake waits for a timer again (rawtcp's SYN or the kernel's
      SYN-ACK, both 1 s);
    - the handshake's ACK lost: the first data segment carries the same acknowledgment and
      completes the kernel's handshake (RFC 9293 3.10.7.4, SYN-RECEIVED): no retransmission;
    - the data lost: rawtcp retransmits it at its RTO (RFC 6298 5.4); the kernel has nothing
      to acknowledge, so no duplicate ACKs and no fast retransmit."""
    rc = main(["experiment", "sweep", "lifecycle", "--max-segments", "4", "--jobs", "2",
               "--json", "--report", str(tmp_path), "--quiet", *SHORT_TIME_WAIT])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0, out
    rows = out["rows"]
    assert out["reference"]["passed"] and len(rows) == 4
    assert [r["index"] for r in rows] == [1, 2, 3, 4]
    syn = _row(rows, lambda r: r["dir"] == "out" and r["segment"].startswith("S "))
    assert (syn["outcome"], syn["recovery"], syn["by"]) == ("recovered", "rto", "rawtcp"), syn
    synack = _row(rows, lambda r: r["dir"] == "in" and r["segment"].startswith("SA "))
    assert (synack["outcome"], synack["recovery"]) == ("recovered", "rto"), synack
    ack = _row(rows, lambda r: r["dir"] == "out" and r["segment"].startswith("A seq=1 "))
    assert (ack["outcome"], ack["recovery"]) == ("recovered", "none"), ack
    data = _row(rows, lambda r: r["dir"] == "out" and "len=0" not in r["segment"])
    assert (data["outcome"], data["recovery"], data["by"]) == ("recovered", "rto", "rawtcp")
    # every run's rule hit the reference segment it was made for
    for r in rows:
        assert r["hit"] is not None and r["hit"]["dir"] == r["dir"], r
        assert r["segment"].split()[0] == r["hit"]["flags"], r
    for kind in ("table", "sweep_ladder", "json", "plot", "trace", "pcap"):
        assert os.path.getsize(out["files"][kind]) > 0, kind
    ladder = open(out["files"]["sweep_ladder"], encoding="utf-8").read()
    assert all(f"<- #{i} drop: " in ladder for i in (1, 2, 3, 4))


def test_final_ack_drop_fin_and_final_ack():
    """final-ack-drop already loses rawtcp's first ACK of the kernel's FIN. On top of that:
    - the kernel's FIN lost: the kernel retransmits it at its RTO (RFC 9293 3.8.1; its FIN
      stays queued until acknowledged, 3.10.7.4 LAST-ACK); recovered;
    - the FIN duplicated: the copy reaches rawtcp in TIME_WAIT, which acknowledges it (RFC
      9293 3.10.7.4 TIME-WAIT): that ACK closes the kernel without a retransmission;
    - the final ACK (re-sent from TIME_WAIT) lost: the kernel retransmits its FIN again, by
      RTO, and rawtcp answers from TIME_WAIT again (RFC 9293 3.6, 3.10.7.4): recovered;
    - the final ACK duplicated: the first copy closes the kernel's socket, the second finds
      only the listener, which answers an ACK with RST (RFC 9293 3.10.7.2, LISTEN); rawtcp
      in TIME_WAIT ignores it (RFC 1337)."""
    def pick(s) -> bool:
        return ((s.dir == "in" and "F" in s.flags and not s.rtx)
                or (s.dir == "out" and s.state == "TIME_WAIT"))

    res = sweep("final-ack-drop", select=pick, also=Fault("duplicate"), jobs=2)
    assert res.reference_passed
    got = {(r.segment.dir, r.fault.action): r.outcome for r in res.rows}
    assert set(got) == {("in", "drop"), ("in", "duplicate"), ("out", "drop"),
                        ("out", "duplicate")}, res.rows
    o = got[("in", "drop")]
    assert (o.kind, o.recovery, o.by) == ("recovered", "rto", "kernel"), o
    o = got[("in", "duplicate")]
    assert (o.kind, o.recovery) == ("recovered", "none"), o
    o = got[("out", "drop")]
    assert (o.kind, o.recovery, o.by) == ("recovered", "rto", "kernel"), o
    o = got[("out", "duplicate")]
    assert (o.kind, o.detail) == ("rst", "RST from kernel"), o
    assert all(r.facts.final_states == ["CLOSED"] for r in res.rows)


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return {int(x) for x in f.read().split()}
    except OSError:
        return set()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_sweep_removes_every_child_lab(sig, code):
    """SIGTERM or Ctrl-C (SIGINT) to `rawtcp experiment sweep` while two child runs have
    their labs up: every child stops and tears its lab down, the command exits 143 / 130."""
    proc = subprocess.Popen([sys.executable, "-m", "rawtcp", "experiment", "sweep",
                             "lifecycle", "--jobs", "2", "--max-segments", "4", "--quiet",
                             *SHORT_TIME_WAIT],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kids: set[int] = set()
    try:
        # wait until two sweep runs have their labs up at once (after the reference run)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            now = _children(proc.pid)
            kids |= now
            if len({e.pid for e in registry.entries()
                    if e.pid in now and e.kind == "netns"}) >= 2:
                break
            time.sleep(0.02)
        assert kids and len(_left_by(kids)) >= 2, "no two child labs came up"
        proc.send_signal(sig)
        assert proc.wait(60) == code, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(not registry.pid_alive(k) for k in kids)
    assert _left_by(kids) == []
