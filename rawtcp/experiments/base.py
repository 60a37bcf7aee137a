"""The experiment harness: a private lab, a rawtcp stack, a kernel peer, and evidence.

An experiment is a function decorated with :func:`experiment`. It receives a :class:`Run`
that builds what it needs and records checks::

    @experiment("final-ack-drop", title="...", expect="...")
    def final_ack_drop(run: Run) -> None:
        with run.tun_lab() as lab:
            srv = lab.server("echo", port=7, close_delay=0.05)
            st = run.stack(lab, faults=["drop out flags=A state=TIME_WAIT nth=1"])
            ...
            run.check("the kernel retransmitted its FIN", n_fins >= 2, f"{n_fins} FINs")

Everything goes into one trace (rawtcp's segments, states, timers, faults, and the kernel's
socket states sampled with ``ss``), from which the ladder, pcap and plots are made. The run
passes when every check holds.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rawtcp.core.config import MS, SEC, Config
from rawtcp.faults.grammar import parse_action_rule  # here too for commands.py
from rawtcp.trace import Tracer

Event = dict[str, Any]


@dataclass
class Check:
    name: str
    ok: bool
    evidence: str

    def to_dict(self) -> dict:
        return {"check": self.name, "ok": self.ok, "evidence": self.evidence}


@dataclass
class Result:
    name: str
    passed: bool
    checks: list[Check]
    duration_s: float
    seed: int
    files: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list, repr=False)
    ladder: str = ""
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "experiment": self.name,
            "verdict": "PASS" if self.passed else "FAIL",
            "passed": self.passed,
            "seed": self.seed,
            "duration_s": round(self.duration_s, 3),
            "checks": [c.to_dict() for c in self.checks],
            "metrics": self.metrics,
            "files": self.files,
            "error": self.error,
        }


@dataclass
class Experiment:
    name: str
    title: str
    expect: str
    fn: Callable[[Run], None]
    doc: str = ""
    slow: bool = False


REGISTRY: dict[str, Experiment] = {}


def experiment(name: str, *, title: str, expect: str, slow: bool = False):
    """Register an experiment function under ``name``."""

    def deco(fn: Callable[[Run], None]) -> Callable[[Run], None]:
        REGISTRY[name] = Experiment(name, title, expect, fn, (fn.__doc__ or "").strip(), slow)
        return fn

    return deco


def lab_config(**kw: Any) -> Config:
    """The stack configuration experiments use: Linux-like, but a short MSL (TIME_WAIT 2 s)
    so that runs end quickly. Keyword arguments override fields."""
    base: dict[str, Any] = {"msl": 1 * SEC, "fin_timeout": 3 * SEC}
    base.update(kw)
    return Config(**base)


class KernelWatch:
    """Samples the kernel's socket states (``ss``) for connections to or from ``port`` and
    emits ``{ev: "kernel", state, local, remote, retrans, total_retrans}`` into the trace
    whenever the state or the retransmission counter changes (``retrans``: unrecovered
    retransmissions now, ``total_retrans``: all so far, both from ``ss -i``; with ``cwnd``,
    ``ssthresh`` (segments), ``mss``, ``rtt``, ``rttvar``, ``rto`` (us) and ``algo`` where ss
    printed them),
    stamped with the stack's clock so the ladder can place them. A socket that vanishes is
    reported as state CLOSED."""

    def __init__(self, run: Run, netns: str, port: int, clock: Callable[[], int],
                 interval: float = 0.005, duration: float = 60.0) -> None:
        self.run, self.netns, self.port, self.clock = run, netns, port, clock
        self.interval, self.duration = interval, duration
        self.samples: list[Event] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kernel-watch")

    def start(self) -> KernelWatch:
        self._thread.start()
        return self

    def _loop(self) -> None:
        from rawtcp.lab.kernel import kernel_sockets, ss_cc_fields

        t0 = time.monotonic()
        last: dict[tuple[str, str], tuple[str, Any]] = {}
        while not self._stop.is_set() and time.monotonic() - t0 < self.duration:
            try:
                socks = kernel_sockets(self.netns, self.port)
            except Exception as e:  # noqa: BLE001 - recorded, the experiment decides
                self.errors.append(str(e))
                break
            now = self.clock()
            cur: dict[tuple[str, str], dict] = {}
            for s in socks:
                if s.get("state") == "LISTEN":
                    continue
                if "info" in s:   # ss prints retrans:N/M only once it is non-zero
                    s.setdefault("total_retrans", 0)
                cur[(s["local"], s["remote"])] = s
            for key, s in cur.items():
                if last.get(key) != (s["state"], s.get("total_retrans")):
                    self._emit(now, s["state"], key, s.get("retrans"), s.get("total_retrans"),
                               ss_cc_fields(s))
            for key in last.keys() - cur.keys():
                self._emit(now, "CLOSED", key, None, last[key][1])
            last = {k: (s["state"], s.get("total_retrans")) for k, s in cur.items()}
            self._stop.wait(self.interval)

    def _emit(self, t: int, state: str, key: tuple[str, str], retrans: Any,
              total_retrans: Any, cc: dict | None = None) -> None:
        ev = {"t": t, "ev": "kernel", "state": state, "local": key[0], "remote": key[1],
              "retrans": retrans, "total_retrans": total_retrans}
        if cc and cc.get("cwnd") is not None:     # cwnd, ssthresh, rtt ... from `ss -i`
            ev.update(cc)
        self.samples.append(ev)
        self.run.tracer(ev)

    def states(self) -> list[str]:
        return [s["state"] for s in self.samples]

    def wait_state(self, state: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if state in self.states():
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)


class Run:
    """One run of one experiment: owns the trace, the lab, the stack and the checks."""

    def __init__(self, exp: Experiment, *, seed: int = 1, report_dir: str | None = None,
                 progress: Callable[[str], None] | None = None,
                 extra_faults: list[str] = (),
                 config_overrides: dict[str, Any] | None = None) -> None:
        self.exp = exp
        self.extra_faults = list(extra_faults)
        self.config_overrides = check_overrides(config_overrides)
        self.seed = seed
        self.report_dir = report_dir
        self.checks: list[Check] = []
        self.metrics: dict[str, Any] = {}
        self.files: dict[str, str] = {}
        self._progress = progress
        trace_path = None
        if report_dir:
            os.makedirs(report_dir, exist_ok=True)
            trace_path = os.path.join(report_dir, f"{exp.name}.trace.jsonl")
            self.files["trace"] = trace_path
        self.tracer = Tracer(trace_path, max_events=500_000)
        self._stack_cm = contextlib.ExitStack()
        self.stacks: list[Any] = []
        self.clock_origin = time.monotonic_ns()  # shared by every stack of this run
        self.watches: list[KernelWatch] = []

    # ---------------------------------------------------------------- building blocks
    def progress(self, msg: str) -> None:
        if self._progress is not None:
            self._progress(msg)

    @contextlib.contextmanager
    def tun_lab(self, family: str = "ipv4") -> Iterator[Any]:
        from rawtcp.lab import TunLab

        with TunLab(family=family) as lab:
            try:
                yield lab
            finally:
                self._teardown()

    @contextlib.contextmanager
    def veth_lab(self, mode: str = "packet", family: str = "ipv4") -> Iterator[Any]:
        from rawtcp.lab import VethLab

        with VethLab(mode=mode, family=family) as lab:
            try:
                yield lab
            finally:
                self._teardown()

    def stack(self, lab: Any, config: Config | None = None, faults: list[str] = (),
              pcap: bool = True, **link_kw: Any) -> Any:
        """A running rawtcp stack on the lab's link, traced into this run, with the fault
        rules given as CLI text (``"drop out flags=A nth=1"``). Its configuration is
        ``config`` (default :func:`lab_config`) with the run's ``config_overrides`` on top."""
        from rawtcp.runtime import Stack

        rules = [parse_action_rule(text) for text in [*faults, *self.extra_faults]]
        engine = None
        if rules:
            from rawtcp.faults import FaultEngine

            engine = FaultEngine(rules, seed=self.seed)
        link = lab.open_link(**link_kw) if link_kw else lab.open_link()
        pcap_path = None
        if pcap and self.report_dir:
            n = len(self.stacks)
            suffix = "" if n == 0 else f".{n + 1}"   # one pcap per stack of the run
            pcap_path = os.path.join(self.report_dir, f"{self.exp.name}{suffix}.pcap")
            self.files["pcap" + suffix] = pcap_path
        st = Stack(link, self.config(config), faults=engine, tracer=self.tracer,
                   pcap=pcap_path, name=f"rawtcp-{self.exp.name}",
                   clock_origin=self.clock_origin)
        self.stacks.append(st)
        return st

    def config(self, config: Config | None = None) -> Config:
        """``config`` (default :func:`lab_config`) with the run's ``config_overrides`` applied
        on top: what every stack of this run is built with."""
        cfg = config or lab_config()
        return cfg.with_overrides(self.config_overrides) if self.config_overrides else cfg

    def watch_kernel(self, lab: Any, port: int, stack: Any) -> KernelWatch:
        w = KernelWatch(self, lab.kernel_netns, port, stack.now).start()
        self.watches.append(w)
        return w

    def _teardown(self) -> None:
        for w in self.watches:
            w.stop()
        self.watches.clear()
        for st in self.stacks:
            try:
                st.close()
            except Exception:  # noqa: BLE001 - teardown continues
                pass
        self.stacks.clear()

    # ---------------------------------------------------------------- evidence
    def check(self, name: str, ok: bool, evidence: Any = "") -> bool:
        self.checks.append(Check(name, bool(ok), str(evidence)))
        return bool(ok)

    def ms(self, ev: Event) -> float:
        """An event's time in ms as the ladder shows it (from the run's first event)."""
        evs = self.tracer.events()
        t0 = min((e["t"] for e in evs if "t" in e), default=0)
        return round((ev["t"] - t0) / 1000, 3)

    def events(self, kind: str | None = None) -> list[Event]:
        return self.tracer.events(kind)

    def segs(self, direction: str | None = None, flags: str | None = None,
             state: str | None = None) -> list[Event]:
        """Segment events, filtered by direction, exact flags and our state."""
        out = []
        for e in self.tracer.events("seg"):
            if direction and e.get("dir") != direction:
                continue
            if flags is not None and e.get("flags") != flags:
                continue
            if state is not None and e.get("state") != state:
                continue
            out.append(e)
        return out

    def states(self, conn_prefix: str | None = None) -> list[str]:
        """rawtcp's state sequence (``new`` of each state event), LISTEN rows excluded."""
        return [e["new"] for e in self.tracer.events("state")
                if "*" not in str(e.get("conn", ""))
                and (conn_prefix is None or str(e.get("conn", "")).startswith(conn_prefix))]

    def faults(self, action: str | None = None) -> list[Event]:
        return [e for e in self.tracer.events("fault") if action is None or e["action"] == action]


def check_overrides(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Config field overrides, each value typed and checked against its field's range
    (text like ``"200"`` or ``"on"`` is parsed as on a command line). An unknown field or a
    bad value raises ValueError with one line (an unknown field's message names the valid
    keys). Checks across fields (``rto_min <= rto_max``) happen when a stack is built."""
    from rawtcp.core.config import check_value

    if not overrides:
        return {}
    if not isinstance(overrides, dict):
        raise ValueError(f"config_overrides must be a dict of Config fields, not "
                         f"{type(overrides).__name__}")
    return {key: check_value(key, value) for key, value in overrides.items()}


def is_subsequence(needle: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(any(x == y for y in it) for x in needle)


# ----------------------------------------------------------------------------- socket helpers
def connect_kernel(lab: Any, st: Any, port: int = 7, timeout: float = 5.0) -> Any:
    """A rawtcp socket connected to the lab kernel's ``port``."""
    s = st.socket()
    s.settimeout(timeout)
    s.connect((lab.kernel_addr, port))
    return s


def recv_exactly(s: Any, n: int) -> bytes:
    """``n`` bytes from ``s`` (fewer if the peer closes first)."""
    got = bytearray()
    while len(got) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        got.extend(chunk)
    return bytes(got)


def echo(s: Any, data: bytes) -> bytes:
    """Send ``data`` and read back as many bytes (less if the peer closes first)."""
    s.sendall(data)
    return recv_exactly(s, len(data))


def read_to_eof(s: Any) -> bytes:
    """Everything the peer sends until its FIN."""
    got = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got.extend(chunk)
    return bytes(got)


def wait_state(st: Any, s: Any, name: str, timeout: float) -> bool:
    """Wait until the socket's connection is in state ``name``."""
    t = s.tcb
    return st.wait_for(lambda: t.state.name == name, timeout)

def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def ms(us: int) -> float:
    return us / MS


__all__ = ["MS", "REGISTRY", "SEC", "Check", "Experiment", "KernelWatch", "Result", "Run",
           "check_overrides", "connect_kernel", "echo", "experiment", "is_subsequence",
           "lab_config", "ms", "parse_action_rule", "read_to_eof", "recv_exactly", "wait_state",
           "wait_until"]
