"""The catalogue: the modules that hold the named experiments, and the order
`rawtcp experiment list` shows them in.

``load_all()`` imports every experiment module so that they register themselves.
"""

from __future__ import annotations

import importlib

from rawtcp.experiments.base import REGISTRY, Experiment
from rawtcp.faults.personas import PERSONAS

__all__ = ["MODULES", "ORDER", "load_all"]

# Modules of rawtcp.experiments that register experiments, named after what they hold.
MODULES = ("lifecycle", "closing", "failures", "zero_window", "urgent", "network_loss",
           "loss_sweep", "kernel_time_wait", "congestion", "ecn", "personas")

# The order `rawtcp experiment list` shows: opening, closing, failures, windows, loss, kernel.
ORDER = ("handshake", "lifecycle", "final-ack-drop", "final-ack-drop-passive",
         "time-wait-ablation", "simultaneous-close", "syn-drop", "refused", "linger-abort",
         "time-wait-assassination", "close-wait-leak", "backlog-overflow", "zero-window",
         "urgent-data", "network-loss", "loss-sweep", "congestion", "ecn", "kernel-time-wait",
         *(f"persona-{name}" for name in PERSONAS))


def load_all() -> dict[str, Experiment]:
    for name in MODULES:
        importlib.import_module(f"rawtcp.experiments.{name}")
    rank = {name: i for i, name in enumerate(ORDER)}
    ordered = sorted(REGISTRY.items(), key=lambda kv: rank.get(kv[0], len(ORDER)))
    REGISTRY.clear()
    REGISTRY.update(ordered)
    return REGISTRY
