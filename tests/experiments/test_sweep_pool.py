"""The sweep's child processes (rawtcp.experiments.sweep_pool) with a stand-in worker that
builds a real lab: a run past its time is stopped and tears its lab down; a child that
ignores SIGTERM is killed and its lab removed for it; a child that dies by SIGKILL on its own
leaves nothing either; a finished child's result comes back."""

from __future__ import annotations

import subprocess

import pytest

from rawtcp.experiments import sweep_pool
from rawtcp.host import registry
from rawtcp.lab.base import tag_pid

pytestmark = pytest.mark.kernel


def _left_by(pids: set[int]) -> list[str]:
    out = [f"{e.kind}:{e.name}" for e in registry.entries() if e.pid in pids]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout.split("\n")
    return out + [n.split()[0] for n in names if n.split() and tag_pid(n.split()[0]) in pids]


def test_stopped_killed_and_crashed_children_leave_no_lab(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_pool, "_KILL_GRACE_S", 1.0)
    modes = ["hang", "stubborn", "crash", "done"]
    tasks = [{"mode": m, "pidfile": str(tmp_path / f"{m}.pid")} for m in modes]
    said: list[str] = []
    res = sweep_pool.run_tasks(tasks, len(tasks), 3.0, said.append,
                               "tests.experiments.sweep_stub")
    pids = {int((tmp_path / f"{m}.pid").read_text()) for m in modes}
    assert len(pids) == 4                       # every child built its lab
    got = dict(zip(modes, res))
    assert got["hang"] == {"error": "run stopped after 3 s"}
    assert got["stubborn"] == {"error": "run stopped after 3 s"}
    assert got["crash"] == {"error": "the run failed: exit status -9"}
    assert got["done"] == {"segments": 1}
    assert len(said) == 4
    assert _left_by(pids) == []
    assert not any(registry.pid_alive(p) for p in pids)
