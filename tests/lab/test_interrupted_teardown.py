"""A Ctrl-C or SIGTERM that lands inside a removal (a namespace, an nftables table) does not
leave it half done: the removal finishes, its registry entry goes, then the interrupt is
raised."""

import subprocess

import pytest

from rawtcp.host import netns, nft, registry


@pytest.fixture
def reg_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    return tmp_path


def test_delete_table_finishes_when_interrupted(reg_dir, monkeypatch):
    name = "rt_rawip_1_abcdef"
    registry.register("nft", name, "rtns", "inet")
    calls = []

    def fake_run(cmd, input=None, check=True, timeout=10.0):
        calls.append(cmd)
        if len(calls) == 1:
            raise KeyboardInterrupt    # Ctrl-C while `nft delete table` runs
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(nft, "run", fake_run)
    with pytest.raises(KeyboardInterrupt):
        nft.delete_table("rtns", "inet", name)
    assert calls[-1][-4:] == ["delete", "table", "inet", name]
    assert len(calls) == 2
    assert registry.entries() == []


def test_delete_table_runs_again_when_nft_dies_of_the_signal(reg_dir, monkeypatch):
    """`nft` is in rawtcp's process group: the terminal's Ctrl-C kills it too."""
    name = "rt_rawip_1_abcdef"
    registry.register("nft", name, None, "inet")
    codes = [-2, 0]

    def fake_run(cmd, input=None, check=True, timeout=10.0):
        return subprocess.CompletedProcess(cmd, codes.pop(0), "", "")

    monkeypatch.setattr(nft, "run", fake_run)
    nft.delete_table(None, "inet", name)
    assert codes == []
    assert registry.entries() == []


def test_delete_table_keeps_the_entry_when_nft_never_ran_to_its_end(reg_dir, monkeypatch):
    name = "rt_rawip_1_abcdef"
    registry.register("nft", name, None, "inet")
    monkeypatch.setattr(nft, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, -2))
    with pytest.raises(OSError, match="could not be deleted"):
        nft.delete_table(None, "inet", name)
    assert [e.name for e in registry.entries()] == [name]


def test_delete_netns_runs_again_when_ip_dies_of_the_signal(reg_dir, monkeypatch):
    name = "rt0000011234k"
    registry.register("netns", name)
    state = {"exists": True, "runs": 0}

    def fake_run(cmd, input=None, check=True, timeout=10.0):
        state["runs"] += 1
        if state["runs"] == 2:         # the first `ip netns del` died of SIGINT
            state["exists"] = False
        return subprocess.CompletedProcess(cmd, -2 if state["runs"] == 1 else 0)

    monkeypatch.setattr(netns, "run", fake_run)
    monkeypatch.setattr(netns, "netns_pids", lambda n: [])
    monkeypatch.setattr(netns, "netns_exists", lambda n: state["exists"])
    netns.delete_netns(name)
    assert state == {"exists": False, "runs": 2}
    assert registry.entries() == []


def test_delete_netns_keeps_the_entry_while_the_namespace_exists(reg_dir, monkeypatch):
    name = "rt0000011234k"
    registry.register("netns", name)
    monkeypatch.setattr(netns, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, -2))
    monkeypatch.setattr(netns, "netns_pids", lambda n: [])
    monkeypatch.setattr(netns, "netns_exists", lambda n: True)
    with pytest.raises(OSError, match="could not be deleted"):
        netns.delete_netns(name)
    assert [e.name for e in registry.entries()] == [name]


def test_delete_netns_finishes_when_interrupted(reg_dir, monkeypatch):
    name = "rt0000011234k"
    registry.register("netns", name)
    state = {"exists": True, "runs": 0}

    def fake_run(cmd, input=None, check=True, timeout=10.0):
        state["runs"] += 1
        if state["runs"] == 1:
            raise SystemExit(143)      # SIGTERM while `ip netns del` runs
        assert cmd == ["ip", "netns", "del", name]
        state["exists"] = False
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(netns, "run", fake_run)
    monkeypatch.setattr(netns, "netns_pids", lambda n: [])
    monkeypatch.setattr(netns, "netns_exists", lambda n: state["exists"])
    with pytest.raises(SystemExit):
        netns.delete_netns(name)
    assert state["exists"] is False
    assert registry.entries() == []


def test_an_error_of_the_removal_itself_is_raised(reg_dir, monkeypatch):
    def fake_run(cmd, input=None, check=True, timeout=10.0):
        raise OSError(5, "nft is broken")

    monkeypatch.setattr(nft, "run", fake_run)
    with pytest.raises(OSError, match="nft is broken"):
        nft.delete_table(None, "inet", "rt_x_1_abcdef")


# ------------------------------------------------------------ a lab in a process without
# a SIGTERM handler (a multiprocessing worker, a script): SIGTERM tears the lab down
# the fake lab every script below builds: its peer's stop() appends "stopped" to the marker
# file (argv[1]); with argv[2] == "slow" it first waits for a line from the test
FAKE_LAB = r'''
import sys
from rawtcp.lab import base

base.privileges.check = lambda need_tun=False: None
marker = sys.argv[1]
slow = sys.argv[2:3] == ["slow"]


class Peer:
    def stop(self):
        if slow:
            print("stopping", flush=True)
            sys.stdin.readline()          # the test sends SIGTERM, then a line
        with open(marker, "a") as f:
            f.write("stopped")


class FakeLab(base.Lab):
    def _build(self):
        self._peers.append(Peer())
'''


LAB_SCRIPT = FAKE_LAB + r'''

with FakeLab():
    print("up", flush=True)
    sys.stdin.readline()
    if not slow:
        sys.stdin.readline()              # never comes: SIGTERM arrives first
'''


def _start(tmp_path, mode):
    import subprocess
    import sys

    script = tmp_path / "lab_script.py"
    script.write_text(LAB_SCRIPT)
    marker = tmp_path / "marker"
    p = subprocess.Popen([sys.executable, str(script), str(marker), mode],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "up"
    return p, marker


def test_sigterm_while_a_lab_is_up_tears_it_down(tmp_path):
    import signal

    p, marker = _start(tmp_path, "fast")
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 143              # LabTerminated: unwound, then exit 143
    assert marker.read_text() == "stopped"


def test_sigterm_inside_the_teardown_waits_for_its_end(tmp_path):
    import signal

    p, marker = _start(tmp_path, "slow")
    p.stdin.write("\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "stopping"
    p.send_signal(signal.SIGTERM)
    p.stdin.write("\n")
    p.stdin.flush()
    assert p.wait(30) == -signal.SIGTERM   # delivered after the teardown, default action
    assert marker.read_text() == "stopped"


TWO_SIGNALS_SCRIPT = FAKE_LAB + r'''

lab = FakeLab().__enter__()
try:
    print("up", flush=True)
    sys.stdin.readline()                  # Ctrl-C arrives here
finally:
    print("cleaning", flush=True)         # cleanup of other things, before the lab's
    sys.stdin.readline()                  # SIGTERM arrives here, then a line
    lab.close()
'''


def test_a_second_signal_does_not_cut_short_the_way_to_the_teardown(tmp_path):
    """Ctrl-C, then SIGTERM while the code on the way to lab.close() runs (a pool worker:
    the terminal's Ctrl-C, then the pool's terminate()): SIGTERM unwinds (exit 143) and the
    lab is still torn down, at the process's exit if the code that closes it was cut
    short."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "two_signals.py"
    script.write_text(TWO_SIGNALS_SCRIPT)
    marker = tmp_path / "marker"
    p = subprocess.Popen([sys.executable, str(script), str(marker)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "up"
    p.send_signal(signal.SIGINT)
    assert p.stdout.readline().strip() == "cleaning"
    p.send_signal(signal.SIGTERM)
    p.stdin.write("\n")
    p.stdin.flush()
    assert p.wait(30) == 143               # LabTerminated, no traceback
    assert marker.read_text() == "stopped"
    assert "LabTerminated" not in p.stderr.read()


CAUGHT_SCRIPT = FAKE_LAB + r'''

lab = FakeLab().__enter__()
try:
    print("up", flush=True)
    sys.stdin.readline()                  # Ctrl-C arrives here
except KeyboardInterrupt:
    print("caught", flush=True)           # an interactive session goes on with the lab up
sys.stdin.readline()                      # a second Ctrl-C arrives here
'''


def test_ctrl_c_keeps_working_while_a_lab_is_up(tmp_path):
    """A program (a REPL, a notebook) that catches a Ctrl-C and goes on with its lab up can
    still be interrupted by the next one; the lab is torn down at exit."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "caught.py"
    script.write_text(CAUGHT_SCRIPT)
    marker = tmp_path / "marker"
    p = subprocess.Popen([sys.executable, str(script), str(marker)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "up"
    p.send_signal(signal.SIGINT)
    assert p.stdout.readline().strip() == "caught"
    p.send_signal(signal.SIGINT)
    assert p.wait(30) == -signal.SIGINT    # KeyboardInterrupt ended it (as Python does)
    assert "KeyboardInterrupt" in p.stderr.read()
    assert marker.read_text() == "stopped"


LEFT_UP_SCRIPT = FAKE_LAB + r'''
import multiprocessing

where = sys.argv[2]


def body():
    FakeLab().__enter__()
    raise KeyboardInterrupt       # cut short before the code that would close the lab


if where == "child":              # a pool worker: multiprocessing ends it with os._exit
    p = multiprocessing.get_context("fork").Process(target=body)
    p.start()
    p.join()
else:
    body()
'''


@pytest.mark.parametrize("where", ["process", "child"])
def test_a_lab_left_up_is_closed_when_the_process_exits(tmp_path, where):
    import sys

    script = tmp_path / "left_up.py"
    script.write_text(LEFT_UP_SCRIPT)
    marker = tmp_path / "marker"
    subprocess.run([sys.executable, str(script), str(marker), where], capture_output=True,
                   timeout=60, check=False)
    assert marker.read_text() == "stopped"       # once, by the process that made it


DETACHED_SCRIPT = FAKE_LAB + r'''
import signal

FakeLab().__enter__().detach()       # `rawtcp lab up`: the lab outlives the process
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
'''


def test_a_detached_lab_is_left_up_at_exit(tmp_path):
    import sys

    script = tmp_path / "detached.py"
    script.write_text(DETACHED_SCRIPT)
    marker = tmp_path / "marker"
    p = subprocess.run([sys.executable, str(script), str(marker)], capture_output=True,
                       text=True, timeout=60, check=False)
    assert p.stdout.strip() == "True"       # the process's own SIGTERM handling is back
    assert not marker.exists()


@pytest.mark.kernel
def test_lab_up_outlives_its_process(tmp_path):
    import sys

    from rawtcp.host.netns import netns_exists
    from rawtcp.lab import persistent

    code = ("import sys; from rawtcp.lab.persistent import lab_up; "
            "print(lab_up(labs_dir=sys.argv[1]).name)")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                       text=True, timeout=60, check=True)
    name = p.stdout.strip()
    try:
        rec = persistent.lab_record(name, labs_dir=str(tmp_path))
        assert netns_exists(rec.kernel_netns) and netns_exists(rec.rawtcp_netns)
    finally:
        persistent.lab_down(name, labs_dir=str(tmp_path))
