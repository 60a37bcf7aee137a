"""`rawtcp experiment sweep NAME`: drop every segment of an experiment once
(:mod:`rawtcp.experiments.sweep`), print the table and the annotated ladder, write the report.

cli.py calls :func:`add_sweep_parser` with the `experiment` subparsers; the parser's
``handler`` is :func:`cmd_sweep` (commands.dispatch calls it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rawtcp.cli_support import CliError, add_config_args, decimal, decimal_fraction, print_json

__all__ = ["add_sweep_parser", "cmd_sweep", "ranged"]


def ranged(key: str, kind: type = int) -> Any:
    """argparse type: a number within rawtcp.experiments.sweep.LIMITS[key] in plain decimal
    digits (a float with an optional '.' fraction: not float()'s '1e2', ' 5' or '1_0')."""
    from rawtcp.experiments.sweep import check_limit

    def parse(text: str) -> Any:
        what = key.replace("_", "-")
        v = decimal(text, what, signed=True) if kind is int else decimal_fraction(text, what)
        try:
            check_limit(key, v)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return v

    parse.__name__ = key
    return parse


def add_sweep_parser(esub: Any) -> argparse.ArgumentParser:
    """Register `sweep` under `rawtcp experiment`."""
    s = esub.add_parser(
        "sweep", help="run an experiment once per segment with that segment dropped "
                      "(or duplicated, delayed) and classify what happened",
        description="Run the experiment once to record its segments, then once per segment "
                    "with exactly that segment dropped (--also: a second run duplicating or "
                    "delaying it), and compare each run with the reference: recovered (by "
                    "an RTO or a fast retransmission, and how much later), RST, ETIMEDOUT, "
                    "stuck in a state, data mismatch (docs/experiments.md, Sweep).")
    s.add_argument("name", help="the experiment (`rawtcp experiment list`)")
    s.add_argument("--direction", choices=["in", "out", "both"], default="both",
                   help="sweep the segments rawtcp received (in), sent (out) or both "
                        "(default both)")
    s.add_argument("--jobs", "-j", type=ranged("jobs"), default=1,
                   help="runs at once, each in its own process and lab (1-32, default 1)")
    s.add_argument("--max-segments", type=ranged("max_segments"), default=16,
                   help="sweep at most this many segments, the first ones (1-1000, default 16)")
    s.add_argument("--segments", metavar="LIST",
                   help="only these reference segments (numbers of the table), e.g. 1-3,8")
    s.add_argument("--also", metavar="duplicate|delay:MS",
                   help="a second run per segment that duplicates it or delays it by MS "
                        "(1-60000) ms")
    s.add_argument("--seed", type=ranged("seed"), default=1,
                   help="the experiment's seed, the same for every run (default 1)")
    s.add_argument("--run-timeout", type=ranged("run_timeout", float), default=120.0,
                   metavar="SECONDS",
                   help="stop a run after this long (5-3600, default 120)")
    s.add_argument("--json", action="store_true",
                   help="machine-readable result on stdout (progress still on stderr)")
    s.add_argument("--report", metavar="DIR",
                   help="write the table, the annotated ladder, the JSON, a plot and the "
                        "reference run's trace, pcap and ladder here")
    s.add_argument("--color", action="store_true", help="colour the table and the ladder")
    s.add_argument("--quiet", "-q", action="store_true", help="no ladder and no progress")
    add_config_args(s, extra=" (every run of the sweep)")
    s.set_defaults(handler=cmd_sweep)
    return s


def _report_dir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise CliError(f"rawtcp: --report {path}: exists and is not a directory", 2)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise CliError(f"rawtcp: --report {path}: {e.strerror}", 2) from None
    if not os.access(path, os.W_OK):
        raise CliError(f"rawtcp: --report {path}: not writable", 2)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Exit 0 when every run was classified (whatever the outcomes), 1 when a run failed to
    run (outcome ``error``) or the reference failed, 2 for a bad argument."""
    from rawtcp.experiments import load_all
    from rawtcp.experiments.sweep import Fault, parse_indices, sweep

    if args.name not in load_all():
        raise CliError(f"rawtcp: no experiment named {args.name!r} "
                       f"(known: {', '.join(load_all())})", 2)
    try:
        also = Fault.parse(args.also) if args.also else None
        indices = parse_indices(args.segments) if args.segments else None
    except ValueError as e:
        raise CliError(f"rawtcp: {e}", 2) from None
    if args.report:
        _report_dir(args.report)
    from rawtcp.host import privileges

    privileges.check(need_tun=True)

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"  .. {msg}", file=sys.stderr, flush=True)

    try:
        res = sweep(args.name, direction=args.direction, jobs=args.jobs,
                    max_segments=args.max_segments, indices=indices, also=also,
                    seed=args.seed, run_timeout=args.run_timeout,
                    config_overrides=getattr(args, "config_overrides", None) or None,
                    report_dir=args.report, progress=progress)
    except ValueError as e:       # e.g. --segments beyond the reference's segments
        raise CliError(f"rawtcp: {e}", 2) from None
    from rawtcp.experiments import sweep_report

    if args.report:
        sweep_report.write_report(res, args.report)
    if args.json:
        print_json(res.to_dict())
    else:
        if not args.quiet:
            print(sweep_report.ladder(res, color=args.color), flush=True)
        print(sweep_report.table(res, color=args.color), flush=True)
        print(sweep_report.summary(res), flush=True)
        if res.files:
            print("  files: " + ", ".join(f"{k}={v}" for k, v in res.files.items()))
    bad = any(r.outcome.kind == "error" for r in res.rows) or not res.reference_passed
    return 1 if bad else 0
