"""Ctrl-C at `rawtcp packetdrill -j 2`: it is the command's to handle. A worker ignores it
(each printed a KeyboardInterrupt traceback of its own); the command ends with one line and
exit 130, and each --realtime worker's lab is torn down (root: TUN labs)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from rawtcp.host.netns import NETNS_RUN_DIR
from rawtcp.lab.base import tag_pid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: a listener that closes after 60 s of real time: a worker is in the middle of it, its lab
#: up, when the test presses Ctrl-C
WAITING = """\
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+60 close(3) = 0
"""


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(x) for x in f.read().split()}
    except FileNotFoundError:
        return set()


def _start(*argv: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("RAWTCP_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "rawtcp", "packetdrill", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


def _open_when_read(fifo: str, p: subprocess.Popen) -> int:
    """A write end of ``fifo`` once a worker has opened it to read the script (open with
    O_NONBLOCK fails with ENXIO until a reader is there)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and p.poll() is None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        time.sleep(0.05)
    raise AssertionError(f"no worker read {fifo} (exit status {p.poll()})")


def _namespaces_of(pids: set[int]) -> set[str]:
    return {n for n in os.listdir(NETNS_RUN_DIR) if tag_pid(n) in pids} \
        if os.path.isdir(NETNS_RUN_DIR) else set()


def test_a_worker_leaves_ctrl_c_to_the_command(tmp_path):
    """Both workers are in the middle of a script (reading it from a pipe) when a SIGINT
    reaches them: they go on and the run ends as if nothing happened. (A worker that raised
    KeyboardInterrupt printed its traceback and died with its script, which the pool
    never gave back: the command waited for it.)"""
    fifos = []
    for name in ("a.pkt", "b.pkt"):
        os.mkfifo(tmp_path / name)          # found in the directory as a script
        fifos.append(str(tmp_path / name))
    p = _start("-j", "2", str(tmp_path))
    try:
        fds = [_open_when_read(f, p) for f in fifos]
        workers = _children(p.pid)
        assert len(workers) == 2, workers
        for pid in workers:
            os.kill(pid, signal.SIGINT)
        for fd in fds:
            os.set_blocking(fd, True)
            os.write(fd, WAITING.encode())
            os.close(fd)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert (p.returncode, err) == (0, ""), (out, err)
    assert out.splitlines()[-1] == "2 passed, 0 failed", out


@pytest.mark.kernel
def test_ctrl_c_ends_a_parallel_run_quietly_and_removes_the_workers_labs(tmp_path):
    """The terminal's Ctrl-C reaches the whole process group. The workers ignore it; the
    command ends the pool, whose SIGTERM makes each worker unwind and tear its lab down
    before the command exits."""
    paths = []
    for name in ("a.pkt", "b.pkt"):
        (tmp_path / name).write_text(WAITING)
        paths.append(str(tmp_path / name))
    p = _start("--realtime", "-j", "2", *paths)
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 30           # both workers' labs up, or give up
        while time.monotonic() < deadline and p.poll() is None:
            workers = _children(p.pid)
            if len(workers) == 2 and len(_namespaces_of(workers)) == 2:
                break
            time.sleep(0.05)
        assert len(_namespaces_of(workers)) == 2, (workers, p.poll())
        os.killpg(p.pid, signal.SIGINT)            # as the terminal sends Ctrl-C
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, (out, err)
    assert err == "rawtcp: interrupted\n", err
    assert _namespaces_of(workers) == set()
