"""The catalogue of named experiments; each runs in a private lab against the real kernel.

- :mod:`~rawtcp.experiments.base` the harness (``@experiment``, :class:`Run`, checks, helpers)
- :mod:`~rawtcp.experiments.catalogue` which modules hold experiments, ``load_all()``
- :mod:`~rawtcp.experiments.runner` ``run_experiment(name, ...)``
- the experiments: ``lifecycle`` (handshake, full close, final ACK lost), ``closing``
  (TIME_WAIT, simultaneous close, linger, CLOSE_WAIT leak, RFC 1337), ``failures`` (SYN loss,
  refused, backlog overflow), ``zero_window``, ``network_loss``, ``loss_sweep``,
  ``kernel_time_wait``; ``remote`` checks a peer on another host.
"""

from __future__ import annotations

from rawtcp.experiments.base import REGISTRY, Result
from rawtcp.experiments.catalogue import ORDER, load_all
from rawtcp.experiments.runner import run_experiment

__all__ = ["ORDER", "REGISTRY", "Result", "load_all", "run_experiment"]
