"""A stand-in sweep worker for tests/experiments/test_sweep_pool.py: it builds a real lab,
says its pid, then hangs, ignores SIGTERM while it hangs, or dies by SIGKILL, as the task
says (``python -m tests.experiments.sweep_stub --worker IN OUT``)."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from rawtcp.experiments.sweep_pool import worker_main
from rawtcp.lab import TunLab


def run(task: dict) -> dict[str, Any]:
    with TunLab():
        with open(task["pidfile"], "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
        if task["mode"] == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        elif task["mode"] == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        elif task["mode"] == "done":
            return {"segments": 1}
        time.sleep(120)
    return {}


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:], run))
