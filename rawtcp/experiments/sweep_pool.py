"""The sweep's runs, each in its own process (``python -m WORKER --worker IN OUT``, WORKER
being :mod:`rawtcp.experiments.sweep`, whose ``__main__`` calls :func:`worker_main` with its
``run_task``): at most ``jobs`` at once, each stopped after its time, and whatever happens
(Ctrl-C, SIGTERM, an exception) every child stopped and its lab removed. This module knows
nothing of experiments: a task is a JSON object in, a JSON object out.

A child gets SIGTERM (or the terminal's SIGINT) and unwinds like Ctrl-C: its lab's ``with``
blocks remove the namespace, the TUN device and the kernel peers; further signals are
ignored while it does. A child still there after a grace time is killed, and the objects it
registered (:mod:`rawtcp.host.registry`) are removed for it.

Tasks and results go through JSON files; a child that leaves no result (it crashed, was
stopped or killed) gives ``{"error": why}``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

__all__ = ["run_tasks", "worker_main"]

_KILL_GRACE_S = 15.0   # a stopped child gets this long to tear its lab down


def _failed(why: str) -> dict[str, Any]:
    return {"error": why}


def run_tasks(tasks: list[dict], jobs: int, run_timeout: float,
              say: Callable[[str], None], worker: str) -> list[dict[str, Any]]:
    """Run each task in a child process (``python -m WORKER --worker IN OUT``), at most
    ``jobs`` at once, each stopped after ``run_timeout`` s; the results in task order.
    Whatever happens (Ctrl-C, SIGTERM, an exception), every child is stopped and its lab
    removed."""
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    todo = list(range(len(tasks)))
    running: dict[int, _Child] = {}
    with tempfile.TemporaryDirectory(prefix="rawtcp-sweep-") as tmp:
        try:
            while todo or running:
                while todo and len(running) < jobs:
                    i = todo.pop(0)
                    running[i] = _Child(tasks[i], os.path.join(tmp, f"task{i}"), run_timeout,
                                        worker)
                now = time.monotonic()
                wait = max(0.0, min(c.deadline for c in running.values()) - now)
                ready = _wait_any([c.pidfd for c in running.values()], wait)
                for i, c in list(running.items()):
                    if c.pidfd in ready or c.proc.poll() is not None:
                        results[i] = c.collect()
                    elif time.monotonic() >= c.deadline:
                        c.stop()
                        results[i] = _failed(f"run stopped after {run_timeout:g} s")
                    else:
                        continue
                    c.close()
                    del running[i]
                    n = sum(r is not None for r in results)
                    say(f"{n}/{len(tasks)} {tasks[i].get('rule') or 'reference'}: "
                        f"{results[i].get('error') or 'ok'}")
        finally:
            for c in running.values():
                c.signal()
            for c in running.values():
                c.stop()
                c.close()
    return [r if r is not None else _failed("not run") for r in results]


def _wait_any(fds: list[int], timeout: float) -> set[int]:
    """The pidfds whose process ended, waiting up to ``timeout`` s for one."""
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    return {fd for fd, _ev in p.poll(max(0, int(timeout * 1000)) + 1)}


class _Child:
    """One sweep run in its own process; its task and result go through files."""

    def __init__(self, task: dict, base: str, run_timeout: float, worker: str) -> None:
        self.inp, self.out, self.err = base + ".in.json", base + ".out.json", base + ".err"
        with open(self.inp, "w", encoding="utf-8") as f:
            json.dump(task, f)
        self.errf = open(self.err, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", worker, "--worker", self.inp, self.out],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.errf)
        self.pidfd = os.pidfd_open(self.proc.pid)
        self.deadline = time.monotonic() + run_timeout

    def collect(self) -> dict[str, Any]:
        rc = self.proc.wait()
        _clean_after(self.proc.pid)     # nothing, unless the child died without teardown
        try:
            with open(self.out, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError, TypeError):
            pass
        try:
            with open(self.err, encoding="utf-8", errors="replace") as f:
                tail = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        except OSError:
            tail = []
        why = tail[-1] if tail else f"exit status {rc}"
        return _failed(f"the run failed: {why}")

    def signal(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass

    def stop(self) -> None:
        """SIGTERM (the child tears its lab down), then SIGKILL after a grace time, then
        remove what the child left registered (nothing, unless it was killed or died)."""
        if self.proc.poll() is None:
            self.signal()
            try:
                self.proc.wait(_KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _clean_after(self.proc.pid)

    def close(self) -> None:
        os.close(self.pidfd)
        self.errf.close()


def _clean_after(pid: int) -> None:
    """Remove the namespaces, links and tables a killed child had registered."""
    from rawtcp.host import registry
    from rawtcp.lab import cleanup

    for e in registry.entries():
        if e.pid == pid and not e.alive():
            try:
                cleanup.remove_entry(e)
            except OSError:
                pass


# ------------------------------------------------------------------------------ the child
class _Stop(KeyboardInterrupt):
    """SIGTERM in a sweep child: unwind like Ctrl-C so the lab is torn down."""


def _on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
    # the first signal starts the teardown; later ones must not interrupt it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stop()


def worker_main(argv: list[str], run_task: Callable[[dict], dict[str, Any]]) -> int:
    """The child's side: ``argv`` is ``[--worker, IN, OUT]``; read the task from IN, run it,
    write the result to OUT. SIGTERM (and SIGINT unless ignored, as in the parent) unwind
    the run like Ctrl-C: exit 143 without a result."""
    if len(argv) != 3 or argv[0] != "--worker":
        print("this module is run by `rawtcp experiment sweep`", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:   # as the parent: a sweep
        signal.signal(signal.SIGINT, _on_signal)                # started in the background
    inp, out = argv[1:]
    with open(inp, encoding="utf-8") as f:
        task = json.load(f)
    try:
        facts = run_task(task)
    except _Stop:
        return 143
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(facts, f, default=str)
    os.replace(tmp, out)
    return 0
