"""What each `rawtcp` subcommand does (the parser lives in cli.py, which imports this module;
this module never imports cli.py: what both need is in cli_support.py)."""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from typing import Any

from rawtcp.cli_support import (
    CliError,
    check_output_file,
    config_overrides,
    human_us,
    one_line,
    print_json,
)

DEMO_EXPERIMENTS = ("lifecycle", "final-ack-drop", "final-ack-drop-passive")


def dispatch(args) -> int:
    cmd = args.cmd
    # --config / --config-file: a bad key, value or file is exit 2 before anything runs
    args.config_overrides = config_overrides(args)
    # fault rules and personas: a bad one is exit 2 before any link or lab
    if any(getattr(args, k, None) for k in ("drop", "delay", "duplicate", "reorder", "corrupt",
                                             "mangle", "inject", "persona")):
        _fault_engine(args)
    # a subcommand defined in its own module registers itself with set_defaults(handler=...)
    # and checks its own privileges
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args) or 0)
    if cmd == "config":
        return cmd_config(args)
    if cmd == "ladder":
        return cmd_ladder(args)
    if cmd == "bench":
        return cmd_bench(args)
    if cmd == "packetdrill":
        return cmd_packetdrill(args)
    if cmd == "experiment" and getattr(args, "ecmd", None) == "list":
        return cmd_experiment_list(args)
    if cmd == "experiment" and not getattr(args, "ecmd", None):
        raise CliError("rawtcp experiment: give an action: list, run NAME or sweep NAME", 2)
    if cmd == "lab" and not getattr(args, "lcmd", None):
        raise CliError("rawtcp lab: give an action: up, down, list or clean", 2)
    if cmd == "run":          # a bad program line: one line, exit 2, before any link
        args.run_program = _run_program_arg(args)
    from rawtcp.host import privileges

    privileges.check(need_tun=cmd in ("demo", "experiment"))
    if cmd == "demo":
        return cmd_demo(args)
    if cmd == "experiment":
        return cmd_experiment_run(args)
    if cmd == "lab":
        return cmd_lab(args)
    if cmd in ("connect", "listen"):
        return cmd_netcat(args)
    if cmd == "run":
        return cmd_run(args)
    if cmd == "peer-check":
        return cmd_peer_check(args)
    raise CliError(f"rawtcp: unknown command {cmd!r}", 2)


# --------------------------------------------------------------------------- output helpers
def _out(msg: str = "") -> None:
    print(msg, flush=True)


def _short_metrics(metrics: dict, limit: int = 160) -> str:
    """The scalar metrics, clipped: lists and tables are in --json and the report."""
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    if not flat:
        return ""
    text = "  " + ", ".join(f"{k}={v}" for k, v in flat.items())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _verdict_block(res) -> str:
    lines = []
    for c in res.checks:
        mark = "ok  " if c.ok else "FAIL"
        lines.append(f"  [{mark}] {c.name}" + (f"  ({c.evidence})" if c.evidence else ""))
    lines.append(f"  => {res.name}: {'PASS' if res.passed else 'FAIL'}"
                 f" in {res.duration_s:.2f} s" + _short_metrics(res.metrics))
    return "\n".join(lines)


def _make_dir(path: str, option: str) -> None:
    """Create an output directory up front: a bad one is a bad argument (exit 2), not a
    failure after the run."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".rawtcp-write-test-{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.unlink(probe)
    except OSError as e:
        raise CliError(f"rawtcp: {option} {path}: cannot write there "
                       f"({e.strerror or e})", 2) from None


def _check_output_files(args) -> None:
    """--packetdrill, --pcap and --trace of connect, listen and run: one that cannot be
    written is a bad argument (exit 2) before any link is opened."""
    for opt in ("packetdrill", "pcap", "trace"):
        if getattr(args, opt, None):
            check_output_file(getattr(args, opt), f"--{opt}")


# --------------------------------------------------------------------------- config
def _write_packetdrill(path: str, events: list[dict], title: str) -> None:
    """The run's connection as a packetdrill script from the peer's point of view; a run
    without a connection to export gets a note on stderr, not a failure."""
    from rawtcp.packetdrill.export import ExportError, write_script

    try:
        write_script(path, events, view="peer", title=title)
    except ExportError as e:
        print(f"rawtcp: --packetdrill {path}: no script written: {e}", file=sys.stderr)
        return
    except OSError as e:
        raise CliError(f"rawtcp: --packetdrill {path}: {e.strerror or e}", 1) from None
    print(f"rawtcp: packetdrill script (the peer's view) in {path}", file=sys.stderr)


def _numbered(path: str, run: int, runs: int) -> str:
    if runs == 1:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}-run{run}{ext or '.pkt'}"


def cmd_config(args) -> int:
    """Every Config field: default, unit, range, meaning (and the value --config/--config-file
    give it, when they are used)."""
    from rawtcp.core.config import Config

    over = args.config_overrides
    infos = Config.fields_info()
    if args.json:
        rows = []
        for i in infos:
            row = i._asdict()
            row["range"] = list(i.range) if i.range else None
            if over:
                row["value"] = over.get(i.name, i.default)
            rows.append(row)
        print_json(rows)
        return 0

    def show(info, value) -> str:
        if info.type == "bool":
            return "on" if value else "off"
        if value is None:
            return "none"
        if info.type == "str":
            return str(value)
        if info.unit == "us" and value >= 1000:
            return f"{value} us ({human_us(value)})"
        return f"{value} {info.unit}"

    _out("Config fields (set with --config KEY=VALUE or --config-file FILE; durations are "
         "integer microseconds)")
    for i in infos:
        if i.range is not None:
            rng = f"{i.range[0]}..{i.range[1]}" + (" or none" if i.type == "int | None" else "")
        else:
            rng = "|".join(i.choices) if getattr(i, "choices", None) else "on/off"
        if i.name in over:
            head = f"{i.name} = {show(i, over[i.name])}  (default {show(i, i.default)})"
        else:
            head = f"{i.name} = {show(i, i.default)}"
        _out(f"{head}  [{rng}]")
        _out(f"    {i.meaning}")
    return 0


def _config(args):
    """The Config of connect/listen: the defaults with --config-file and --config applied."""
    from rawtcp.core.config import Config

    return Config().with_overrides(getattr(args, "config_overrides", None) or {})


# --------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from rawtcp.experiments import REGISTRY, load_all, run_experiment

    load_all()
    outdir = args.dir or os.path.abspath(time.strftime("rawtcp-demo-%Y%m%d-%H%M%S"))
    _make_dir(outdir, "--dir")
    _out("rawtcp demo: a private network namespace, a TUN device, the real Linux kernel on")
    _out("the other side. rawtcp runs its own TCP; the kernel runs Linux's.")
    t0 = time.monotonic()
    results = []
    for name in DEMO_EXPERIMENTS:
        exp = REGISTRY[name]
        _out("")
        _out(f"=== {name}: {exp.title}")
        _out(f"    expect: {exp.expect}")
        # one directory per experiment: each report has its own index.html
        res = run_experiment(name, report_dir=os.path.join(outdir, name), color=args.color)
        results.append(res)
        _out(res.ladder)
        _out(_verdict_block(res))
    ok = all(r.passed for r in results)
    _out("")
    _out(f"rawtcp demo: {sum(r.passed for r in results)}/{len(results)} experiments held "
         f"in {time.monotonic() - t0:.1f} s; reports (index.html, pcap, trace, ladder) "
         f"in {outdir}/NAME/")
    return 0 if ok else 1


# --------------------------------------------------------------------------- experiments
def _clip_ladder(text: str, path: str | None, head: int = 80, tail: int = 15) -> str:
    """A long ladder (a bulk transfer has thousands of rows) is shown clipped on the
    terminal; the whole diagram is in the report's ladder file."""
    lines = text.splitlines()
    if len(lines) <= head + tail + 5:
        return text
    where = f"the whole ladder is in {path}" if path else \
        "run with --report DIR for the whole ladder"
    return "\n".join(lines[:head] + [f"   ... {len(lines) - head - tail} rows not shown: "
                                      f"{where} ..."] + lines[-tail:])


def cmd_experiment_list(args) -> int:
    from rawtcp.experiments import load_all

    reg = load_all()
    width = max(len(n) for n in reg)
    for name, exp in reg.items():
        slow = " (slow)" if exp.slow else ""
        _out(f"{name:<{width}}  {exp.title}{slow}")
        _out(f"{'':<{width}}    expect: {exp.expect}")
    return 0


def cmd_experiment_run(args) -> int:
    from rawtcp.experiments import load_all, run_experiment

    reg = load_all()
    if args.name not in reg:
        raise CliError(f"rawtcp: no experiment named {args.name!r} "
                       f"(known: {', '.join(reg)})", 2)
    from rawtcp.experiments.sweep import LIMITS

    if args.seed + args.runs - 1 > LIMITS["seed"][1]:
        raise CliError(f"rawtcp: --seed {args.seed} --runs {args.runs}: the last run's seed "
                       f"would pass {LIMITS['seed'][1]}", 2)
    extra = fault_texts(args)
    for text in extra:       # a bad rule: one line, exit 2, before any lab is built
        from rawtcp.experiments.base import parse_action_rule

        parse_action_rule(text)
    if getattr(args, "peer_swap", False):   # the same scenario with Linux in rawtcp's place
        from rawtcp.experiments.peerswap import cli_peer_swap

        return cli_peer_swap(args, extra)
    if args.report:
        _make_dir(args.report, "--report")
    if args.packetdrill:
        check_output_file(args.packetdrill, "--packetdrill")
    results = []
    show = not args.json and not args.quiet
    for i in range(args.runs):
        seed = args.seed + i
        rdir = args.report
        if rdir and args.runs > 1:
            rdir = os.path.join(rdir, f"run{i + 1}-seed{seed}")
        if not args.json:
            _out(f"=== {args.name} (seed {seed}, run {i + 1}/{args.runs})")

        def progress(msg: str) -> None:
            if not args.quiet:
                print(f"  .. {msg}", file=sys.stderr, flush=True)

        res = run_experiment(args.name, seed=seed, report_dir=rdir, progress=progress,
                             color=args.color, extra_faults=extra,
                             config_overrides=args.config_overrides or None)
        results.append(res)
        if args.packetdrill:
            _write_packetdrill(_numbered(args.packetdrill, i + 1, args.runs), res.events,
                               f"rawtcp experiment run {args.name} (seed {seed})")
        if not args.json:
            if show and res.ladder:
                _out(_clip_ladder(res.ladder, res.files.get("ladder")))
            _out(_verdict_block(res))
            if res.files:
                _out("  files: " + ", ".join(f"{k}={v}" for k, v in res.files.items()))
    ok = all(r.passed for r in results)
    if args.json:
        out = [r.to_dict() for r in results]
        print_json(out[0] if len(out) == 1 else {"experiment": args.name, "runs": out,
                                                  "passed": ok})
    elif args.runs > 1:
        _out(f"{args.name}: {sum(r.passed for r in results)}/{len(results)} runs passed")
    return 0 if ok else 1


# --------------------------------------------------------------------------- ladder
def cmd_ladder(args) -> int:
    from rawtcp.report.ladder import check_trace, ladder_from_pcap, render_ladder

    path = args.file
    if not os.path.exists(path):
        raise CliError(f"rawtcp ladder: no such file: {path}", 2)
    if os.path.isdir(path):
        raise CliError(f"rawtcp ladder: {path} is a directory; give a trace (.jsonl) or a "
                       "capture (pcap, pcapng)", 2)
    from rawtcp.report.captures import is_capture

    if is_capture(path):       # pcap (any byte order, us or ns) or pcapng
        try:
            _out(ladder_from_pcap(path, our_addr=args.ours, width=100, color=args.color))
        except OSError as e:
            if e.errno == errno.EINVAL:     # a wrong --ours, or nothing to draw
                raise CliError(f"rawtcp ladder: {e.strerror}", 2) from None
            raise
        return 0
    from rawtcp.trace import read_trace

    try:
        events = read_trace(path)
    except ValueError as e:
        raise CliError(f"rawtcp ladder: {path} is neither a capture (pcap/pcapng) nor a "
                       "JSON-lines trace "
                       f"({e})", 2) from None
    if not events:
        raise CliError(f"rawtcp ladder: {path} holds no events", 2)
    try:
        check_trace(events, path)
    except ValueError as e:
        raise CliError(f"rawtcp ladder: {e}", 2) from None
    _out(render_ladder(events, width=100, color=args.color, right="peer"))
    return 0


# --------------------------------------------------------------------------- labs
# `lab up` records live with the lab (rawtcp.lab.persistent); this module only prints.
def _lab_record(name: str):
    from rawtcp.lab.persistent import lab_record

    try:
        return lab_record(name)
    except LookupError as e:
        raise CliError(f"rawtcp: {e}", 2) from None


def cmd_lab(args) -> int:
    from rawtcp.lab import persistent

    if args.lcmd == "up":
        rec = persistent.lab_up(ipv6=args.ipv6)
        _out(f"lab {rec.name} is up: kernel {', '.join(rec.kernel_addrs)} in netns "
             f"{rec.kernel_netns}; rawtcp {', '.join(rec.rawtcp_addrs)} (AF_PACKET) in "
             f"netns {rec.rawtcp_netns}")
        _out(f"  kernel server:  ip netns exec {rec.kernel_netns} python3 -m http.server 8080")
        _out(f"  rawtcp client:  rawtcp connect --lab {rec.name} {rec.kernel_addr} 8080")
        _out(f"  remove it:      rawtcp lab down {rec.name}")
        return 0
    if args.lcmd == "down":
        _lab_record(args.name)                     # unknown name: one line, exit 2
        persistent.lab_down(args.name)
        _out(f"lab {args.name} removed")
        return 0
    if args.lcmd == "list":
        from rawtcp.lab.cleanup import list_labs

        recs = persistent.lab_records()
        for r in recs:
            _out(("(gone: its namespaces were removed; `rawtcp lab down NAME` forgets it) "
                  if r.gone() else "") + f"lab {r.name}: kernel {', '.join(r.kernel_addrs)} "
                 f"({r.kernel_netns}), rawtcp {', '.join(r.rawtcp_addrs)} "
                 f"({r.rawtcp_netns})")
        objs = list_labs()
        for o in objs:
            state = "in use" if o["alive"] else "leftover"
            _out(f"{o['kind']} {o['name']}" + (f" in {o['netns']}" if o["netns"] else "")
                 + f" (pid {o['pid']}, {state})")
        if not recs and not objs:
            _out("no labs")
        return 0
    if args.lcmd == "clean":
        from rawtcp.lab.cleanup import clean

        # Without --force only what dead processes left behind goes: the registry's entries
        # of dead pids. Labs made by `rawtcp lab up` are not in the registry (their creator
        # exits at once), so they stay; --force also sweeps unregistered rawtcp namespaces
        # and removes every `lab up` lab.
        done = clean(force=args.force, orphans=args.force)
        if args.force:
            done += [f"lab {name}" for name in persistent.remove_all()]
        for d in done:
            _out(f"removed {d}")
        _out(f"{len(done)} object(s) removed")
        return 0
    raise CliError(f"rawtcp lab: unknown action {args.lcmd!r}", 2)


# --------------------------------------------------------------------------- links for CLI
def fault_texts(args) -> list[str]:
    """The fault options as rule texts, action first: --drop ... --inject in the order of
    the actions, then the rules of each --persona (a bad persona name: one line, exit 2)."""
    from rawtcp.faults import ACTIONS
    from rawtcp.faults.personas import persona_texts

    texts = [f"{action} {text}" for action in ACTIONS
             for text in getattr(args, action, []) or []]
    return texts + persona_texts(getattr(args, "persona", []) or [])


def _fault_engine(args, seed: int = 0):
    from rawtcp.faults import FaultEngine, parse_action_rule

    rules = [parse_action_rule(text) for text in fault_texts(args)]
    return FaultEngine(rules, seed=seed) if rules else None


def cmd_persona(args) -> int:
    """`rawtcp persona list`: every persona, one paragraph each."""
    import textwrap

    from rawtcp.faults.personas import PERSONAS

    if getattr(args, "pcmd", None) != "list":
        raise CliError("rawtcp persona: give an action: list", 2)
    if args.json:
        print_json([{"persona": p.name, "title": p.title, "rules": list(p.rules),
                     "does": p.does, "kernel": p.kernel} for p in PERSONAS.values()])
        return 0
    for p in PERSONAS.values():
        _out(f"{p.name}: {p.title}")
        _out(textwrap.fill(p.explain(), width=96, initial_indent="    ",
                           subsequent_indent="    "))
        _out(f"    experiment: rawtcp experiment run persona-{p.name}")
    _out("use: --persona NAME (repeatable) on connect, listen, run and experiment run")
    return 0


def _open_link(args):
    if args.lab:
        from rawtcp.link.packet import PacketLink

        rec = _lab_record(args.lab)
        from rawtcp.host.netns import netns_exists

        if not netns_exists(rec.rawtcp_netns):
            raise CliError(f"rawtcp: the namespaces of lab {args.lab} are gone (removed by "
                           f"`rawtcp lab clean --force`?); run `rawtcp lab down {args.lab}` "
                           "and `rawtcp lab up` again")
        return PacketLink(rec.rawtcp_if, rec.rawtcp_addrs, netns=rec.rawtcp_netns)
    if args.link == "lab":
        raise CliError("rawtcp: choose a link: --lab NAME (from `rawtcp lab up`), "
                       "--link rawip --iface IF, --link packet --iface IF --addr ADDR, or "
                       "--link tun --addr ADDR", 2)
    if args.link == "tun":
        from rawtcp.link.tun import TunLink

        if not args.addr:
            raise CliError("rawtcp: --link tun needs --addr (rawtcp's address behind the TUN)", 2)
        return TunLink([args.addr], [_peer_side(args.addr)], netns=args.netns)
    if not args.iface:
        raise CliError(f"rawtcp: --link {args.link} needs --iface", 2)
    if args.link == "packet":
        from rawtcp.link.packet import PacketLink

        if not args.addr:
            raise CliError("rawtcp: --link packet needs --addr (an address the kernel does not "
                           "have on that interface)", 2)
        return PacketLink(args.iface, [args.addr], netns=args.netns)
    from rawtcp.link import discover
    from rawtcp.link.rawip import RawIpLink

    addrs = [args.addr] if args.addr else discover.addresses_of(args.iface, args.netns)
    if not addrs:
        raise CliError(f"rawtcp: interface {args.iface} has no address; give --addr")
    return RawIpLink(addrs, netns=args.netns, name=args.iface)


def _peer_side(addr: str) -> str:
    import ipaddress

    ip = ipaddress.ip_address(addr)
    other = ip + 1 if int(ip) % 2 == 0 else ip - 1
    return str(other)


def cmd_netcat(args) -> int:
    from rawtcp.runtime import Stack
    from rawtcp.trace import Tracer

    config = _config(args)
    _check_addresses(args)
    _check_output_files(args)
    live = None
    if args.ladder:      # rows on stderr as they happen; stdout stays the data
        from rawtcp.report.ladder import LiveLadder

        def _write(text: str) -> None:
            sys.stderr.write(text)
            sys.stderr.flush()

        live = LiveLadder(_write, width=100, right="peer")
    tracer = Tracer(args.trace, subscribers=[live] if live else ()) \
        if (args.trace or args.ladder or args.packetdrill) else None
    link = _open_link(args)
    st = Stack(link, config, faults=_fault_engine(args), tracer=tracer, pcap=args.pcap)
    held: list[int] = []        # claims (fds) released when the command ends
    try:
        import socket as _s

        if args.cmd == "connect":
            fam = _s.AF_INET6 if ":" in args.host else _s.AF_INET
            s = st.socket(fam)
            s.settimeout(args.timeout)
            s.connect((args.host, args.port))
            print(f"rawtcp: connected to {args.host}:{args.port}", file=sys.stderr)
        else:
            if args.lab:
                from rawtcp.lab.persistent import claim_port

                try:      # two rawtcp listeners on one lab port would reset each other
                    claim = claim_port(args.lab, args.port)
                except OSError as e:
                    raise CliError(f"rawtcp: {e.strerror}") from None
                held.append(claim)
            s, peer = _accept_one(st, args.port, args.timeout)
            print(f"rawtcp: connection from {peer[0]}:{peer[1]}", file=sys.stderr)
            s.settimeout(None)
        _pump(s)
        s.close()
        st.wait_for(lambda: s.tcb.state.name in ("CLOSED", "TIME_WAIT"), 5.0)
    finally:
        st.close()
        for fd in held:
            os.close(fd)
        if tracer is not None:
            tracer.close()
        if live is not None:
            live.close()
    if args.packetdrill and tracer is not None:
        _write_packetdrill(args.packetdrill, tracer.events(), f"rawtcp {args.cmd}")
    return 0


def _run_program_arg(args):
    from rawtcp.run import UsageError, parse_program

    try:
        return parse_program(args.program)
    except UsageError as e:
        raise CliError(str(e), 2) from None


def cmd_run(args) -> int:
    """`rawtcp run`: the program (rawtcp/run.py) under rawtcp.patch on one stack, with the
    link, faults and observation of connect/listen; the program's status is returned."""
    from rawtcp.run import run_program
    from rawtcp.runtime import Stack
    from rawtcp.trace import Tracer

    config = _config(args)
    _check_addresses(args)
    _check_output_files(args)
    live = None
    if args.ladder:
        from rawtcp.report.ladder import LiveLadder

        live = LiveLadder(lambda text: (sys.stderr.write(text), sys.stderr.flush()),
                          width=100, right="peer")
    tracer = Tracer(args.trace, subscribers=[live] if live else ()) \
        if (args.trace or args.ladder or args.packetdrill) else None
    try:
        engine = _fault_engine(args)
        link = _open_link(args)
    except BaseException:
        if tracer is not None:
            tracer.close()
        raise
    st = Stack(link, config, faults=engine, tracer=tracer, pcap=args.pcap)
    try:
        status = run_program(st, args.run_program)
    finally:
        st.close()
        if tracer is not None:
            tracer.close()
        if live is not None:
            live.close()
    if args.packetdrill and tracer is not None:
        _write_packetdrill(args.packetdrill, tracer.events(), "rawtcp run")
    return status


def _check_addresses(args) -> None:
    """--addr and the peer (connect's HOST, when it is an address) are bad arguments (exit 2)
    when they are not addresses or not of one family."""
    import ipaddress

    addr = None
    if getattr(args, "addr", None):
        try:
            addr = ipaddress.ip_address(args.addr)
        except ValueError:
            raise CliError(f"rawtcp: --addr {args.addr!r} is not an IPv4 or IPv6 address",
                           2) from None
    host = getattr(args, "host", None) if args.cmd == "connect" else None
    if addr is not None and host:
        try:
            peer = ipaddress.ip_address(host)
        except ValueError:
            return                        # a name: resolved later, in the link's family
        if peer.version != addr.version:
            raise CliError(f"rawtcp: the peer {host} is IPv{peer.version} but --addr "
                           f"{args.addr} is IPv{addr.version}; give an --addr of the peer's "
                           "family", 2)


def _accept_one(st, port: int, timeout: float):
    """Listen on every address of the link (IPv4 and IPv6) and accept the first connection."""
    import selectors
    import socket as _s

    listeners = []
    sel = selectors.DefaultSelector()
    try:
        for addr in st.addresses:
            ls = st.socket(_s.AF_INET6 if ":" in addr else _s.AF_INET)
            ls.bind((addr, port))
            ls.listen(1)
            ls.setblocking(False)
            listeners.append(ls)
            sel.register(ls, selectors.EVENT_READ)
        where = ", ".join(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in st.addresses)
        print(f"rawtcp: listening on {where}", file=sys.stderr)
        ready = sel.select(timeout)
        if not ready:
            raise TimeoutError(f"no connection within {timeout:g} s (--timeout)")
        return ready[0][0].fileobj.accept()
    finally:
        sel.close()
        for ls in listeners:
            ls.close()


def _pump(s) -> None:
    """stdin -> socket (then SHUT_WR), socket -> stdout. Both directions run to their own end:
    the peer's FIN ends only what we read (a half-close), our stdin's EOF sends our FIN."""
    def reader() -> None:
        try:
            while True:
                data = os.read(sys.stdin.fileno(), 65536)
                if not data:
                    break
                s.sendall(data)
            s.shutdown(1)
        except OSError:
            pass

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    s.settimeout(None)
    out = sys.stdout.buffer
    while True:
        data = s.recv(65536)
        if not data:
            break
        out.write(data)
        out.flush()
    th.join()     # the peer half-closed: our stdin still goes out, then our FIN


# --------------------------------------------------------------------------- bench
def cmd_bench(args) -> int:
    """`rawtcp bench` (rawtcp/bench): a ValueError is a bad argument (exit 2), an OSError a
    failure (exit 1), each one line."""
    from rawtcp import bench

    def line(e: Exception) -> str:
        text = one_line(e)
        return text if text.startswith("rawtcp bench:") else f"rawtcp bench: {text}"

    try:
        return int(bench.main(args) or 0)
    except ValueError as e:
        raise CliError(line(e), 2) from None
    except OSError as e:
        raise CliError(line(e), 1) from None


# --------------------------------------------------------------------------- packetdrill
def cmd_packetdrill(args) -> int:
    """`rawtcp packetdrill` (rawtcp/packetdrill/cli.py): a ValueError is a bad argument."""
    from rawtcp.packetdrill import cli as packetdrill_cli

    try:
        return packetdrill_cli.main(args)
    except ValueError as e:
        raise CliError(f"rawtcp packetdrill: {one_line(e)}", 2) from None


# --------------------------------------------------------------------------- peer-check
def cmd_peer_check(args) -> int:
    from rawtcp.experiments.remote import peer_check

    if args.pcap:
        check_output_file(args.pcap, "--pcap")
    ok, text = peer_check(args.peer, args.port, iface=args.iface, pcap=args.pcap,
                          progress=_out)
    _out(text)
    return 0 if ok else 1


__all__ = ["dispatch", "Any"]
