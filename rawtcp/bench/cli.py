"""Options and entry point of `rawtcp bench` (also `python -m rawtcp.bench`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from rawtcp.argtypes import decimal, decimal_fraction
from rawtcp.bench import run
from rawtcp.bench.common import ECHO_BYTES, MB, Progress, stream_sha256
from rawtcp.bench.report import Figure, to_json, to_table

TESTS = ("recv", "send", "conn")
RANGES: dict[str, tuple[float, float]] = {
    "size": (1, 10_000), "conns": (1, 1_000_000), "mtu": (1280, 65_000),
    "timeout": (1, 86_400), "repeat": (1, 20),
}
REF_RECV = "bare Python receiver (struct, checksums verified, ACK per segment)"
REF_SEND = "bare Python sender (struct, window-limited, no congestion control)"
REF_CONN = "kernel <-> kernel over a veth (same loop)"
REF_KERNEL_BULK = "kernel <-> kernel over a veth of the same MTU (offloads as Linux sets them)"
REF_BARE_CONN = ("bare Python client over TUN (struct, same loop, a new source port per "
                 "connection instead of TIME_WAIT)")


def _number(name: str, kind: type) -> Callable[[str], Any]:
    """argparse type of --NAME: plain decimal digits (a fraction too when ``kind`` is
    float; rawtcp.argtypes: not int()'s '1_000' or ' 5', nor float()'s '1e3'), within
    RANGES[name]."""
    lo, hi = RANGES[name]

    def parse(text: str) -> Any:
        v = decimal(text, name) if kind is int else decimal_fraction(text, name)
        if not lo <= v <= hi:
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


def _mtus(text: str) -> list[int]:
    parse = _number("mtu", int)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"takes a comma list of MTUs, got {text!r}")
    return list(dict.fromkeys(parse(t) for t in names))


OFFLOAD_MODES = ("off", "on", "both")
#: with --offload both, the offload rows are measured at the MTUs up to this one (a TUN
#: device with a larger MTU already takes segments of up to 64 kB: offload adds nothing)
OFFLOAD_MTU_MAX = 9000


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add bench's options to `p` (a subparser or a fresh parser)."""
    p.description = (
        "Measure rawtcp against the Linux kernel in a private lab (needs root): bulk receive "
        "and send over TUN (at each MTU, with and without offload), and the connection "
        "rate, each between two references measured in the same run: a bare Python "
        "endpoint and kernel <-> kernel.")
    p.add_argument("--tests", type=_tests, default=list(TESTS), metavar="LIST",
                   help="comma list of recv, send, conn (default: all)")
    p.add_argument("--size", type=_number("size", int), default=200, metavar="MB",
                   help="MB (10^6 bytes) per bulk transfer, 1..10000 (default 200)")
    p.add_argument("--conns", type=_number("conns", int), default=2000, metavar="N",
                   help="connections in a row for the connection rate, 1..1000000 "
                        "(default 2000)")
    p.add_argument("--mtu", type=_mtus, default=[1500, 65000], metavar="LIST",
                   help="MTUs of the TUN device (and of the kernel's veth) for the bulk "
                        "figures, a comma list of 1280..65000 (default 1500,65000); the "
                        "connection rate uses the first")
    p.add_argument("--offload", nargs="?", const="on", default="both", choices=OFFLOAD_MODES,
                   help="bulk figures with rawtcp's side over a TUN link with GSO/GRO "
                        "offload (TunLink(offload=True), Config(offload=True)): off, on "
                        "(--offload alone), or both (default: with offload too at the MTUs "
                        f"up to {OFFLOAD_MTU_MAX}); the bare references stay per-segment")
    p.add_argument("--timeout", type=_number("timeout", float), default=300.0,
                   metavar="SECONDS", help="limit for each measurement, 1..86400 (default 300)")
    p.add_argument("--repeat", type=_number("repeat", int), default=1, metavar="N",
                   help="rounds of each test, 1..20 (default 1): rawtcp, its reference and "
                        "the 2nd reference in each round; the ratio is the median of the "
                        "rounds' ratios, which holds on a machine whose speed drifts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _check_args(args: argparse.Namespace) -> None:
    """Re-check values (a caller may build the Namespace itself): ValueError, one line."""
    if not hasattr(args, "repeat"):
        args.repeat = 1
    if not isinstance(args.repeat, int):
        raise ValueError(f"--repeat takes an integer, got {args.repeat!r}")
    if isinstance(args.mtu, int) and not isinstance(args.mtu, bool):
        args.mtu = [args.mtu]
    if not isinstance(args.mtu, (list, tuple)) or not args.mtu:
        raise ValueError(f"--mtu takes a comma list of MTUs, got {args.mtu!r}")
    for name, (lo, hi) in RANGES.items():
        for v in (args.mtu if name == "mtu" else [getattr(args, name)]):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ValueError(f"--{name} must be between {lo:g} and {hi:g}, got {v!r}")
    if isinstance(args.offload, bool):            # a Namespace built by a caller
        args.offload = "on" if args.offload else "off"
    if args.offload not in OFFLOAD_MODES:
        raise ValueError(f"--offload takes one of {', '.join(OFFLOAD_MODES)}, "
                         f"got {args.offload!r}")
    tests = args.tests.split(",") if isinstance(args.tests, str) else list(args.tests)
    if not tests or any(t not in TESTS for t in tests):
        raise ValueError(f"--tests takes a comma list of {', '.join(TESTS)}, got {args.tests!r}")
    args.tests = tests
    if args.offload == "on" and not run.offload_available():
        raise ValueError("--offload is not available yet: this rawtcp's TUN link "
                         "(rawtcp.link.tun.TunLink) has no offload= argument")


def _check_privileges() -> None:
    try:
        from rawtcp.host import privileges
    except ImportError:                       # older layout
        from rawtcp import privileges  # type: ignore[no-redef]
    privileges.check(need_tun=True)


def _measure(fig: Figure, side: str, fn: Callable[[], run.Measure], progress: Progress,
             label: str = "") -> run.Measure | None:
    what = label + side
    try:
        return fn()
    except OSError as e:
        fig.errors.append(f"{what}: {e.strerror or e}")
    except Exception as e:
        if os.environ.get("RAWTCP_DEBUG"):
            raise
        fig.errors.append(f"{what}: internal error {type(e).__name__}: {e} "
                          "(RAWTCP_DEBUG=1 shows the traceback)")
    finally:
        progress.done()
    return None


def _rounds(fig: Figure, rawtcp_fn: Callable[[], run.Measure],
            reference_fn: Callable[[], run.Measure], repeat: int, progress: Progress,
            second_fn: Callable[[], run.Measure] | None = None) -> None:
    """``repeat`` rounds of rawtcp, its reference and the second reference (A B C A B C: a
    drift of the machine's speed hits every side of a round alike)."""
    for i in range(repeat):
        label = f"round {i + 1}: " if repeat > 1 else ""
        a = _measure(fig, "rawtcp", rawtcp_fn, progress, label)
        b = _measure(fig, "reference", reference_fn, progress, label)
        fig.runs.append((a, b))
        if second_fn is not None:
            fig.second_runs.append(_measure(fig, "second reference", second_fn, progress,
                                            label))
    fig.settle()


def bulk_configs(mtus: list[int], offload: str) -> list[tuple[int, bool]]:
    """(MTU, offload) of each pair of bulk figures, in order."""
    out = []
    for mtu in mtus:
        if offload in ("off", "both"):
            out.append((mtu, False))
        if offload == "on" or (offload == "both" and mtu <= OFFLOAD_MTU_MAX
                               and run.offload_available()):
            out.append((mtu, True))
    return out


def run_tests(args: argparse.Namespace, progress: Progress) -> list[Figure]:
    size, t = args.size * MB, args.timeout
    rep = getattr(args, "repeat", 1)
    figures: list[Figure] = []
    sha = ""
    if "send" in args.tests:
        progress.show("bulk send: hashing the stream", force=True)
        sha = stream_sha256(size)
    for mtu, off in bulk_configs(args.mtu, args.offload):
        mtu_text = f"MTU {mtu}" + (", offload" if off else "")
        tag = f"_{mtu}" + ("_offload" if off else "")
        if "recv" in args.tests:
            f = Figure("bulk_receive" + tag, f"bulk receive, kernel -> rawtcp ({mtu_text})",
                       "MB/s", REF_RECV, "sha256", second_is=REF_KERNEL_BULK)
            _rounds(f, lambda mtu=mtu, off=off: run.recv_rawtcp(mtu, size, t, progress, off),
                    lambda mtu=mtu: run.recv_bare(mtu, size, t, progress), rep, progress,
                    lambda mtu=mtu: run.recv_kernel(mtu, size, t, progress))
            figures.append(f)
        if "send" in args.tests:
            f = Figure("bulk_send" + tag, f"bulk send, rawtcp -> kernel ({mtu_text})", "MB/s",
                       REF_SEND, "sha256", second_is=REF_KERNEL_BULK)
            _rounds(f, lambda mtu=mtu, off=off: run.send_rawtcp(mtu, size, sha, t, progress,
                                                                 off),
                    lambda mtu=mtu: run.send_bare(mtu, size, sha, t, progress), rep, progress,
                    lambda mtu=mtu: run.send_kernel(mtu, size, sha, t, progress))
            figures.append(f)
    mtu = args.mtu[0]
    if "conn" in args.tests:
        name = f"connect + {ECHO_BYTES} B echo + close, {args.conns:,} in a row"
        whole = Figure("conn_rate", name, "conn/s", REF_CONN, "echo", second_is=REF_BARE_CONN)
        _rounds(whole, lambda: run.conn_rawtcp(mtu, args.conns, t, progress),
                lambda: run.conn_kernel(args.conns, t, progress, mtu), rep, progress,
                lambda: run.conn_bare(mtu, args.conns, t, progress))
        figures.append(whole)
        for key, label in (("first", "first"), ("last", "last")):
            part = Figure(f"conn_rate_{key}", f"  the {label} 10 %", "conn/s", REF_CONN, "echo",
                          errors=list(whole.errors), second_is=REF_BARE_CONN,
                          part_of=whole.key)

            def piece(m: run.Measure | None, key: str = key) -> run.Measure | None:
                return None if m is None else run.Measure(float(m.details[f"{key}_rate"]),
                                                          m.sha_ok, {})
            part.runs = [(piece(a), piece(b)) for a, b in whole.runs]
            part.second_runs = [piece(m) for m in whole.second_runs]
            part.settle()
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
                "repeat": args.repeat, "load_before": load_before}
    out = to_json(figures, settings) if args.json else to_table(figures, settings)
    try:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    except BrokenPipeError:       # `rawtcp bench | head`: the reader left; as rawtcp's 141
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    return 0 if all(f.ok for f in figures) else 1
