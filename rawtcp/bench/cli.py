"""Options and entry point of `rawtcp bench` (placeholder until the runner lands)."""

from __future__ import annotations

import argparse

TESTS = ("recv", "send", "conn")


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add bench's options to `p` (a subparser or a fresh parser)."""
    p.add_argument("--tests", default=",".join(TESTS),
                   help=f"comma list of {', '.join(TESTS)} (default: all)")
    p.add_argument("--size", type=float, default=200, help="MB per bulk transfer (1..10000)")
    p.add_argument("--conns", type=int, default=2000, help="connections in a row (1..1000000)")
    p.add_argument("--mtu", type=int, default=1500, help="TUN MTU (1280..65000)")
    p.add_argument("--offload", action="store_true", help="TUN offload (not available yet)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per test (1..86400)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(args: argparse.Namespace) -> int:
    """Run the selected tests; return the exit status."""
    raise OSError("rawtcp bench: not implemented yet")
