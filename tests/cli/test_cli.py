"""The `rawtcp` command, run as a real subprocess (root; the kernel tests need it)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

RAWTCP = [sys.executable, "-m", "rawtcp"]


def run(*args: str, timeout: float = 120, netns: str | None = None,
        unprivileged: bool = False):
    cmd = RAWTCP + list(args)
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    if unprivileged:  # no capabilities at all; uid 0 keeps the checkout readable
        cmd = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"] + cmd
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
    r = run("demo", unprivileged=True)
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
        assert (out / name / f"{name}.pcap").stat().st_size > 24
        assert (out / name / f"{name}.trace.jsonl").stat().st_size > 0
        assert "<html" in (out / name / "index.html").read_text()   # a page per experiment
    out = out / "final-ack-drop"
    # the ladder command draws the same trace again, from the file
    r2 = run("ladder", str(out / "final-ack-drop.trace.jsonl"))
    assert r2.returncode == 0 and "TIME_WAIT" in r2.stdout and "[rtx]" in r2.stdout
    # and from the pcap
    r3 = run("ladder", str(out / "final-ack-drop.pcap"))
    assert r3.returncode == 0 and "FA" in r3.stdout
    # Wireshark's dissector reads the capture and sees the kernel's retransmitted FIN
    ts = subprocess.run(["tshark", "-r", str(out / "final-ack-drop.pcap"), "-Y",
                         "tcp.analysis.retransmission", "-T", "fields", "-e", "tcp.flags.str"],
                        capture_output=True, text=True, timeout=60)
    assert ts.returncode == 0, ts.stderr
    assert any("F" in line for line in ts.stdout.splitlines()), ts.stdout
    # Wireshark's own format (pcapng) draws the same ladder; a wrong --ours is a bad argument
    ng = out / "converted.pcapng"
    subprocess.run(["tshark", "-r", str(out / "final-ack-drop.pcap"), "-F", "pcapng", "-w",
                    str(ng)], capture_output=True, timeout=60, check=True)
    r4 = run("ladder", str(ng))
    assert r4.returncode == 0 and r4.stdout == r3.stdout
    r5 = run("ladder", str(ng), "--ours", "192.0.2.99")
    assert r5.returncode == 2 and "192.0.2.99" in one_line(r5.stderr)


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
    assert r.returncode == 2
    assert "neither a capture" in one_line(r.stderr)


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
    assert r.returncode == 2 and name in one_line(r.stderr)


def test_lab_clean_keeps_labs_made_by_lab_up_unless_forced():
    """`lab clean` removes what dead processes left behind, not a lab in use."""
    r = run("lab", "up")
    assert r.returncode == 0, r.stderr
    name = r.stdout.split()[1]
    try:
        c = run("lab", "clean")
        assert c.returncode == 0, c.stderr
        nets = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"{name}k" in nets and f"{name}r" in nets, c.stdout
    finally:
        d = run("lab", "down", name)
    assert d.returncode == 0, d.stderr


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


def _lab_up(*extra: str) -> dict:
    r = run("lab", "up", *extra)
    assert r.returncode == 0, r.stderr
    name = r.stdout.split()[1]
    from rawtcp.lab.persistent import lab_record

    return lab_record(name).to_dict()


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
                            "--drop", "out flags=PA nth=1", "--ladder"]
            r = subprocess.run(cmd, input=b"hello over rawtcp\n", capture_output=True,
                               timeout=60)
        finally:
            srv.stop()
    finally:
        run("lab", "down", rec["name"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello over rawtcp\n"
    err = r.stderr.decode()          # the live ladder: rows on stderr, the dropped one with X
    assert "SYN_SENT" in err and "S seq=0 len=0" in err and "PA seq=1 ack=1 len=18 ---X" in err
    assert "[rtx]" in err and "TIME_WAIT" in err
    from rawtcp.trace import read_trace

    evs = read_trace(trace)
    faults = [e for e in evs if e["ev"] == "fault"]
    assert len(faults) == 1 and faults[0]["flags"] == "PA"      # first data segment dropped
    assert any(e["ev"] == "retransmit" for e in evs)            # ... and retransmitted
    assert pcap.stat().st_size > 24


def _listen_with_kernel_client(rec: dict, port: int, addr: str, stdin: bytes | None,
                               wait_for: str, **client_opts):
    """`rawtcp listen` on lab ``rec`` (stdin: these bytes, then EOF; None: nothing) with a
    kernel Client connecting to ``addr``; returns (status, stdout, stderr, the client's
    ``wait_for`` event). Everything started is stopped, also on failure."""
    from rawtcp.lab.peers import Client

    cmd = RAWTCP + ["listen", "--lab", rec["name"], str(port), "--timeout", "20"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if stdin is not None:
            proc.stdin.write(stdin)
            proc.stdin.close()
            proc.stdin = None                   # communicate() must not touch it again
        # wait until rawtcp says it listens (bounded by the read timeout of the test)
        line = proc.stderr.readline().decode()
        assert "listening" in line, line
        cl = Client(rec["kernel_netns"], addr, port, **client_opts).start()
        try:
            ev = cl.wait_event(wait_for, timeout=20)
            out, err = proc.communicate(timeout=30)
        finally:
            cl.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err, ev


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_listen_netcat_accepts_a_kernel_client(family):
    """`rawtcp listen` listens on every address of the link: IPv4 and IPv6."""
    rec = _lab_up("--ipv6")
    try:
        addr = [a for a in rec["rawtcp_addrs"] if (":" in a) == (family == "ipv6")][0]
        code, out, err, _ = _listen_with_kernel_client(rec, 5000, addr, None, "sent",
                                                       count=3000, no_read=True)
    finally:
        run("lab", "down", rec["name"])
    assert code == 0, err
    assert len(out) == 3000


def test_experiment_run_exit_1_when_the_expectation_fails():
    """An extra fault the experiment does not expect: lifecycle's 'no retransmissions' check
    (RFC 6298 5: a lost segment is retransmitted) fails, and so does the exit status."""
    r = run("experiment", "run", "lifecycle", "--json", "--drop", "out len>0 nth=1")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["verdict"] == "FAIL" and not res["passed"]
    failed = [c["check"] for c in res["checks"] if not c["ok"]]
    assert failed == ["no retransmissions"], failed


def test_experiment_run_bad_extra_rule_is_exit_2_before_any_lab():
    r = run("experiment", "run", "lifecycle", "--delay", "out flags=S")
    assert r.returncode == 2
    assert "ms=" in one_line(r.stderr)


def test_experiment_runs_with_report_dir_get_trace_pcap_ladder_and_plot(tmp_path):
    r = run("experiment", "run", "lifecycle", "--runs", "2", "--seed", "5",
            "--report", str(tmp_path))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "lifecycle: 2/2 runs passed" in r.stdout
    assert "FIN_WAIT_2" in r.stdout and "|" in r.stdout          # the ladder is printed
    for sub in ("run1-seed5", "run2-seed6"):
        d = tmp_path / sub
        names = sorted(p.name for p in d.iterdir())
        assert names == ["index.html", "lifecycle.cwnd.png", "lifecycle.ladder.txt",
                         "lifecycle.pcap", "lifecycle.pcapng", "lifecycle.rtt.png",
                         "lifecycle.trace.jsonl", "lifecycle.tsg.png"], names
        ladder = (d / "lifecycle.ladder.txt").read_text()
        assert "TIME_WAIT" in ladder                      # rawtcp's state, left
        assert "| CLOSE_WAIT" in ladder                   # the kernel's state, right
        assert (d / "lifecycle.tsg.png").read_bytes()[:4] == b"\x89PNG"
        kernel = [json.loads(ln) for ln in (d / "lifecycle.trace.jsonl").read_text().splitlines()
                  if '"kernel"' in ln]
        assert kernel and all("total_retrans" in e for e in kernel)


def test_loss_sweep_json_report_and_progress(tmp_path):
    """RFC 5681 / RFC 6298: transfers under 0-10 % loss stay intact; the sweep plot is drawn;
    progress goes to stderr while stdout holds only the JSON."""
    r = run("experiment", "run", "loss-sweep", "--json", "--report", str(tmp_path),
            timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["verdict"] == "PASS", res["checks"]
    progress = [ln for ln in r.stderr.splitlines() if "Mbit/s" in ln]
    assert len(progress) == 8 and "loss 10% seed 2" in progress[-1], r.stderr
    plot = tmp_path / "loss-sweep.sweep.png"
    assert res["files"]["sweep"] == str(plot) and plot.stat().st_size > 1000
    assert sorted({x["loss"] for x in res["metrics"]["results"]}) == [0.0, 0.01, 0.05, 0.10]
    assert res["metrics"]["sweep_s"] <= res["duration_s"]


def test_help_of_every_subcommand_is_exit_0():
    for args in (["--help"], ["demo", "--help"], ["experiment", "list", "--help"],
                 ["experiment", "run", "--help"], ["connect", "--help"], ["listen", "--help"],
                 ["lab", "up", "--help"], ["ladder", "--help"], ["peer-check", "--help"],
                 ["config", "--help"], ["bench", "--help"]):
        r = run(*args)
        assert r.returncode == 0 and "usage: rawtcp" in r.stdout, (args, r.stderr)
    r = run("experiment", "run", "--help")
    for opt in ("--seed", "--runs", "--json", "--report", "--quiet", "--drop", "--corrupt",
                "--config KEY=VALUE", "--config-file FILE"):
        assert opt in r.stdout, opt
    for cmd in ("connect", "listen"):
        r = run(cmd, "--help")
        assert "--config KEY=VALUE" in r.stdout and "--config-file FILE" in r.stdout, cmd


def test_bad_output_dir_and_timeout_are_bad_arguments(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("experiment", "run", "handshake", "--report", str(blocker))
    assert r.returncode == 2 and "--report" in one_line(r.stderr)
    assert "===" not in r.stdout                      # refused before anything ran
    r = run("connect", "10.1.2.3", "7", "--timeout", "-1")
    assert r.returncode == 2 and "--timeout" in one_line(r.stderr)


def test_every_fault_option_help_example_parses():
    """The help shows an example rule per action; each must be a valid rule."""
    import re

    from rawtcp.faults import parse_rule

    r = run("experiment", "run", "--help")
    text = " ".join(r.stdout.split())
    for action in ("drop", "delay", "duplicate", "reorder", "corrupt"):
        m = re.search(rf"--{action} RULE {action} matching segments, e\.g\. '([^']*)'", text)
        assert m, f"no example for --{action}"
        parse_rule(action, m.group(1))


def test_extra_faults_accepts_rules_and_one_string():
    from rawtcp.experiments import run_experiment
    from rawtcp.faults import parse_rule

    as_rule = run_experiment("handshake", ladder=False,
                             extra_faults=[parse_rule("delay", "out flags=S ms=50")])
    as_text = run_experiment("handshake", ladder=False, extra_faults="delay out flags=S ms=50")
    for res in (as_rule, as_text):
        assert res.passed, res.checks
        faults = [e for e in res.events if e["ev"] == "fault"]
        assert len(faults) == 1 and faults[0]["action"] == "delay"


def test_sigterm_tears_the_lab_down():
    """`kill` (SIGTERM) during an experiment unwinds like Ctrl-C: no namespace is left."""
    import signal
    import time

    proc = subprocess.Popen(RAWTCP + ["experiment", "run", "zero-window", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    prefix = f"rt{proc.pid & 0xFFFFFF:06x}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:           # wait until its lab exists
            nets = subprocess.run(["ip", "netns", "list"], capture_output=True,
                                  text=True).stdout
            if prefix in nets:
                break
            time.sleep(0.05)
        assert prefix in nets, "the experiment never built its lab"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert "terminated" in err.decode()
    nets = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in nets


def test_listen_sends_its_stdin_after_the_peer_half_closed():
    """RFC 9293 3.6 (half-close): a kernel client sends 10 kB and its FIN at once, then reads
    to EOF. `rawtcp listen` must still send all of its stdin (only stdin's EOF sends its
    FIN); it used to close as soon as it had read the client's EOF."""
    rec = _lab_up()
    stdin = b"from rawtcp's stdin\n" * 500
    try:
        code, out, err, eof = _listen_with_kernel_client(rec, 5001, rec["rawtcp_addrs"][0],
                                                         stdin, "eof", count=10_000)
    finally:
        run("lab", "down", rec["name"])
    assert code == 0, err
    assert len(out) == 10_000
    assert eof["bytes"] == len(stdin)
    assert eof["sha256"] == hashlib.sha256(stdin).hexdigest()


def test_second_listener_on_a_lab_port_is_refused_until_the_first_is_gone():
    """Two `rawtcp listen` on one lab port would reset each other's connections: the second
    is refused with EADDRINUSE naming the first; the claim ends with its process, even when
    that process is killed (SIGKILL)."""
    import signal

    rec = _lab_up()
    cmd = RAWTCP + ["listen", "--lab", rec["name"], "5002", "--timeout", "20"]
    first = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        assert "listening" in first.stderr.readline().decode()
        second = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=30)
        assert second.returncode == 1
        err = second.stderr.decode().strip().splitlines()
        assert len(err) == 1 and "already used by another rawtcp" in err[0], err
        assert f"pid {first.pid}" in err[0]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        third = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        try:
            assert "listening" in third.stderr.readline().decode()
        finally:
            third.kill()
            third.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        run("lab", "down", rec["name"])


@pytest.mark.parametrize("args,says", [
    (("ladder", "/"), "is a directory"),
    (("connect", "10.9.9.9", "80", "--link", "tun", "--addr", "banana"),
     "--addr 'banana' is not an IPv4 or IPv6 address"),
    (("connect", "10.9.9.9", "80", "--link", "tun", "--addr", "fd00::9"),
     "the peer 10.9.9.9 is IPv4 but --addr fd00::9 is IPv6"),
])
def test_more_bad_arguments_are_one_line_and_exit_2(args, says):
    """Found by trying the CLI as a user would (issue 9): these exited 1, or said that the
    link had no IPv4 address when the mistake was the address family of --addr."""
    r = run(*args, timeout=30)
    assert r.returncode == 2, r.stderr
    assert says in one_line(r.stderr)
