"""Options and entry point of `rawtcp bench` (also `python -m rawtcp.bench`)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from rawtcp.bench import run
from rawtcp.bench.common import ECHO_BYTES, MB, Progress, stream_sha256
from rawtcp.bench.report import Figure, to_json, to_table

TESTS = ("recv", "send", "conn")
RANGES: dict[str, tuple[float, float]] = {
    "size": (1, 10_000), "conns": (1, 1_000_000), "mtu": (1280, 65_000),
    "timeout": (1, 86_400),
}
REF_RECV = "bare Python receiver (struct, checksums verified, ACK per segment)"
REF_SEND = "bare Python sender (struct, window-limited, no congestion control)"
REF_CONN = "kernel <-> kernel over a veth (same loop)"


def _number(name: str, kind: type) -> Callable[[str], Any]:
    lo, hi = RANGES[name]

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"takes {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not (isinstance(v, int) or math.isfinite(v)) or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:g} and {hi:g}, got {text}")
        return v
    return parse


def _tests(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in TESTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"takes a comma list of {', '.join(TESTS)}, "
                                         f"got {text!r}")
    return list(dict.fromkeys(names))


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add bench's options to `p` (a subparser or a fresh parser)."""
    p.description = (
        "Measure rawtcp against the Linux kernel in a private lab (needs root): bulk receive "
        "and send over TUN, and the connection rate, each next to a reference measured in "
        "the same run (bare Python endpoints; kernel <-> kernel).")
    p.add_argument("--tests", type=_tests, default=list(TESTS), metavar="LIST",
                   help="comma list of recv, send, conn (default: all)")
    p.add_argument("--size", type=_number("size", int), default=200, metavar="MB",
                   help="MB (10^6 bytes) per bulk transfer, 1..10000 (default 200)")
    p.add_argument("--conns", type=_number("conns", int), default=2000, metavar="N",
                   help="connections in a row for the connection rate, 1..1000000 "
                        "(default 2000)")
    p.add_argument("--mtu", type=_number("mtu", int), default=1500,
                   help="MTU of the TUN device, 1280..65000 (default 1500)")
    p.add_argument("--offload", action="store_true",
                   help="rawtcp's side over a TUN link with GSO/GRO offload "
                        "(TunLink(offload=True), Config(offload=True)); the bare references "
                        "stay per-segment")
    p.add_argument("--timeout", type=_number("timeout", float), default=300.0,
                   metavar="SECONDS", help="limit for each measurement, 1..86400 (default 300)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _check_args(args: argparse.Namespace) -> None:
    """Re-check values (a caller may build the Namespace itself): ValueError, one line."""
    for name, (lo, hi) in RANGES.items():
        v = getattr(args, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"--{name} must be between {lo:g} and {hi:g}, got {v!r}")
    tests = args.tests.split(",") if isinstance(args.tests, str) else list(args.tests)
    if not tests or any(t not in TESTS for t in tests):
        raise ValueError(f"--tests takes a comma list of {', '.join(TESTS)}, got {args.tests!r}")
    args.tests = tests
    if args.offload and not run.offload_available():
        raise ValueError("--offload is not available yet: this rawtcp's TUN link "
                         "(rawtcp.link.tun.TunLink) has no offload= argument")


def _check_privileges() -> None:
    try:
        from rawtcp.host import privileges
    except ImportError:                       # older layout
        from rawtcp import privileges  # type: ignore[no-redef]
    privileges.check(need_tun=True)


def _measure(fig: Figure, side: str, fn: Callable[[], run.Measure], progress: Progress) -> None:
    what = "rawtcp" if side == "rawtcp" else "reference"
    try:
        setattr(fig, side, fn())
    except OSError as e:
        fig.errors.append(f"{what}: {e.strerror or e}")
    except Exception as e:
        if os.environ.get("RAWTCP_DEBUG"):
            raise
        fig.errors.append(f"{what}: internal error {type(e).__name__}: {e} "
                          "(RAWTCP_DEBUG=1 shows the traceback)")
    finally:
        progress.done()


def run_tests(args: argparse.Namespace, progress: Progress) -> list[Figure]:
    size, mtu, t, off = args.size * MB, args.mtu, args.timeout, args.offload
    figures: list[Figure] = []
    mtu_text = f"MTU {mtu}" + (", offload" if off else "")
    if "recv" in args.tests:
        f = Figure("bulk_receive", f"bulk receive, kernel -> rawtcp ({mtu_text})", "MB/s",
                   REF_RECV, "sha256")
        _measure(f, "rawtcp", lambda: run.recv_rawtcp(mtu, size, t, progress, off), progress)
        _measure(f, "reference", lambda: run.recv_bare(mtu, size, t, progress), progress)
        figures.append(f)
    if "send" in args.tests:
        f = Figure("bulk_send", f"bulk send, rawtcp -> kernel ({mtu_text})", "MB/s",
                   REF_SEND, "sha256")
        progress.show("bulk send: hashing the stream", force=True)
        sha = stream_sha256(size)
        _measure(f, "rawtcp", lambda: run.send_rawtcp(mtu, size, sha, t, progress, off),
                 progress)
        _measure(f, "reference", lambda: run.send_bare(mtu, size, sha, t, progress), progress)
        figures.append(f)
    if "conn" in args.tests:
        name = f"connect + {ECHO_BYTES} B echo + close, {args.conns:,} in a row"
        whole = Figure("conn_rate", name, "conn/s", REF_CONN, "echo")
        _measure(whole, "rawtcp", lambda: run.conn_rawtcp(mtu, args.conns, t, progress),
                 progress)
        _measure(whole, "reference", lambda: run.conn_kernel(args.conns, t, progress), progress)
        figures.append(whole)
        for key, label in (("first", "first"), ("last", "last")):
            part = Figure(f"conn_rate_{key}", f"  the {label} 10 %", "conn/s", REF_CONN, "echo",
                          errors=list(whole.errors))
            for side in ("rawtcp", "reference"):
                m = getattr(whole, side)
                if m is not None:
                    setattr(part, side, run.Measure(float(m.details[f"{key}_rate"]), m.sha_ok,
                                                    {}))
            figures.append(part)
    return figures


def main(args: argparse.Namespace) -> int:
    """Run the selected tests; print the table (or JSON); 0 when every figure was measured
    and every check held, 1 otherwise. ValueError for a bad argument, PermissionError
    (an OSError) when this process may not build labs."""
    _check_args(args)
    _check_privileges()
    progress = Progress()
    load_before = round(os.getloadavg()[0], 2)
    figures = run_tests(args, progress)
    settings = {"tests": args.tests, "size_mb": args.size, "conns": args.conns,
                "mtu": args.mtu, "offload": args.offload, "timeout": args.timeout,
                "load_before": load_before}
    out = to_json(figures, settings) if args.json else to_table(figures, settings)
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
    return 0 if all(f.ok for f in figures) else 1
