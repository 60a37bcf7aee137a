"""What would Linux do here? ``rawtcp experiment run NAME --peer-swap``.

The experiment runs twice: once as always (rawtcp against the kernel, its checks decide the
verdict), once with a socket of the Linux kernel in rawtcp's place, driven by the same
scenario steps (:data:`SCENARIOS`: connect, send, receive, wait, close at the same points),
with the experiment's fault rules translated into nftables rules
(:mod:`rawtcp.experiments.peerswap_rules`) in the lab of
:mod:`rawtcp.experiments.peerswap_lab`. Both runs become segment rows, are paired and
compared (:mod:`rawtcp.report.diffladder`): a segment one side sent and the other did not,
a different state at a paired segment, a drop on one side only, a retransmission or a
TIME_WAIT that ended at a different time.

The Linux socket's states come from the wire (RFC 9293 transitions driven by the segments it
sent and received, :func:`rawtcp.report.diffladder.infer_states`); ``ss`` samples them too
(every ~5 ms) and the samples are shown and checked against the inference, but a state that
lasts less than a sample is invisible to ``ss``.

    from rawtcp.experiments.peerswap import run_peer_swap
    ps = run_peer_swap("final-ack-drop")
    ps.differences        # [Difference(kind="only-rawtcp", ...), ...]
    print(ps.text)        # side by side, differences in words
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawtcp.experiments import closing, lifecycle
from rawtcp.experiments.base import (
    Result,
    is_subsequence,
    parse_action_rule,
    read_to_eof,
    recv_exactly,
    wait_until,
)
from rawtcp.experiments.peerswap_lab import (
    KERNEL_ADDR,
    LINUX_ADDR,
    Relay,
    SsSampler,
    SwapLab,
    now_us,
)
from rawtcp.experiments.peerswap_rules import (
    TableModel,
    Translation,
    nft_table_body,
    translate_all,
)
from rawtcp.host import nft
from rawtcp.lab.kernel import kernel_sockets
from rawtcp.report.diffladder import (
    Difference,
    SegRow,
    compare,
    infer_states,
    render_side_by_side,
    retransmission_delays,
    seg_rows,
    state_timeline,
)

__all__ = ["SCENARIOS", "LinuxRun", "PeerSwap", "Scenario", "cli_peer_swap", "run_linux_side",
           "run_peer_swap"]

PORT = 7
Step = tuple[Any, ...]


@dataclass(frozen=True)
class Scenario:
    """What an experiment does, as data. ``server``: the kernel peer (peer_main kind and
    options); ``steps`` for the subject's socket, in order: ``("connect",)``,
    ``("send", bytes)``, ``("recv", n)`` (read n bytes back), ``("recv_eof",)``,
    ``("peer_state", STATE)`` (wait until the kernel peer's socket is in STATE),
    ``("close",)``, ``("end",)`` (wait until both sides are gone or in TIME_WAIT);
    ``faults``: the experiment's own rules; ``config``: its Config fields besides
    lab_config; ``out_bytes``/``in_bytes``: bytes the subject / the peer send."""

    name: str
    server: tuple[str, dict]
    steps: tuple[Step, ...]
    faults: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)
    out_bytes: int = 0
    in_bytes: int = 0


def _echo_close(name: str, message: bytes, close_delay: float, faults: tuple[str, ...] = (),
                config: dict | None = None) -> Scenario:
    return Scenario(name, ("echo", {"close_delay": close_delay}),
                    (("connect",), ("send", message), ("recv", len(message)), ("close",),
                     ("end",)), faults, config or {}, len(message), len(message))


#: The close-sequence experiments, as their functions in lifecycle.py and closing.py do them.
SCENARIOS: dict[str, Scenario] = {
    "lifecycle": _echo_close("lifecycle", lifecycle.MESSAGE, 0.2),
    "final-ack-drop": _echo_close("final-ack-drop", lifecycle.MESSAGE, 0.2,
                                  ("drop out flags=A state=TIME_WAIT nth=1",)),
    "final-ack-drop-passive": Scenario(
        "final-ack-drop-passive", ("source", {"count": len(lifecycle.MESSAGE)}),
        (("connect",), ("recv_eof",), ("close",), ("end",)),
        ("drop in flags=A state=LAST_ACK nth=1",), {}, 0, len(lifecycle.MESSAGE)),
    "time-wait-ablation": _echo_close(
        "time-wait-ablation", closing.MESSAGE, 0.05,
        (f"drop out flags=A seq={len(closing.MESSAGE) + 2} nth=1",), {"time_wait": 0}),
    "simultaneous-close": Scenario(
        "simultaneous-close", ("source", {"count": 0}),
        (("connect",), ("peer_state", "FIN_WAIT_1"), ("close",), ("end",)),
        ("delay in ms=300",), {}, 0, 0),
}

#: rawtcp Config fields the experiments set, and what the Linux run does for them
#: (key -> (sysctl in the Linux socket's namespace or None, value function, note))
_CONFIG_MAP: dict[str, tuple[str | None, Callable[[Any], str], str]] = {
    "time_wait": ("net.ipv4.tcp_max_tw_buckets", lambda v: "0" if v == 0 else "131072",
                  "time_wait=0 -> net.ipv4.tcp_max_tw_buckets=0 (approximate): Linux keeps no "
                  "TIME_WAIT socket; it also keeps an orphaned FIN_WAIT_2 socket as a TIME_WAIT "
                  "mini-socket when tcp_fin_timeout < 60 s, so without buckets that one is "
                  "gone already in FIN_WAIT_2"),
}


@dataclass
class LinuxRun:
    """The Linux side: ``events`` (seg, fault, state, kernel: trace-like, times in us of the
    wall clock), ``steps`` ({"step", "ok", "detail"}), ``translations``, ``config_notes``,
    ``nft`` (drop counters per table: {"side", "rule", "packets"}), ``marked`` (drops the
    relay's model marked), ``pcap`` (path or None), ``ss_states`` (the Linux socket's states
    as ss saw them), ``errors``, ``ladder``, ``end_us`` (when watching stopped),
    ``time_wait_end_us`` (when the socket's TIME_WAIT ends by ss's timer; 0: not in it)."""

    events: list[dict]
    steps: list[dict]
    translations: list[Translation]
    config_notes: list[str]
    nft: list[dict]
    marked: int
    pcap: str | None
    ss_states: list[str]
    errors: list[str]
    ladder: str = ""
    end_us: int = 0
    time_wait_end_us: int = 0

    def to_dict(self) -> dict:
        return {"steps": self.steps, "translations": [t.to_dict() for t in self.translations],
                "config": self.config_notes, "nft_drops": self.nft,
                "marked_drops": self.marked, "pcap": self.pcap, "ss_states": self.ss_states,
                "errors": self.errors}


@dataclass
class PeerSwap:
    """Both runs and their differences. ``rawtcp``: the experiment's Result; ``linux``:
    :class:`LinuxRun`; ``pairs``/``differences`` from :func:`rawtcp.report.diffladder.compare`;
    ``states``: both state timelines (Linux: inferred from the wire); ``text``: side by side;
    ``files``: what ``report_dir`` got; ``retransmissions``: every retransmission both made,
    with its delay after the first transmission on each side (``rawtcp_ms``, ``linux_ms``)."""

    name: str
    rawtcp: Result
    linux: LinuxRun
    pairs: list[tuple[SegRow | None, SegRow | None]]
    differences: list[Difference]
    states: dict[str, list[tuple[float, str]]]
    text: str
    files: dict[str, str] = field(default_factory=dict)
    retransmissions: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """rawtcp's checks held and the Linux run ran through."""
        return self.rawtcp.passed and not self.linux.errors

    def to_dict(self) -> dict:
        return {
            "experiment": self.name, "peer_swap": True, "passed": self.ok,
            "rawtcp": self.rawtcp.to_dict(),
            "linux": self.linux.to_dict(),
            "states": {k: [[t, s] for t, s in v] for k, v in self.states.items()},
            "rows": [[a.to_dict() if a else None, b.to_dict() if b else None]
                     for a, b in self.pairs],
            "differences": [d.to_dict() for d in self.differences],
            "retransmissions": self.retransmissions,
            "files": self.files,
        }


# ----------------------------------------------------------------------------- the Linux run
def _settled(lab: SwapLab) -> bool:
    """Both sides' sockets on the port are gone or in TIME_WAIT (listeners aside)."""
    for ns in (lab.linux_netns, lab.kernel_netns):
        for s in kernel_sockets(ns, PORT):
            if s["state"] not in ("LISTEN", "TIME_WAIT"):
                return False
    return True


def _do_steps(lab: SwapLab, sc: Scenario, sock: socket.socket, horizon_s: float,
              t_start: float, tw_end: list[int]) -> list[dict]:
    """Run the steps; ``tw_end[0]`` gets when the Linux socket's TIME_WAIT will end (us, from
    ss's timer at the end), if it is in TIME_WAIT then."""
    done: list[dict] = []
    sock.settimeout(5.0)
    for step in sc.steps:
        what = step[0]
        ok, detail = True, ""
        if what == "connect":
            sock.connect((KERNEL_ADDR, PORT))
            detail = f"{sock.getsockname()[0]}:{sock.getsockname()[1]}"
        elif what == "send":
            sock.sendall(step[1])
            detail = f"{len(step[1])} B"
        elif what == "recv":
            got = recv_exactly(sock, step[1])
            ok, detail = len(got) == step[1], f"{len(got)}/{step[1]} B"
        elif what == "recv_eof":
            got = read_to_eof(sock)
            ok, detail = len(got) == sc.in_bytes, f"{len(got)} B, then EOF"
        elif what == "peer_state":
            ok = wait_until(lambda st=step[1]: any(
                k["state"] == st for k in kernel_sockets(lab.kernel_netns, PORT)), 3.0)
            detail = f"the kernel peer {'reached' if ok else 'did not reach'} {step[1]}"
        elif what == "close":
            sock.close()
        elif what == "end":
            ok = wait_until(lambda: _settled(lab), 10.0)
            detail = "both sides gone or in TIME_WAIT" if ok else "not settled in 10 s"
            left = horizon_s - (time.monotonic() - t_start)
            if left > 0:
                time.sleep(left)      # keep watching as long as the rawtcp run had segments
            for k in kernel_sockets(lab.linux_netns, PORT):
                tm = k.get("timer") or {}
                if k["state"] == "TIME_WAIT" and tm.get("name") == "timewait" \
                        and tm.get("expires_ms") is not None:
                    tw_end[0] = now_us() + int(tm["expires_ms"] * 1000)
                    detail += f"; ss: the TIME_WAIT timer has {tm['expires_ms']:g} ms left"
        else:
            raise ValueError(f"unknown scenario step {what!r}")
        done.append({"step": what, "ok": ok, "detail": detail})
    return done


def _apply_marks(events: list[dict], marks: list[dict], translations: list[Translation]
                 ) -> tuple[list[dict], int]:
    """The relay's drop marks on the capture's seg events: an outgoing segment keeps its seg
    event and gets a fault event after it; an incoming one becomes a fault event (it never
    reached the Linux socket's TCP)."""
    out: list[dict] = []
    left = list(marks)
    hit = 0
    for e in events:
        m = None
        if e.get("ev") == "seg":
            for cand in left:
                if cand["t"] == e["t"] and cand["dir"] == e["dir"] and cand["seq"] == e["seq"] \
                        and cand["ack"] == e["ack"]:
                    m = cand
                    break
        if m is None:
            out.append(e)
            continue
        left.remove(m)
        hit += 1
        fault = {**e, "ev": "fault", "action": "drop",
                 "rule": translations[m["rule"]].rule + " (nftables)"}
        fault.pop("rtx", None)
        if e["dir"] == "out":
            out.append(e)
        out.append(fault)
    return out, hit


def run_linux_side(sc: Scenario, extra_faults: list[str] = (), report_dir: str | None = None,
                   horizon_s: float = 2.0) -> LinuxRun:
    """Run the scenario with a Linux socket in rawtcp's place (see the module docstring).
    ``horizon_s``: keep watching at least this long after the connect (the rawtcp run's span
    of segments, so late retransmissions are seen)."""
    from rawtcp.report.captures import seg_events_from_pcap
    from rawtcp.report.ladder import render_ladder

    translations = translate_all([*sc.faults, *extra_faults], sc.out_bytes, sc.in_bytes)
    notes: list[str] = []
    tmp = None
    if report_dir:
        os.makedirs(report_dir, exist_ok=True)
        pcap = os.path.join(report_dir, f"{sc.name}.linux.pcap")
    else:
        tmp = tempfile.mkdtemp(prefix="rawtcp-peerswap-")
        pcap = os.path.join(tmp, f"{sc.name}.linux.pcap")
    steps: list[dict] = []
    errors: list[str] = []
    tw_end = [0]
    counters: list[dict] = []
    samplers: list[SsSampler] = []
    relay: Relay | None = None
    try:
        with SwapLab() as lab:
            tables: list[tuple[str, str]] = []
            try:
                for key, value in sc.config.items():
                    if key in _CONFIG_MAP:
                        sysctl, fn, note = _CONFIG_MAP[key]
                        if sysctl:
                            lab.sysctl(lab.linux_netns, sysctl, fn(value))
                        notes.append(note)
                    else:
                        notes.append(f"{key}={value}: not translated")
                lab.sysctl(lab.linux_netns, "net.ipv4.tcp_fin_timeout", "3")
                notes.append("fin_timeout 3 s (lab_config) -> net.ipv4.tcp_fin_timeout=3")
                notes.append("msl 1 s (lab_config: TIME_WAIT 2 s) has no Linux setting: "
                             "Linux holds TIME_WAIT 60 s")
                for side, ns in (("linux", lab.linux_netns), ("peer", lab.kernel_netns)):
                    body, _ = nft_table_body(side, translations, LINUX_ADDR, KERNEL_ADDR)
                    name = nft.unique_table_name("swap")
                    nft.add_table(ns, "inet", name, body)
                    tables.append((ns, name))
                models = {s: TableModel(s, translations) for s in ("linux", "peer")}
                relay = Relay(lab, pcap, models, [t for t in translations
                                                  if t.applied and t.action == "delay"]).start()
                kind, opts = sc.server
                srv = lab.server(kind, port=PORT, **opts)
                srv.wait_ready()
                samplers = [SsSampler(lab.linux_netns, PORT, "state").start(),
                            SsSampler(lab.kernel_netns, PORT, "kernel").start()]
                sock = lab.linux_socket()
                try:
                    steps = _do_steps(lab, sc, sock, horizon_s, time.monotonic(), tw_end)
                except OSError as e:
                    errors.append(f"the Linux side's step failed: {e}")
                finally:
                    sock.close()
                for (ns, name), side in zip(tables, ("linux", "peer"), strict=True):
                    for c in nft.rule_counters(ns, "inet", name):
                        idx = int(str(c["comment"])[1:])
                        counters.append({"side": side, "rule": translations[idx].rule,
                                         "packets": c["packets"]})
            finally:
                for smp in samplers:
                    smp.stop()
                if relay is not None:
                    relay.stop()
                    errors.extend(relay.errors)
                for ns, name in tables:
                    nft.delete_table(ns, "inet", name)
        end_us = max([e["t"] for s in samplers for e in s.events] + [0])
        events: list[dict] = []
        with contextlib.suppress(OSError):
            events = seg_events_from_pcap(pcap, our_addr=LINUX_ADDR)
        if not events:
            errors.append("the Linux run's capture holds no segment")
        events, marked = _apply_marks(events, relay.marks if relay else [], translations)
        nft_drops = sum(c["packets"] for c in counters)
        if relay is not None and nft_drops != len(relay.marks) \
                and not any(t.p is not None for t in translations):
            errors.append(f"nftables dropped {nft_drops} packet(s), the relay's model "
                          f"marked {len(relay.marks)}")
        for smp in samplers:
            events.extend(smp.events)
            errors.extend(smp.errors)
        events.sort(key=lambda e: e["t"])
        ss_states = [s for _, s in state_timeline(events, "state")]
        ladder = ""
        if any(e.get("ev") == "seg" for e in events):
            ladder = render_ladder(events, width=100, left="linux", right="kernel")
        return LinuxRun(events, steps, translations, notes, counters, marked,
                        pcap if report_dir else None, ss_states, errors, ladder,
                        max([end_us] + [int(e["t"]) for e in events]), tw_end[0])
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- both runs
def _span_s(events: list[dict]) -> float:
    ts = [e["t"] for e in events if e.get("ev") in ("seg", "fault") and "t" in e]
    return (max(ts) - min(ts)) / 1e6 if ts else 0.0


def _end_ms(events: list[dict], end_us: int | None = None) -> float | None:
    ts = [e["t"] for e in events if e.get("ev") in ("seg", "fault") and "t" in e]
    if not ts:
        return None
    last = end_us if end_us is not None else max(e["t"] for e in events if "t" in e)
    return round((last - min(ts)) / 1000, 1)


def run_peer_swap(name: str, *, seed: int = 1, report_dir: str | None = None,
                  extra_faults: list[str] = (), config_overrides: dict | None = None,
                  tol_ms: float = 50.0, color: bool = False,
                  progress: Callable[[str], None] | None = None) -> PeerSwap:
    """Run experiment ``name`` as usual, then its scenario with a Linux socket in rawtcp's
    place, and compare. LookupError if ``name`` does not support it (:data:`SCENARIOS`)."""
    from rawtcp.experiments.runner import run_experiment

    if name not in SCENARIOS:
        raise LookupError(f"experiment {name!r} does not support --peer-swap (supported: "
                          f"{', '.join(SCENARIOS)})")
    sc = SCENARIOS[name]
    extra = [extra_faults] if isinstance(extra_faults, str) else list(extra_faults)
    if progress:
        progress("run 1/2: rawtcp against the kernel")
    res = run_experiment(name, seed=seed, report_dir=report_dir, extra_faults=extra,
                         config_overrides=config_overrides, color=color)
    # the experiment's own rules, as its trace names them, must be the scenario's
    seen = {str(e.get("rule")) for e in res.events if e.get("ev") == "fault"}
    horizon = min(10.0, max(1.0, _span_s(res.events) + 0.6))
    if progress:
        progress("run 2/2: a Linux socket in rawtcp's place")
    lin = run_linux_side(sc, extra, report_dir, horizon)
    if config_overrides:
        lin.config_notes.extend(f"--config {k}={v}: not translated"
                                for k, v in config_overrides.items())
    left = seg_rows(res.events)
    right = seg_rows(lin.events)
    right_tl = infer_states(right)
    gone = [e for e in lin.events if e.get("ev") == "state" and e.get("new") == "CLOSED"]
    t0 = min((e["t"] for e in lin.events if e.get("ev") in ("seg", "fault")), default=0)
    if gone and right_tl and right_tl[-1][1] != "CLOSED":
        right_tl.append((round((gone[-1]["t"] - t0) / 1000, 3), "CLOSED"))
    elif right_tl and right_tl[-1][1] == "TIME_WAIT" and lin.time_wait_end_us:
        # still in TIME_WAIT: it ends when the kernel's timer (ss -o) says
        right_tl.append((round((lin.time_wait_end_us - t0) / 1000, 3), "CLOSED"))
    left_tl = state_timeline(res.events)
    pairs, diffs = compare(left, right, tol_ms=tol_ms, left_states=left_tl,
                           right_states=right_tl, left_end=_end_ms(res.events),
                           right_end=_end_ms(lin.events, lin.end_us))
    ss_ok = is_subsequence([s for s in lin.ss_states if s != "CLOSED"],
                           [s for _, s in right_tl])
    if not ss_ok:
        lin.errors.append(f"ss saw {lin.ss_states}, which the segments do not explain "
                          f"({[s for _, s in right_tl]})")
    rtx = [{"row": r["row"], "segment": r["segment"], "rawtcp_ms": r["left_ms"],
            "linux_ms": r["right_ms"]} for r in retransmission_delays(pairs, left, right)]
    listed = {parse_action_rule(x).text for x in [*sc.faults, *extra]}
    if seen - listed:      # the experiment changed and its scenario here did not
        lin.errors.append(f"the rawtcp run applied rules the scenario does not list: "
                          f"{sorted(seen - listed)}; update SCENARIOS[{name!r}]")
    text = _render(name, res, lin, pairs, diffs, left_tl, right_tl, rtx)
    ps = PeerSwap(name, res, lin, pairs, diffs, {"rawtcp": left_tl, "linux": right_tl}, text,
                  retransmissions=rtx)
    if report_dir:
        ps.files.update(res.files)
        if lin.pcap:
            ps.files["linux_pcap"] = lin.pcap
        for key, fname, body in (
                ("linux_ladder", f"{name}.linux.ladder.txt", lin.ladder),
                ("diff", f"{name}.diff.txt", text),
                ("linux_events", f"{name}.linux.events.jsonl",
                 "".join(json.dumps(e, default=str) + "\n" for e in lin.events)),
                ("diff_json", f"{name}.diff.json",
                 json.dumps(ps.to_dict(), indent=2, default=str) + "\n")):
            p = os.path.join(report_dir, fname)
            with open(p, "w", encoding="utf-8") as f:
                f.write(body)
            ps.files[key] = p
    return ps


def _render(name: str, res: Result, lin: LinuxRun, pairs: list, diffs: list[Difference],
            left_tl: list, right_tl: list, rtx: list[dict]) -> str:
    out = [f"--peer-swap {name}: rawtcp (left) and a Linux socket in its place (right), "
           "against the same kernel peer", "", "Linux run: rules and settings"]
    for t in lin.translations:
        mark = "exact" if t.exact else ("approximate" if t.applied else "NOT APPLIED")
        out.append(f"  {t.rule}: {mark}; {t.describe()}")
        out.extend(f"      {n}" for n in t.notes)
    out.extend(f"  {n}" for n in lin.config_notes)
    for c in lin.nft:
        out.append(f"  nftables ({c['side']} namespace) dropped {c['packets']} packet(s) "
                   f"for {c['rule']!r}")
    for s in lin.steps:
        out.append(f"  step {s['step']}: {'ok' if s['ok'] else 'FAILED'}"
                   + (f" ({s['detail']})" if s["detail"] else ""))
    out.append("")
    out.append(render_side_by_side(pairs, diffs, ("rawtcp", "linux"), width=150))
    for r in rtx:
        out.append(f"retransmission row {r['row'] + 1} ({r['segment']}): after "
                   f"{r['rawtcp_ms']:g} ms at rawtcp, {r['linux_ms']:g} ms at linux")
    out.append("states  rawtcp: " + " -> ".join(s for _, s in left_tl))
    out.append("        linux:  " + " -> ".join(s for _, s in right_tl)
               + "   (from the wire" + ("; TIME_WAIT's end from its ss timer"
                                        if lin.time_wait_end_us else "")
               + "; ss saw: " + ", ".join(lin.ss_states) + ")")
    for e in lin.errors:
        out.append(f"  linux run: {e}")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- the command
def cli_peer_swap(args: Any, extra: list[str]) -> int:
    """``rawtcp experiment run NAME --peer-swap [--json] [--report DIR]`` (called by
    commands.cmd_experiment_run). Exit 0 when rawtcp's checks held and the Linux run ran;
    1 otherwise; 2 with one line on stderr for an experiment without a scenario or options
    that do not combine with it (this layer does not import the CLI's CliError)."""
    import sys

    def refuse(msg: str) -> int:
        print(f"rawtcp: {msg}", file=sys.stderr, flush=True)
        return 2

    if args.name not in SCENARIOS:
        return refuse(f"experiment {args.name!r} does not support --peer-swap (supported: "
                      f"{', '.join(SCENARIOS)})")
    if args.runs != 1:
        return refuse("--peer-swap runs the experiment once; drop --runs")
    if getattr(args, "packetdrill", None):
        return refuse("--peer-swap does not write --packetdrill scripts; run without "
                      "--peer-swap for that")
    if args.report:
        try:
            os.makedirs(args.report, exist_ok=True)
        except OSError as e:
            return refuse(f"--report {args.report}: {e.strerror}")

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"  .. {msg}", file=sys.stderr, flush=True)

    ps = run_peer_swap(args.name, seed=args.seed, report_dir=args.report, extra_faults=extra,
                       config_overrides=args.config_overrides or None, color=args.color,
                       progress=progress)
    if args.json:
        print(json.dumps(ps.to_dict(), indent=2, default=str), flush=True)
    else:
        if args.quiet:     # the differences in words, no ladders
            for d in ps.differences:
                where = f"row {d.row + 1}: " if d.row is not None else ""
                print(f"  [{d.kind}] {where}{d.what}", flush=True)
            for e in ps.linux.errors:
                print(f"  linux run: {e}", flush=True)
        else:
            print(ps.text, flush=True)
        r = ps.rawtcp
        for c in r.checks:
            print(f"  [{'ok  ' if c.ok else 'FAIL'}] {c.name}" + (f"  ({c.evidence})"
                                                                   if c.evidence else ""))
        print(f"  => {r.name}: {'PASS' if r.passed else 'FAIL'} (rawtcp's checks); "
              f"{len(ps.differences)} difference(s) from Linux", flush=True)
        if ps.files:
            print("  files: " + ", ".join(f"{k}={v}" for k, v in ps.files.items()), flush=True)
    return 0 if ps.ok else 1
