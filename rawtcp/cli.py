"""The `rawtcp` command.

Every user error ends as one clear line on stderr and a non-zero exit status (2 for a bad
argument); a traceback only appears with RAWTCP_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rawtcp import commands
from rawtcp.cli_support import (
    CliError,
    Parser,
    add_config_args,
    count,
    host,
    one_line,
    port,
    seconds,
)
from rawtcp.sweep_cli import add_sweep_parser, ranged

#: the most runs `rawtcp experiment run --runs` repeats
MAX_RUNS = 1000


def _add_link_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("link")
    g.add_argument("--link", choices=["lab", "tun", "packet", "rawip"], default="lab",
                   help="lab (default; needs --lab NAME): AF_PACKET in a lab made by `rawtcp "
                        "lab up`; tun: a TUN device with --addr; packet: AF_PACKET on --iface "
                        "with our own --addr; rawip: raw IP socket on an address the kernel "
                        "owns (--iface)")
    g.add_argument("--lab", metavar="NAME", help="use a lab made by `rawtcp lab up`")
    g.add_argument("--iface", help="interface for --link packet/rawip")
    g.add_argument("--addr", help="our IP address (packet: one the kernel does not have)")
    g.add_argument("--netns", help="network namespace to open the link in")
    _add_fault_args(p)
    g2 = p.add_argument_group("observation")
    g2.add_argument("--pcap", metavar="FILE", help="write both directions to a pcap file")
    g2.add_argument("--trace", metavar="FILE", help="write a JSON-lines trace")
    g2.add_argument("--ladder", action="store_true",
                    help="draw the ladder diagram on stderr while the connection runs")
    g2.add_argument("--packetdrill", metavar="FILE",
                    help="write the connection as a packetdrill script from the peer's point "
                         "of view (docs/packetdrill.md: replay it against Linux)")


def _add_fault_args(p: argparse.ArgumentParser, extra: str = "") -> None:
    g = p.add_argument_group("faults (see docs/faults.md)" + extra)
    examples = {"drop": "'out flags=A state=TIME_WAIT nth=1'", "delay": "'out flags=S ms=300'",
                "duplicate": "'in len>0 p=0.1 seed=7'", "reorder": "'out len>0 nth=3'",
                "corrupt": "'in nth=2'"}
    for action, example in examples.items():
        g.add_argument(f"--{action}", action="append", default=[], metavar="RULE",
                       help=f"{action} matching segments, e.g. {example}")
    g.add_argument("--mangle", action="append", default=[], metavar="RULE",
                   help="rewrite matching segments: matchers, then 'set', then changes, e.g. "
                        "'in flags=A set win=0' or 'out flags=S set -sack mss=536'")
    g.add_argument("--inject", action="append", default=[], metavar="RULE",
                   help="send a crafted segment when a trigger fires: trigger, then 'send', "
                        "then the segment, e.g. 'on=ESTABLISHED send RST seq=snd_nxt+10'")
    g.add_argument("--persona", action="append", default=[], metavar="NAME",
                   help="a misbehaving peer made of rules (repeatable; `rawtcp persona list` "
                        "explains each), e.g. zero-window-forever")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="rawtcp", description="A userspace TCP stack that talks to real kernels.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)

    d = sub.add_parser("demo", help="build a private lab, run the lifecycle and final-ACK-drop "
                                    "experiments against the kernel, show ladders")
    d.add_argument("--dir", help="where to write pcap/trace/ladders (default: a new directory)")
    d.add_argument("--color", action="store_true", help="colour the ladders")

    e = sub.add_parser("experiment", help="named experiments against a real kernel")
    esub = e.add_subparsers(dest="ecmd", metavar="ACTION", parser_class=Parser)
    esub.add_parser("list", help="list the catalogue")
    r = esub.add_parser("run", help="run one experiment")
    r.add_argument("name")
    r.add_argument("--seed", type=ranged("seed"), default=1,
                   help="seed of the first run (0-2147483647, default 1)")
    r.add_argument("--runs", type=count("runs", 1, MAX_RUNS), default=1,
                   help=f"repeat with seeds SEED, SEED+1, ... (1-{MAX_RUNS}, default 1)")
    r.add_argument("--json", action="store_true",
                   help="machine-readable result on stdout (progress still on stderr)")
    r.add_argument("--report", metavar="DIR", help="write trace, pcap, ladder and plots here")
    r.add_argument("--packetdrill", metavar="FILE",
                   help="write the run's first connection as a packetdrill script from the "
                        "kernel's point of view (several runs: FILE-runN.pkt)")
    r.add_argument("--color", action="store_true", help="colour the ladder")
    r.add_argument("--quiet", "-q", action="store_true",
                   help="no ladder and no progress: the checks and the verdict")
    _add_fault_args(r, extra=" (added to the experiment's own rules; its checks still "
                             "decide, so they may fail)")
    add_config_args(r, extra=" (over the experiment's own; its checks still decide)")
    r.add_argument("--peer-swap", action="store_true", help="run it again with a Linux socket "
                   "in rawtcp's place and show both, the differences marked (close sequence)")
    add_sweep_parser(esub)   # `rawtcp experiment sweep` (rawtcp/sweep_cli.py)

    c = sub.add_parser("connect", help="netcat-like client over rawtcp")
    c.add_argument("host", type=host, help="IP address or name of the peer")
    c.add_argument("port", type=port, help="TCP port of the peer")
    c.add_argument("--timeout", type=seconds, default=10.0,
                   help="seconds to wait for the connection (default 10)")
    _add_link_args(c)
    add_config_args(c)

    ls = sub.add_parser("listen", help="netcat-like server over rawtcp (one connection)")
    ls.add_argument("port", type=port, help="TCP port to listen on")
    ls.add_argument("--timeout", type=seconds, default=60.0,
                    help="seconds to wait for a connection (default 60)")
    _add_link_args(ls)
    add_config_args(ls)

    rn = sub.add_parser("run", help="run a Python program whose TCP sockets are rawtcp's: "
                                    "rawtcp run --lab NAME -- python3 PROGRAM|-m MODULE [ARGS]",
                        description="Run a Python program in this process with the socket "
                                    "module patched (docs/run.md): its AF_INET/AF_INET6 "
                                    "sockets, asyncio's included, are rawtcp sockets on one "
                                    "stack with the fault rules and observation below. The "
                                    "program's exit status is rawtcp run's.")
    rn.add_argument("program", nargs=argparse.REMAINDER, metavar="-- python PROGRAM [ARGS]",
                    help="after --: python (python3, a path to a python) then a script, "
                         "-m MODULE or -c CODE, and its arguments; or the script directly")
    _add_link_args(rn)
    add_config_args(rn)

    cf = sub.add_parser("config", help="every stack setting (Config field) with its default, "
                                       "unit, range and meaning")
    cf.add_argument("--json", action="store_true", help="machine-readable, on stdout")
    add_config_args(cf)

    lab = sub.add_parser("lab", help="private network labs")
    lsub = lab.add_subparsers(dest="lcmd", metavar="ACTION", parser_class=Parser)
    up = lsub.add_parser("up", help="create a persistent lab (two namespaces and a veth)")
    up.add_argument("--ipv6", action="store_true", help="IPv6 addresses too (dual stack)")
    dn = lsub.add_parser("down", help="remove a lab")
    dn.add_argument("name", help="the lab's name (`rawtcp lab list` shows them)")
    lsub.add_parser("list", help="list labs")
    cl = lsub.add_parser("clean", help="remove leftovers of crashed runs")
    cl.add_argument("--force", action="store_true",
                    help="also objects of live processes and every `lab up` lab")

    ld = sub.add_parser("ladder", help="draw a ladder diagram from a trace (.jsonl) or a pcap")
    ld.add_argument("file", help="a JSON-lines trace (--trace, --report) or a pcap/pcapng")
    ld.add_argument("--color", action="store_true", help="ANSI colours")
    ld.add_argument("--ours", metavar="ADDR", help="(pcap) our address; default: SYN sender")

    from rawtcp import bench

    b = sub.add_parser("bench", help="what rawtcp does on this machine: bulk receive/send and "
                                     "connection rate against the kernel, next to references "
                                     "measured in the same run")
    bench.configure_parser(b)

    from rawtcp.packetdrill import cli as packetdrill_cli

    pd = sub.add_parser("packetdrill", help="run packetdrill scripts against rawtcp on a "
                                            "virtual clock (no root, deterministic)")
    packetdrill_cli.configure_parser(pd)
    add_config_args(pd)

    pe = sub.add_parser("persona", help="misbehaving peers made of fault rules (--persona)")
    pesub = pe.add_subparsers(dest="pcmd", metavar="ACTION", parser_class=Parser)
    pl = pesub.add_parser("list", help="each persona: what it does, its rules, what the "
                                       "kernel is expected to do")
    pl.add_argument("--json", action="store_true", help="machine-readable, on stdout")
    pe.set_defaults(handler=commands.cmd_persona)

    pc = sub.add_parser("peer-check", help="against a remote kernel: handshake, echo, "
                                           "final-ACK drop (used by docker compose)")
    pc.add_argument("--peer", required=True, type=host,
                    help="host name or address of an echo server")
    pc.add_argument("--port", type=port, default=7, help="the echo server's port (default 7)")
    pc.add_argument("--iface", help="interface (default: the one routing to the peer)")
    pc.add_argument("--pcap", metavar="FILE", help="write the first check's packets here")
    return p


def _version() -> str:
    from rawtcp import __version__

    return f"rawtcp {__version__}"


class _Terminated(KeyboardInterrupt):
    """SIGTERM: unwind like Ctrl-C, so labs, stacks and peers are torn down."""


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    import signal

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = build_parser().parse_args(argv)
        if not args.cmd:
            build_parser().print_help()
            return 2
        return int(commands.dispatch(args) or 0)
    except CliError as e:
        print(str(e), file=sys.stderr)
        return e.code
    except _Terminated:
        print("rawtcp: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("rawtcp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:    # `rawtcp ... | head`: the reader left; no message
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except (OSError, ValueError, LookupError, RuntimeError) as e:
        if os.environ.get("RAWTCP_DEBUG"):
            raise
        code = 2 if type(e).__name__ == "RuleError" else 1
        print(f"rawtcp: {one_line(e)}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover - `python -m rawtcp.cli`: use the real module
    from rawtcp.cli import main as _main

    sys.exit(_main())
