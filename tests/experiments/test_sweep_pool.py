"""The sweep's child processes (rawtcp.experiments.sweep_pool) with a stand-in worker
(tests/experiments/sweep_stub.py) that builds real labs: Ctrl-C while children hold labs
stops them all and leaves no lab (a child that ignores SIGTERM is killed and its lab removed
for it; one that died by SIGKILL on its own is cleaned up too); a run past its time is
stopped; a finished child's result comes back."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rawtcp.experiments import sweep_pool
from rawtcp.host import registry
from rawtcp.lab.base import tag_pid

pytestmark = pytest.mark.kernel
STUB = "tests.experiments.sweep_stub"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _stub_importable(monkeypatch):
    """`python -m tests.experiments.sweep_stub` from wherever pytest was started."""
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + (os.pathsep + path if path else ""))


def _left_by(pids: set[int]) -> list[str]:
    out = [f"{e.kind}:{e.name}" for e in registry.entries() if e.pid in pids]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout.split("\n")
    return out + [n.split()[0] for n in names if n.split() and tag_pid(n.split()[0]) in pids]


def test_ctrl_c_stops_every_child_and_no_lab_is_left(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_pool, "_KILL_GRACE_S", 1.0)
    modes = ["hang", "stubborn", "crash"]
    files = {m: tmp_path / f"{m}.pid" for m in modes}
    tasks = [{"mode": m, "pidfile": str(files[m])} for m in modes]
    main = threading.get_ident()

    def interrupt_when_labs_are_up() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(f.exists() for f in files.values()):
            time.sleep(0.02)
        signal.pthread_kill(main, signal.SIGINT)     # Ctrl-C in the sweep's process

    t = threading.Thread(target=interrupt_when_labs_are_up)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep_pool.run_tasks(tasks, len(tasks), 120.0, lambda _m: None, STUB)
    finally:
        t.join()
    pids = {int(f.read_text()) for f in files.values()}
    assert len(pids) == 3                       # every child had built its lab
    assert not any(registry.pid_alive(p) for p in pids)
    assert _left_by(pids) == []


def test_a_run_past_its_time_is_stopped_and_results_come_back(tmp_path):
    tasks = [{"mode": "sleep", "pidfile": str(tmp_path / "s")},
             {"mode": "done", "pidfile": str(tmp_path / "d")}]
    said: list[str] = []
    res = sweep_pool.run_tasks(tasks, 2, 2.0, said.append, STUB)
    assert res == [{"error": "run stopped after 2 s"}, {"segments": 1}]
    assert len(said) == 2 and any("run stopped after 2 s" in s for s in said)


def test_a_task_the_worker_cannot_read_is_an_error_result():
    res = sweep_pool.run_tasks([{}], 1, 30.0, lambda _m: None, STUB)
    assert res == [{"error": "the run failed: KeyError: 'mode'"}]
