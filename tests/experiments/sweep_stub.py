"""A stand-in sweep worker for tests/experiments/test_sweep_pool.py (``python -m
tests.experiments.sweep_stub --worker IN OUT``). Modes: ``sleep`` (no lab, sleeps), ``hang``
(builds a real lab, says its pid, sleeps), ``stubborn`` (the same, ignoring SIGTERM),
``crash`` (builds a lab, says its pid, dies by SIGKILL), ``done`` (returns a result)."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from rawtcp.experiments.sweep_pool import worker_main
from rawtcp.lab import TunLab


def run(task: dict) -> dict[str, Any]:
    mode = task["mode"]
    if mode == "done":
        return {"segments": 1}
    if mode == "sleep":
        time.sleep(120)
    with TunLab():
        if mode == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(task["pidfile"] + ".tmp", "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
        os.replace(task["pidfile"] + ".tmp", task["pidfile"])
        if mode == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(120)
    return {}


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:], run))
