"""``rawtcp packetdrill [options] FILE_OR_DIR...``: run packetdrill scripts against rawtcp.

Each script runs on a virtual clock (:mod:`.runner`): no root, no network, deterministic.
Per script: ``PASS path``, ``FAIL path`` with packetdrill-style diagnostics (script line,
expected segment, actual segment or "no packet", how far off the time was), or
``UNSUPPORTED path: reason``; then the closing line ``N passed, M failed, K unsupported``.
Exit status 0 only when every script passed; 1 otherwise; 2 for a bad argument.
``--config KEY=VALUE`` (added by rawtcp/cli.py) sets rawtcp's Config under the scripts' own
sysctls.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import multiprocessing
import signal
import sys
from pathlib import Path
from typing import Any

from rawtcp.packetdrill.runner import INT_OPTIONS, RunOptions, parse_int, run_script


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR",
                   help="packetdrill scripts, or directories searched for *.pkt")
    g = p.add_argument_group("packetdrill options (a script's header lines override them)")
    g.add_argument("--ip_version", choices=["ipv4", "ipv6", "ipv4-mapped-ipv6"],
                   default="ipv4", help="address family of the scripts (default ipv4)")
    g.add_argument("--local_ip", type=_ip, help="rawtcp's address, of --ip_version's family "
                                                "(default 192.168.0.1 / fd3d:a0b:17d6::1)")
    g.add_argument("--remote_ip", type=_ip, help="the script's address, of --ip_version's "
                                                 "family (default 192.0.2.1 / "
                                                 "fd3d:fa7b:d17d::1)")
    g.add_argument("--tolerance_usecs", type=_within(0, MAX_TOLERANCE_USECS), default=4000,
                   help="allowed timing error in microseconds, 0-10000000 (10 s; default "
                        "4000)")
    g.add_argument("--mtu", type=_mtu, default=1500,
                   help="link MTU: rawtcp's MSS is MTU-40 (IPv4) or MTU-60 (default 1500)")
    g.add_argument("--tcp_ts_tick_usecs", type=_within(0, MAX_TS_TICK_USECS), default=0,
                   help="check outbound TS val, one tick being this many microseconds, "
                        "0-1000000 (1 s; Linux ticks every 1000; default 0: not checked)")
    g.add_argument("--tcp_ts_ecr_scaled", action="store_true",
                   help="infer inbound TS ecr values that echo no outbound TS val")
    g.add_argument("--strict_segments", action="store_true",
                   help="never join consecutive outbound segments (no TSO/GSO emulation)")
    g.add_argument("--bind_port", type=_port, default=8080, help="port of bind(..., ...)")
    g.add_argument("--connect_port", type=_port, default=8080,
                   help="port of connect(..., ...)")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print the results as JSON")
    o.add_argument("--ladder", action="store_true",
                   help="draw the ladder diagram of each failed run")
    o.add_argument("-v", "--verbose", action="store_true",
                   help="also list what backtick commands applied or ignored")
    o.add_argument("-j", "--jobs", type=_within(1, MAX_JOBS), default=1, metavar="N",
                   help=f"run N scripts at a time in separate processes, 1-{MAX_JOBS} "
                        "(default 1)")
    p.add_argument("--realtime", action="store_true",
                   help="run over a real TUN link in a private namespace, in real time "
                        "(root; raise --tolerance_usecs)")


#: the largest --tolerance_usecs and --tcp_ts_tick_usecs (runner.INT_OPTIONS: the same
#: bounds as in a script's header)
MAX_TOLERANCE_USECS = INT_OPTIONS["tolerance_usecs"][1]
MAX_TS_TICK_USECS = INT_OPTIONS["tcp_ts_tick_usecs"][1]
#: the most scripts run at once (-j): each is a process
MAX_JOBS = 64


def _int(text: str) -> int:
    """An integer as packetdrill takes it: decimal digits or 0x hex (runner.parse_int, as in
    a script's header)."""
    try:
        return parse_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r} (decimal digits or "
                                         "0x hex)") from None


def _within(lo: int, hi: int) -> Any:
    """argparse type: an integer lo..hi."""
    def parse(text: str) -> int:
        v = _int(text)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be {lo}-{hi}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


def _ip(text: str) -> str:
    """argparse type: an IPv4 or IPv6 address (its family is checked against --ip_version
    by :func:`check_addresses`)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None
    return text


def check_addresses(args: argparse.Namespace) -> None:
    """ValueError when --local_ip or --remote_ip is not of --ip_version's family (IPv4 for
    ipv4 and ipv4-mapped-ipv6, IPv6 for ipv6)."""
    want = 6 if args.ip_version == "ipv6" else 4
    for opt in ("local_ip", "remote_ip"):
        text = getattr(args, opt, None)
        if text and ipaddress.ip_address(text).version != want:
            raise ValueError(f"--{opt} {text} is not an IPv{want} address, as "
                             f"--ip_version {args.ip_version} needs")


def _port(text: str) -> int:
    v = _int(text)
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {v}")
    return v


def _mtu(text: str) -> int:
    v = _int(text)
    if not 128 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"MTU must be 128-65535, got {v}")
    return v


def find_scripts(paths: list[str]) -> list[str]:
    """The .pkt files named or found under the directories, in order; ValueError for a path
    that does not exist or a directory without scripts."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(str(x) for x in path.rglob("*.pkt"))
            if not found:
                raise ValueError(f"{p}: no *.pkt scripts in this directory")
            out += found
        elif path.is_file():
            out.append(str(path))
        else:
            raise ValueError(f"{p}: no such file or directory")
    return out


def options_from_args(args: argparse.Namespace) -> RunOptions:
    return RunOptions(ip_version=args.ip_version, local_ip=args.local_ip,
                      remote_ip=args.remote_ip, tolerance_usecs=args.tolerance_usecs,
                      mtu=args.mtu, tcp_ts_tick_usecs=args.tcp_ts_tick_usecs,
                      tcp_ts_ecr_scaled=args.tcp_ts_ecr_scaled,
                      strict_segments=args.strict_segments, bind_port=args.bind_port,
                      connect_port=args.connect_port, realtime=args.realtime,
                      config_overrides=dict(getattr(args, "config_overrides", {}) or {}))


def run_file(path: str, options: RunOptions, ladder: bool = False) -> dict[str, Any]:
    """Parse and run one script; the result as a dict (what crosses process boundaries)."""
    from rawtcp.packetdrill.parser import parse_file
    from rawtcp.packetdrill.script import ScriptError

    try:
        script = parse_file(path)
    except ScriptError as e:
        return {"path": path, "status": "FAIL", "failure": {"line": e.line,
                "message": f"parse error: {e.message}", "expected": None, "actual": None},
                "reason": None, "notes": [], "diagnostics": [str(e)]}
    except OSError as e:
        return {"path": path, "status": "FAIL", "failure": {"line": 0, "message": str(e),
                "expected": None, "actual": None}, "reason": None, "notes": [],
                "diagnostics": [f"{path}: {e.strerror or e}"]}
    res = run_script(script, options)
    d = res.to_dict()
    d["diagnostics"] = res.diagnostics()
    if ladder and res.status == "FAIL" and res.events:
        from rawtcp.report.ladder import render_ladder

        try:
            d["ladder"] = render_ladder(res.events, width=100, left="rawtcp", right="script")
        except (OSError, ValueError) as e:
            d["ladder"] = f"(no ladder: {e})"
    return d


def _worker(item: tuple[str, RunOptions, bool]) -> dict[str, Any]:
    return run_file(*item)


def _worker_init() -> None:
    """A forked worker inherits the command's SIGTERM handler (which unwinds labs); a worker
    has none to unwind, so the default action is right (with --realtime, the worker's lab
    turns it into an unwind that tears the lab down while the lab is up: rawtcp.lab.base).

    Ctrl-C is the command's to handle: the terminal sends it to the whole process group, and
    a worker that raised KeyboardInterrupt printed a traceback of its own next to the
    command's one line. The command ends the pool (terminate(): SIGTERM to each worker,
    then waits for it), so a worker ignores SIGINT."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(args: argparse.Namespace) -> int:
    """Run the scripts; ValueError for a bad argument (the CLI makes it exit 2)."""
    check_addresses(args)
    paths = find_scripts(args.paths)
    if args.realtime:
        from rawtcp.host import privileges

        privileges.check(need_tun=True)     # PermissionError (one line, exit 1) if not root
    options = options_from_args(args)
    items = [(p, options, bool(args.ladder)) for p in paths]
    results: list[dict[str, Any]] = []
    if args.jobs > 1 and len(items) > 1:
        ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
        with ctx.Pool(min(args.jobs, len(items)), initializer=_worker_init) as pool:
            for d in pool.imap(_worker, items):
                results.append(d)
                if not args.json:
                    _print_one(d, args)
            pool.close()          # the workers end on their own; no SIGTERM at the end
            pool.join()
    else:
        for item in items:
            d = _worker(item)
            results.append(d)
            if not args.json:
                _print_one(d, args)
    counts = {s: sum(1 for d in results if d["status"] == s)
              for s in ("PASS", "FAIL", "UNSUPPORTED")}
    if args.json:
        print(json.dumps({"passed": counts["PASS"], "failed": counts["FAIL"],
                    "unsupported": counts["UNSUPPORTED"], "results": results},
                         indent=2, default=str))
    else:
        line = f"{counts['PASS']} passed, {counts['FAIL']} failed"
        if counts["UNSUPPORTED"]:
            line += f", {counts['UNSUPPORTED']} unsupported"
        print(line, flush=True)
    return 0 if counts["PASS"] == len(results) else 1


def _print_one(d: dict[str, Any], args: argparse.Namespace) -> None:
    status, path = d["status"], d["path"]
    if status == "UNSUPPORTED":
        print(f"UNSUPPORTED {path}: {d.get('reason')}")
    else:
        print(f"{status} {path}")
    if status == "FAIL":
        for line in d.get("diagnostics", []):
            print(f"    {line}")
        if d.get("ladder"):
            print(d["ladder"])
    if args.verbose:
        for note in d.get("notes", []):
            print(f"    note: {note}")
    sys.stdout.flush()
