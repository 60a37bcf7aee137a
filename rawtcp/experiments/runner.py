"""Running one experiment by name: the lab, the checks, the trace, and the files it leaves
(trace, pcap, ladder, time-sequence plot) in one :class:`Result`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from rawtcp.experiments.base import (
    REGISTRY,
    Check,
    Result,
    Run,
    check_overrides,
    parse_action_rule,
)
from rawtcp.experiments.catalogue import load_all

__all__ = ["run_experiment"]


def run_experiment(name: str, *, seed: int = 1, report_dir: str | None = None,
                   progress: Callable[[str], None] | None = None, ladder: bool = True,
                   color: bool = False, extra_faults: Any = (),
                   config_overrides: dict[str, Any] | None = None) -> Result:
    """Run one experiment by name and return its Result (never raises for a failed run:
    an exception inside the experiment is a FAIL with the error as evidence).

    ``extra_faults``: fault rules as text with the action first (``"drop out len>0 nth=1"``)
    added to every rawtcp stack of the run, after the experiment's own rules. The
    experiment's checks still decide: they may fail under faults they did not expect.
    Rules made with ``rawtcp.faults.parse_rule`` work too; one string is one rule.

    ``config_overrides``: Config fields (``{"rto_min": 50_000, "sack": False}``; text values
    are parsed as on a command line) applied on top of the configuration of every stack the
    experiment builds. An unknown field or a bad value raises ValueError naming the valid
    keys, before any lab is built."""
    if isinstance(extra_faults, str):
        extra_faults = [extra_faults]
    extra_faults = list(extra_faults)
    for text in extra_faults:      # a bad rule is the caller's error, before any lab is built
        parse_action_rule(text)
    overrides = check_overrides(config_overrides)
    load_all()
    if name not in REGISTRY:
        raise LookupError(f"no experiment named {name!r}; `rawtcp experiment list` shows them")
    exp = REGISTRY[name]
    run = Run(exp, seed=seed, report_dir=report_dir, progress=progress,
              extra_faults=extra_faults, config_overrides=overrides)
    t0 = time.monotonic()
    error = None
    try:
        exp.fn(run)
    except PermissionError:
        raise
    except Exception as e:  # noqa: BLE001 - reported as a failed run with its reason
        if os.environ.get("RAWTCP_DEBUG"):
            raise
        error = f"{type(e).__name__}: {e}"
        run.checks.append(Check("the experiment ran to the end", False, error))
    finally:
        run._teardown()
    duration = time.monotonic() - t0
    events = run.tracer.events()
    run.tracer.close()
    text = ""
    if ladder and any(e.get("ev") == "seg" for e in events):
        from rawtcp.report.ladder import render_ladder

        try:
            text = render_ladder(events, width=100, color=color, right="kernel")
        except Exception as e:  # noqa: BLE001 - a drawing problem must not hide the verdict
            text = f"(no ladder: {e})"
        if report_dir:
            p = os.path.join(report_dir, f"{name}.ladder.txt")
            with open(p, "w", encoding="utf-8") as f:
                f.write(render_ladder(events, width=100, right="kernel") + "\n")
            run.files["ladder"] = p
    passed = bool(run.checks) and all(c.ok for c in run.checks) and error is None
    if report_dir:      # pcapng with comments, plots, index.html (rawtcp.report.bundle)
        from rawtcp.report.bundle import finish_report

        try:
            finish_report(report_dir, name=name, events=events, files=run.files,
                          title=exp.title, expect=exp.expect, passed=passed, seed=seed,
                          duration_s=duration, checks=run.checks, metrics=run.metrics,
                          error=error)
        except Exception as e:  # noqa: BLE001 - the page must not hide the verdict
            run.metrics["report_error"] = f"{type(e).__name__}: {e}"
    return Result(name, passed, run.checks, duration, seed, run.files, run.metrics, events,
                  text, error)
