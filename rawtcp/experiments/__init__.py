"""The catalogue of named experiments; each runs in a private lab against the real kernel.

``load_all()`` imports every experiment module so that they register themselves.
"""

from __future__ import annotations

import importlib
import pkgutil

from rawtcp.experiments.base import REGISTRY, Result, run_experiment

__all__ = ["REGISTRY", "Result", "load_all", "run_experiment"]


# The order `rawtcp experiment list` shows: opening, closing, failures, windows, loss, kernel.
ORDER = ("handshake", "lifecycle", "final-ack-drop", "final-ack-drop-passive",
         "time-wait-ablation", "simultaneous-close", "syn-drop", "refused", "linger-abort",
         "time-wait-assassination", "close-wait-leak", "backlog-overflow", "zero-window",
         "network-loss", "loss-sweep", "kernel-time-wait")


def load_all() -> dict:
    for m in pkgutil.iter_modules(__path__):
        if m.name.startswith("x_"):
            importlib.import_module(f"{__name__}.{m.name}")
    rank = {name: i for i, name in enumerate(ORDER)}
    ordered = sorted(REGISTRY.items(), key=lambda kv: rank.get(kv[0], len(ORDER)))
    REGISTRY.clear()
    REGISTRY.update(ordered)
    return REGISTRY
