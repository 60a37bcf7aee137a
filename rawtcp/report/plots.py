"""Plots from traces and experiment results (matplotlib, no pyplot, no display needed).

- :func:`sweep_plot`: goodput and retransmissions against loss rate, mean with min/max bars.

The file type follows the extension: ``.png`` or ``.svg``. Each function returns the data
series it plotted, so callers (and tests) can check them.
"""

from __future__ import annotations

import errno
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

Event = dict[str, Any]

__all__ = ["sweep_plot"]

_FORMATS = {".png": "png", ".svg": "svg"}


def _format(path: str | os.PathLike[str]) -> str:
    ext = Path(path).suffix.lower()
    fmt = _FORMATS.get(ext)
    if fmt is None:
        raise OSError(errno.EINVAL, f"cannot plot to {str(path)!r}: name the file .png or .svg")
    return fmt


def _save(fig: Any, path: str | os.PathLike[str], fmt: str) -> None:
    import matplotlib

    meta = {"Date": None} if fmt == "svg" else {}
    with matplotlib.rc_context({"svg.hashsalt": "rawtcp"}):
        fig.savefig(os.fspath(path), format=fmt, metadata=meta, bbox_inches="tight")


def _figure(rows: int = 1) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(9, 3.2 * rows + (1.5 if rows == 1 else 0)), dpi=100)


def sweep_plot(
    results: list[dict[str, Any]],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> dict[str, list[float]]:
    """Goodput and retransmissions against loss rate. ``results``: dicts with ``loss`` (0..1),
    ``seed``, ``goodput_bps``, ``retransmits`` (one per run). Runs with the same loss are
    summarised as mean with min/max. Returns the plotted series, sorted by loss:
    ``loss``, ``runs``, ``goodput_mean``/``_min``/``_max``, ``retransmits_mean``/``_min``/``_max``.
    """
    fmt = _format(path)
    groups: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for i, r in enumerate(results):
        missing = [k for k in ("loss", "goodput_bps", "retransmits") if k not in r]
        if missing:
            raise OSError(errno.EINVAL, f"sweep result {i} lacks {', '.join(missing)}: each "
                          "needs loss, seed, goodput_bps, retransmits")
        groups[float(r["loss"])].append(r)
    if not groups:
        raise OSError(errno.EINVAL, "sweep_plot needs at least one result")
    s: dict[str, list[float]] = defaultdict(list)
    for loss in sorted(groups):
        g = groups[loss]
        gp = [float(r["goodput_bps"]) for r in g]
        rt = [float(r["retransmits"]) for r in g]
        s["loss"].append(loss)
        s["runs"].append(len(g))
        s["goodput_mean"].append(sum(gp) / len(gp))
        s["goodput_min"].append(min(gp))
        s["goodput_max"].append(max(gp))
        s["retransmits_mean"].append(sum(rt) / len(rt))
        s["retransmits_min"].append(min(rt))
        s["retransmits_max"].append(max(rt))

    fig = _figure(rows=2)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    x = [v * 100 for v in s["loss"]]
    top = max(s["goodput_max"])
    scale, unit = (1e6, "Mbit/s") if top >= 1e6 else (1e3, "kbit/s") if top >= 1e3 else (1, "bit/s")
    for ax, key, color, ylabel, div in (
        (ax1, "goodput", "tab:blue", f"goodput ({unit})", scale),
        (ax2, "retransmits", "tab:red", "retransmissions", 1),
    ):
        mean = [v / div for v in s[f"{key}_mean"]]
        lo = [(m - v / div) for m, v in zip(mean, s[f"{key}_min"], strict=True)]
        hi = [(v / div - m) for m, v in zip(mean, s[f"{key}_max"], strict=True)]
        ax.errorbar(x, mean, yerr=[lo, hi], marker="o", capsize=4, color=color,
                    label="mean, min/max")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    ax2.set_xlabel("loss rate (%)")
    ax1.set_title(title or f"goodput and retransmissions vs loss ({sum(s['runs'])} runs)")
    _save(fig, path, fmt)
    return dict(s)
