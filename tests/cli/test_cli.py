"""The `rawtcp` command, run as a real subprocess (root; the kernel tests need it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

RAWTCP = [sys.executable, "-m", "rawtcp"]


def run(*args: str, timeout: float = 120, netns: str | None = None, user: str | None = None):
    cmd = RAWTCP + list(args)
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    env.pop("RAWTCP_DEBUG", None)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


def test_bad_argument_is_one_line_and_exit_2():
    r = run("experiment", "run")
    assert r.returncode == 2
    assert "name" in one_line(r.stderr)


def test_unknown_experiment_is_one_line_and_exit_2():
    r = run("experiment", "run", "no-such-thing")
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "no-such-thing" in line and "final-ack-drop" in line


def test_bad_fault_rule_names_the_bad_part():
    r = run("connect", "10.1.2.3", "7", "--link", "tun", "--addr", "10.9.9.2",
            "--drop", "out flgs=A")
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "flgs" in line


def test_connect_without_a_link_choice_says_what_to_give():
    r = run("connect", "10.1.2.3", "7")
    assert r.returncode == 2
    assert "--lab NAME" in one_line(r.stderr)


def test_experiment_list_names_the_catalogue():
    r = run("experiment", "list")
    assert r.returncode == 0, r.stderr
    for name in ("handshake", "lifecycle", "final-ack-drop", "final-ack-drop-passive"):
        assert any(line.startswith(name + " ") for line in r.stdout.splitlines()), name


def test_unprivileged_demo_says_which_privileges_it_needs():
    r = run("demo", user="65534")
    assert r.returncode != 0
    line = one_line(r.stderr)
    assert "root" in line and "NET_ADMIN" in line and "NET_RAW" in line


def test_demo_runs_three_experiments_and_writes_files(tmp_path):
    out = tmp_path / "demo"
    r = run("demo", "--dir", str(out), timeout=180)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("=> ") == 3 and "3/3 experiments held" in r.stdout
    # a ladder: the dropped final ACK dies half-way with an X
    assert "--X" in r.stdout
    for name in ("lifecycle", "final-ack-drop", "final-ack-drop-passive"):
        assert (out / f"{name}.pcap").stat().st_size > 24
        assert (out / f"{name}.trace.jsonl").stat().st_size > 0
    # the ladder command draws the same trace again, from the file
    r2 = run("ladder", str(out / "final-ack-drop.trace.jsonl"))
    assert r2.returncode == 0 and "TIME_WAIT" in r2.stdout and "[rtx]" in r2.stdout
    # and from the pcap
    r3 = run("ladder", str(out / "final-ack-drop.pcap"))
    assert r3.returncode == 0 and "FA" in r3.stdout


def test_experiment_run_json(tmp_path):
    r = run("experiment", "run", "handshake", "--json", "--report", str(tmp_path))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["verdict"] == "PASS" and res["experiment"] == "handshake"
    assert all(c["ok"] for c in res["checks"])
    assert os.path.exists(res["files"]["pcap"])


def test_ladder_of_garbage_file_is_one_clear_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text("not json\nnot json either\n")
    r = run("ladder", str(p))
    assert r.returncode == 1
    assert "neither a pcap nor" in one_line(r.stderr)


def test_lab_up_list_down():
    r = run("lab", "up")
    assert r.returncode == 0, r.stderr
    name = r.stdout.split()[1]
    try:
        ls = run("lab", "list")
        assert name in ls.stdout
        nets = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"{name}k" in nets and f"{name}r" in nets
    finally:
        d = run("lab", "down", name)
    assert d.returncode == 0, d.stderr
    nets = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{name}k" not in nets and f"{name}r" not in nets
    r = run("lab", "down", name)
    assert r.returncode == 1 and name in one_line(r.stderr)


def test_peer_check_against_a_kernel_over_raw_ip():
    """What docker compose runs, here against a kernel in a veth lab (raw IP link)."""
    from rawtcp.lab import VethLab

    with VethLab(mode="rawip", family="ipv4") as lab:
        srv = lab.server("echo", port=7, max_conns=5, timeout=60)
        srv.wait_ready()
        r = run("peer-check", "--peer", lab.kernel_addr, "--port", "7",
                netns=lab.rawtcp_netns, timeout=90)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "PASS (7/7" in r.stdout


@pytest.mark.parametrize("args", [["lab"], ["experiment"]])
def test_missing_action_is_exit_2(args):
    r = run(*args)
    assert r.returncode == 2
    one_line(r.stderr)


def _lab_up() -> dict:
    r = run("lab", "up")
    assert r.returncode == 0, r.stderr
    name = r.stdout.split()[1]
    from rawtcp.commands import _lab_record

    return _lab_record(name)


def test_connect_netcat_over_a_lab_with_pcap_and_trace(tmp_path):
    """`rawtcp connect`: stdin goes to the kernel echo server, its answer comes to stdout."""
    from rawtcp.lab.peers import Server

    rec = _lab_up()
    try:
        srv = Server(rec["kernel_netns"], "echo", port=7, bind="0.0.0.0").start()
        try:
            srv.wait_ready()
            pcap, trace = tmp_path / "c.pcap", tmp_path / "c.jsonl"
            cmd = RAWTCP + ["connect", "--lab", rec["name"], rec["kernel_addrs"][0], "7",
                            "--pcap", str(pcap), "--trace", str(trace),
                            "--drop", "out flags=PA nth=1"]
            r = subprocess.run(cmd, input=b"hello over rawtcp\n", capture_output=True,
                               timeout=60)
        finally:
            srv.stop()
    finally:
        run("lab", "down", rec["name"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello over rawtcp\n"
    from rawtcp.trace import read_trace

    evs = read_trace(trace)
    faults = [e for e in evs if e["ev"] == "fault"]
    assert len(faults) == 1 and faults[0]["flags"] == "PA"      # first data segment dropped
    assert any(e["ev"] == "retransmit" for e in evs)            # ... and retransmitted
    assert pcap.stat().st_size > 24


def test_listen_netcat_accepts_a_kernel_client():
    from rawtcp.lab.peers import Client

    rec = _lab_up()
    try:
        cmd = RAWTCP + ["listen", "--lab", rec["name"], "5000", "--timeout", "20"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            # wait until rawtcp says it listens (bounded by the read timeout of the test)
            line = proc.stderr.readline().decode()
            assert "listening" in line, line
            cl = Client(rec["kernel_netns"], rec["rawtcp_addrs"][0], 5000, count=3000,
                        no_read=True).start()
            try:
                cl.wait_event("sent", timeout=20)
                out, err = proc.communicate(timeout=30)
            finally:
                cl.stop()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        run("lab", "down", rec["name"])
    assert proc.returncode == 0, err
    assert len(out) == 3000
