"""The catalogue of named experiments; each runs in a private lab against the real kernel.

``load_all()`` imports every experiment module so that they register themselves.
"""

from __future__ import annotations

import importlib
import pkgutil

from rawtcp.experiments.base import REGISTRY, Result, run_experiment

__all__ = ["REGISTRY", "Result", "load_all", "run_experiment"]


def load_all() -> dict:
    for m in pkgutil.iter_modules(__path__):
        if m.name.startswith("x_"):
            importlib.import_module(f"{__name__}.{m.name}")
    return REGISTRY
