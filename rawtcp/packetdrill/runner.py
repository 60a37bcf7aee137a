"""Run a packetdrill script against rawtcp on a virtual clock, with packetdrill's semantics.

``run_script(script, options) -> Result``. The script plays the remote peer: its inbound
segments (``<``) are injected into a rawtcp stack (:mod:`.vstack`) at their time, its
outbound segments (``>``) must be what rawtcp sends, field by field, at their time within the
tolerance; its system calls run through rawtcp's socket layer (:mod:`.syscalls`) and their
results and errnos are compared. Virtual time moves only when the script says so, so a run
is deterministic (fixed ISN, timestamp clock at 1 ms from 0) and takes no real time.

What follows packetdrill (its documentation and behaviour, not its code):

- addresses: IPv4 192.168.0.1 (rawtcp) and 192.0.2.1 (the script), IPv6
  fd3d:a0b:17d6::1 and fd3d:fa7b:d17d::1; ``bind``/``connect`` with ``...`` use port 8080;
  a passive connection's remote port is an ephemeral port the runner picks.
- sequence numbers: absolute in SYN segments, else relative to each side's ISN
  (:mod:`.segments`); TS ecr of inbound segments mapped from the TS val they echo.
- relative times count from when the previous event finished (from the previous event's
  time when both are inbound segments); ``*`` accepts any time; ranges and blocking calls
  (``start...end``: the call must return at ``end``).
- an outbound expectation takes the next segment rawtcp sent on the connection under test,
  however early (early is a timing error); several consecutive data segments are joined when
  the script expects one larger segment (the TSO/GSO of packetdrill's tun device). Segments
  nobody expects are a failure only when they come where another segment was expected, as
  with packetdrill (nothing checks what is sent after the last event).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import socket as _socket
import time as _time
from dataclasses import dataclass, field
from typing import Any

from rawtcp.core.config import Config
from rawtcp.core.segment import ACK, CWR, ECE, FIN, PSH, SYN, Packet
from rawtcp.packetdrill import segments as sg
from rawtcp.packetdrill import shell
from rawtcp.packetdrill.script import Code, Command, Script, Syscall, Time, format_packet
from rawtcp.packetdrill.script import Packet as ScriptPacket
from rawtcp.packetdrill.syscalls import (
    Calls,
    Env,
    OptvalMismatch,
    ScriptValueError,
    Unsupported,
    symbol_value,
    value,
)
from rawtcp.packetdrill.vstack import Job, StackStuck, VirtualStack

DEFAULT_ADDRESSES = {"ipv4": ("192.168.0.1", "192.0.2.1"),
                     "ipv6": ("fd3d:a0b:17d6::1", "fd3d:fa7b:d17d::1")}
FIRST_REMOTE_PORT = 48_000     # the script side's port of passive connections
ANY_TIME_LIMIT = 600_000_000   # how long a `*` outbound expectation waits (virtual us)
LOOKAHEAD = 60_000_000         # how far past the deadline to look, to say how late it came
IDLE_WAIT = 1_000_000          # packetdrill waits 1 s for a blocking call before the next one

_KNOWN_OPTIONS = {"mss", "wscale", "sackOK", "sack", "TS", "nop", "eol"}

# packetdrill options that mean nothing on a virtual clock (accepted and ignored)
_IGNORED_OPTIONS = {"gateway_ip", "netmask_ip", "speed", "init_scripts", "verbose",
                    "non_fatal", "dry_run", "tolerance_percent", "bind_ip", "connect_ip",
                    "wire_client", "wire_server", "wire_server_ip", "wire_server_port",
                    "wire_client_dev", "wire_server_dev", "so_filename", "so_flags",
                    "send_omit_free", "define", "persistent_tun_dev", "mtu_check"}


@dataclass
class RunOptions:
    """packetdrill's command-line options (the script's header lines override them)."""

    ip_version: str = "ipv4"
    local_ip: str | None = None
    remote_ip: str | None = None
    tolerance_usecs: int = 4000
    mtu: int = 1500
    tcp_ts_tick_usecs: int = 0
    tcp_ts_ecr_scaled: bool = False
    strict_segments: bool = False
    bind_port: int = 8080
    connect_port: int = 8080
    config_overrides: dict[str, Any] = field(default_factory=dict)
    #: run over a real TUN link in a private namespace, in real time (root; rtstack.py)
    realtime: bool = False

    def with_script_options(self, opts: dict[str, str]) -> tuple[RunOptions, list[str]]:
        """A copy with ``--name=value`` options applied; unknown names are returned."""
        out = dataclasses.replace(self, config_overrides=dict(self.config_overrides))
        unknown = []
        for name, text in opts.items():
            key = name.replace("-", "_")
            if key in ("ip_version", "local_ip", "remote_ip"):
                setattr(out, key, text or None)
            elif key in INT_OPTIONS:
                try:
                    value = parse_int(text)
                except ValueError:
                    raise ValueError(f"--{name}={text!r}: not an integer (decimal digits or "
                                     "0x hex)") from None
                lo, hi = INT_OPTIONS[key]
                if not lo <= value <= hi:
                    raise ValueError(f"--{name}={text}: out of range {lo}..{hi}")
                setattr(out, key, value)
            elif key in ("tcp_ts_ecr_scaled", "strict_segments"):
                setattr(out, key, text in ("", "1", "true", "yes", "on"))
            elif key not in _IGNORED_OPTIONS:
                unknown.append(name)
        if out.ip_version not in ("ipv4", "ipv6", "ipv4-mapped-ipv6"):
            raise ValueError(f"--ip_version={out.ip_version}: ipv4, ipv6 or ipv4-mapped-ipv6")
        return out, unknown


#: the integer options a script's header (or the command line) may set, with their ranges:
#: a tolerance up to 10 s (packetdrill's default is 4 ms; a real-time run on a loaded
#: machine needs tens of ms), a timestamp clock down to 1 Hz (RFC 7323 5.4's slowest;
#: Linux ticks every 1000 us)
INT_OPTIONS: dict[str, tuple[int, int]] = {
    "tolerance_usecs": (0, 10_000_000), "tcp_ts_tick_usecs": (0, 1_000_000),
    "mtu": (128, 65535), "bind_port": (1, 65535), "connect_port": (1, 65535)}
#: an integer option's text: decimal digits or 0x hex, ASCII (int(text, 0) also took ' 5',
#: '1_500', '+5', '0o17' and other scripts' digits)
_INTEGER = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]+")


def parse_int(text: str) -> int:
    """An integer option as packetdrill takes it (the command line's and a script header's):
    decimal digits or 0x hex, nothing else; ValueError otherwise."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"not an integer: {text!r}")
    return int(text, 16) if text[:2] in ("0x", "0X") else int(text, 10)


@dataclass
class Failure:
    """Where and why a script failed, in packetdrill's words."""

    line: int
    message: str
    expected: str | None = None
    actual: str | None = None

    def lines(self, path: str) -> list[str]:
        out = [f"{path}:{self.line}: {self.message}"]
        if self.expected is not None:
            out.append(f"script packet: {self.expected}")
        if self.actual is not None:
            out.append(f"actual packet: {self.actual}")
        return out


@dataclass
class Result:
    """One script's outcome: ``status`` PASS, FAIL or UNSUPPORTED (``reason`` says why)."""

    path: str
    status: str
    failure: Failure | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    virtual_us: int = 0
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def diagnostics(self) -> list[str]:
        if self.failure is not None:
            return self.failure.lines(self.path)
        if self.reason:
            return [f"{self.path}: {self.reason}"]
        return []

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status,
                "failure": dataclasses.asdict(self.failure) if self.failure else None,
                "reason": self.reason, "notes": self.notes, "virtual_us": self.virtual_us,
                "duration_s": round(self.duration_s, 4)}


class _Fail(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _secs(us: int) -> str:
    return f"{us / 1e6:.6f}"


def run_script(script: Script, options: RunOptions | None = None) -> Result:
    """Run one parsed script; never raises for what the script or rawtcp does."""
    t0 = _time.monotonic()
    run = _Run(script, options or RunOptions())
    res = run.run()
    res.duration_s = _time.monotonic() - t0
    return res


class _Run:
    def __init__(self, script: Script, options: RunOptions) -> None:
        self.script = script
        self.base_options = options
        self.notes: list[str] = []
        self.events: list[dict] = []
        self.sut: sg.Conn | None = None
        self.sut_sock: Any = None
        self.fd_conns: dict[int, sg.Conn] = {}
        self.next_port = FIRST_REMOTE_PORT
        self.prev_time = 0
        self.prev_inbound = False
        self.blocking: tuple[Syscall, Job, int | None, str] | None = None
        self._init_commands: set[int] = set()
        self._cleanup: list[Command] = []

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        o, unknown = self.base_options.with_script_options(self.script.options)
        for name in unknown:
            self.notes.append(f"option --{name} ignored (no meaning for the rawtcp runner)")
        if o.ip_version == "ipv4-mapped-ipv6":
            raise Unsupported("--ip_version=ipv4-mapped-ipv6: rawtcp has no dual-stack sockets")
        self.o = o
        local, remote = DEFAULT_ADDRESSES[o.ip_version]
        self.local_ip = sg_canon(o.local_ip or local)
        self.remote_ip = sg_canon(o.remote_ip or remote)
        v6 = o.ip_version == "ipv6"
        if (":" in self.local_ip) != v6 or (":" in self.remote_ip) != v6:
            raise ValueError(f"--local_ip/--remote_ip do not match --ip_version={o.ip_version}")
        self.family = _socket.AF_INET6 if v6 else _socket.AF_INET
        cfg = Config(mss=o.mtu - (60 if v6 else 40))
        changes = dict(o.config_overrides)
        # untimed commands at the top run before anything (packetdrill's init command)
        for ev in self.script.events:
            if not isinstance(ev, Command) or ev.time is not None:
                break
            changes.update(self._command(ev, before_stack=True))
            self._init_commands.add(id(ev))
        self.config = cfg.with_overrides(changes) if changes else cfg
        if o.realtime:
            from rawtcp.packetdrill.rtstack import RealStack

            self.vs = RealStack(self.config, o.ip_version, tracer=self.events.append)
            self.local_ip, self.remote_ip = self.vs.local_ip, self.vs.remote_ip
            self.notes.append(f"real time over a TUN link: rawtcp {self.local_ip}, script "
                              f"{self.remote_ip}, namespace {self.vs.lab.netns}")
        else:
            self.vs = VirtualStack(self.config, [self.local_ip], tracer=self.events.append)
        self.calls = Calls(Env(self.vs, self.family, self.local_ip, self.remote_ip,
                               o.bind_port, o.connect_port, on_socket=self._on_socket,
                               on_listen=self._on_listen, on_connect=self._on_connect,
                               on_accept=self._on_accept))

    # ------------------------------------------------------------------ the run
    def run(self) -> Result:
        path = self.script.path
        try:
            try:
                self._setup()
            except BaseException:
                if getattr(self, "vs", None) is not None:
                    self.vs.close()
                raise
        except Unsupported as e:
            return Result(path, "UNSUPPORTED", reason=str(e), notes=self.notes)
        except (ValueError, OSError) as e:
            return Result(path, "FAIL", Failure(0, f"cannot run: {e}"), notes=self.notes)
        status, failure, reason = "PASS", None, None
        try:
            self.vs.begin()
            for ev in self.script.events:
                self._event(ev)
                self._poll_blocking()
            self._finish()
        except _Fail as f:
            status, failure = "FAIL", f.failure
        except Unsupported as e:
            status, reason = "UNSUPPORTED", str(e)
        except shell.CodeUnsupported as e:
            status, reason = "UNSUPPORTED", str(e)
        except (StackStuck, OSError) as e:
            status, failure = "FAIL", Failure(self._line, f"runner error: {e}")
        finally:
            now = self.vs.now
            self.vs.close()
        return Result(path, status, failure, reason, self.notes, self.events, now)

    _line = 0

    def _fail(self, msg: str, expected: str | None = None, actual: str | None = None) -> None:
        raise _Fail(Failure(self._line, msg, expected, actual))

    def _event(self, ev: Any) -> None:
        self._line = ev.line
        if isinstance(ev, ScriptPacket):
            for opt in ev.options or ():
                if opt.kind not in _KNOWN_OPTIONS:
                    raise Unsupported(f"TCP option {opt.kind} (line {ev.line}) is not one "
                                      "rawtcp has")
            if ev.direction == "<":
                self._inbound(ev)
            else:
                self._outbound(ev)
        elif isinstance(ev, Syscall):
            self._syscall(ev)
        elif isinstance(ev, Command):
            if ev.time is None and id(ev) not in self._init_commands:
                self._cleanup.append(ev)       # packetdrill runs it after the last event
            elif ev.time is not None:
                start, _end = self._times(ev.time, False)
                self._wait_until(start, ev.time.kind, "command")
                changes = self._command(ev)
                if changes:
                    self.config = self.config.with_overrides(changes)
                    self.vs.config = self.vs.core.config = self.config
        elif isinstance(ev, Code):
            if ev.time is not None:
                start, _end = self._times(ev.time, False)
                self._wait_until(start, ev.time.kind, "data collection for code")
            self._code(ev)

    def _times(self, t: Time, inbound: bool) -> tuple[int, int | None]:
        """Absolute (start, end) of an event, as packetdrill's adjust_relative_event_times."""
        if t.kind == "absolute":
            start, end = t.start, t.end
        else:
            base = self.prev_time if (inbound and self.prev_inbound) else self.vs.now
            start = base + t.start
            end = None if t.end is None else base + t.end
            self._base = base
        self.prev_time = start
        self.prev_inbound = inbound
        return start, end

    _base = 0

    def _wait_until(self, start: int, kind: str, what: str) -> None:
        if kind == "any":
            return
        if start > self.vs.now:
            self.vs.advance_to(start)
            self._poll_blocking()
        late = self.vs.now - start
        if late > self.o.tolerance_usecs:
            self._fail(f"timing error: expected {what} at {_secs(start)} sec but happened at "
                       f"{_secs(self.vs.now)} sec; tolerance {_secs(self.o.tolerance_usecs)} "
                       f"sec (late by {late / 1000:.3f} ms)")

    # ------------------------------------------------------------------ sockets under test
    def _new_conn(self, **kw: Any) -> sg.Conn:
        return sg.Conn(self.local_ip, self.remote_ip, **kw)

    def _on_socket(self, fd: int, sock: Any) -> None:
        c = self._new_conn()
        self.fd_conns[fd] = c
        self.sut, self.sut_sock = c, sock

    def _on_listen(self, fd: int) -> None:
        c = self.fd_conns.get(fd)
        if c is not None:
            c.state = "listening"

    def _on_connect(self, fd: int) -> None:
        c = self.fd_conns.get(fd)
        if c is not None and c.state == "new":
            c.state = "connecting"
            c.remote_port = self.o.connect_port

    def _on_accept(self, fd: int, sock: Any) -> None:
        if self.sut is not None:
            self.fd_conns[fd] = self.sut
        self.sut_sock = sock

    # ------------------------------------------------------------------ inbound
    def _inbound(self, p: ScriptPacket) -> None:
        start, _end = self._times(p.time, True)
        conn = self.sut
        if conn is None or conn.state == "listening":
            # packetdrill: a packet to a listener (or to no socket) starts a new connection
            # from a fresh remote port; its seq is the remote ISN
            conn = self._new_conn(state="passive_syn", remote_port=self._port(),
                                  local_port=self.o.bind_port, remote_isn=p.seq_start)
            self.sut = conn
        if conn.remote_port is None:
            conn.remote_port = self._port()
        if conn.local_port is None:
            conn.local_port = self.o.bind_port
        self._wait_until(start, p.time.kind, "inbound packet")
        flags = sg.script_flags(p.flags)
        if conn.state == "synack_sent" and flags & ACK:
            conn.state = "synack_acked"
        elif conn.state == "syn_sent" and flags & SYN and flags & ACK:
            conn.state = "syn_acked"
            conn.remote_isn = p.seq_start
        try:
            seg = sg.to_live(conn, p, self.o.tcp_ts_ecr_scaled)
        except sg.MapError as e:
            self._fail(f"error handling packet: {e}", format_packet(p))
        self.vs.inject([Packet(self.remote_ip, self.local_ip, seg)])

    def _port(self) -> int:
        self.next_port += 1
        return self.next_port - 1

    # ------------------------------------------------------------------ outbound
    def _outbound(self, p: ScriptPacket) -> None:
        start, end = self._times(p.time, False)
        conn = self.sut
        if conn is None:
            self._fail("no matching socket for script packet", format_packet(p))
        if p.ecn not in (None, "noecn"):
            raise Unsupported(f"ECN ({p.ecn}): rawtcp does not do ECN")
        flags = sg.script_flags(p.flags)
        if flags & (ECE | CWR):
            raise Unsupported(f"ECN: line {p.line} expects ECE/CWR from rawtcp, which does "
                              "not do ECN")
        if conn.state == "connecting" and flags & SYN and not flags & ACK:
            conn.state = "syn_sent"
            conn.script_local_isn = p.seq_start
        synack = conn.state == "passive_syn" and flags & SYN and flags & ACK
        if synack:
            conn.script_local_isn = p.seq_start
        kind = p.time.kind
        deadline = (self.vs.now + ANY_TIME_LIMIT if kind == "any"
                    else (end if end is not None else start) + self.o.tolerance_usecs)
        horizon = deadline if kind == "any" else deadline + LOOKAHEAD
        got: list[tuple[int, Packet]] = []
        total = 0
        # the first segment may come any time before the horizon; the ones joined to it (TSO/
        # GSO emulation) only at the same instant (in real time: within the tolerance)
        window = self.o.tolerance_usecs if self.o.realtime else 0
        while True:
            item = self._next_out(conn, horizon if not got else got[0][0] + window)
            if item is None or (got and item[0] > got[0][0] + window):
                if item is not None:
                    self.vs.sent.insert(0, item)
                break
            got.append(item)
            total += len(item[1].segment.payload)
            if total >= p.length or self.o.strict_segments:
                break
        expected = f"{_secs(start)} {format_packet(dataclasses.replace(p, time=None))}"
        if not got:
            self._fail(f"error handling packet: no packet: expected outbound packet at "
                       f"{_secs(start)} sec, rawtcp sent nothing on the connection by "
                       f"{_secs(self.vs.now)} sec", expected, "no packet")
        t_first, first = got[0]
        if synack:
            conn.state = "synack_sent"
            conn.live_local_isn = first.segment.seq
        actual = sg.to_script(conn, first.segment, first.src, first.dst, p)
        for _t, q in got[1:]:
            a = sg.to_script(conn, q.segment, q.src, q.dst, None, learn_ts=False)
            msg = self._fragment_error(actual, a)
            if msg:
                self._fail(f"error handling packet: {msg}", expected,
                           f"{_secs(t_first)} {actual.text()}")
            actual.length += a.length
            actual.flags |= a.flags & (FIN | PSH)
        actual_text = f"{_secs(t_first)} {actual.text()}"
        if len(got) > 1:
            actual_text += f" (joined from {len(got)} segments, as TSO/GSO would send it)"
        diff = sg.compare(p, actual, self.o.tcp_ts_tick_usecs, self.o.tolerance_usecs)
        if diff:
            self._fail(f"error handling packet: {diff}", expected, actual_text)
        self._check_time(kind, start, end, t_first, "outbound packet", expected, actual_text)

    @staticmethod
    def _fragment_error(agg: sg.Actual, a: sg.Actual) -> str | None:
        """Why segment ``a`` cannot be joined to the ones before (packetdrill's checks)."""
        if (agg.flags | FIN | PSH) != (a.flags | FIN | PSH):
            return "aggregate candidate: TCP flags differ from the previous segment's"
        if a.seq != (agg.seq + agg.length) & sg.MASK or a.ack != agg.ack or a.win != agg.win:
            return "aggregate candidate: segment does not follow the previous one"
        return None

    def _next_out(self, conn: sg.Conn, horizon: int) -> tuple[int, Packet] | None:
        """The next segment rawtcp sent on the connection under test (waiting for it up to
        ``horizon``); segments of other connections are skipped, as packetdrill's sniffer
        skips them."""
        def take() -> tuple[int, Packet] | None:
            sent = self.vs.sent
            while sent:
                t, pkt = sent.pop(0)
                s = pkt.segment
                if conn.state == "syn_sent" and s.flags & SYN and not s.flags & ACK \
                        and pkt.dst == conn.remote_ip and s.dst_port == conn.remote_port:
                    conn.local_ip, conn.local_port = pkt.src, s.src_port
                    conn.live_local_isn = s.seq
                    return t, pkt
                if conn.matches_out(pkt.src, s.src_port, pkt.dst, s.dst_port):
                    return t, pkt
            return None

        found: list[tuple[int, Packet]] = []

        def until() -> bool:
            item = take()
            if item is not None:
                found.append(item)
            return bool(found)

        if until():
            return found[0]
        self.vs.advance_to(horizon, until)
        self._poll_blocking()
        return found[0] if found else None

    def _check_time(self, kind: str, start: int, end: int | None, actual: int, what: str,
                    expected: str | None = None, actual_text: str | None = None) -> None:
        if kind == "any":
            return
        tol = self.o.tolerance_usecs
        lo, hi = start - tol, (end if end is not None else start) + tol
        if lo <= actual <= hi:
            return
        if end is not None:
            want = f"in time range {_secs(start)}~{_secs(end)} sec"
        else:
            want = f"at {_secs(start)} sec"
        off = actual - start if actual < lo else actual - (end if end is not None else start)
        self._fail(f"timing error: expected {what} {want} but happened at {_secs(actual)} sec; "
                   f"tolerance {_secs(tol)} sec (off by {off / 1000:+.3f} ms)",
                   expected, actual_text)

    # ------------------------------------------------------------------ system calls
    def _syscall(self, sc: Syscall) -> None:
        start, _end = self._times(sc.time, False)
        base = self._base
        self._await_idle()      # packetdrill first waits for a running blocking call
        self._wait_until(start, sc.time.kind, "system call start")
        if self.blocking is not None and sc.end_time is not None:
            self._fail(f"runtime error in {sc.name} call: blocking system call while another "
                       "blocking system call is already in progress")
        try:
            args = [value(a) for a in sc.args]
            want = value(sc.result)
        except ScriptValueError as e:
            self._fail(f"runtime error in {sc.name} call: {e}")
        job = self.vs.start(lambda: self.calls.run(sc.name, args, want), sc.name,
                            may_block=sc.end_time is not None)
        if sc.end_time is None:
            if not job.done:
                self._fail(f"runtime error in {sc.name} call: the call blocks in rawtcp but the "
                           "script gives it no time range (start...end); packetdrill would hang")
            self._check_result(sc, job, None)
            return
        if sc.time.kind == "absolute":
            end_at: int | None = sc.end_time
        elif sc.time.kind == "relative":
            end_at = base + sc.end_time
        else:
            end_at = None
        self.blocking = (sc, job, end_at, sc.time.kind)
        self._poll_blocking()

    def _await_idle(self) -> None:
        """packetdrill waits (up to 1 s) for a blocking call to return before the next call."""
        if self.blocking is None:
            return
        job = self.blocking[1]
        self.vs.advance_to(self.vs.now + IDLE_WAIT, lambda: job.done)
        self._poll_blocking()

    def _poll_blocking(self) -> None:
        if self.blocking is None or not self.blocking[1].done:
            return
        sc, job, end_at, kind = self.blocking
        self.blocking = None
        line, self._line = self._line, sc.line
        self._check_result(sc, job, end_at)
        if kind != "any" and end_at is not None:
            self._check_time(kind, end_at, None, job.ended_at or 0, "system call return")
        self._line = line

    def _check_result(self, sc: Syscall, job: Job, end_at: int | None) -> None:
        line, self._line = self._line, sc.line
        exc = job.exc
        if isinstance(exc, Unsupported):
            raise exc
        if isinstance(exc, OptvalMismatch | ScriptValueError):
            self._fail(f"runtime error in {sc.name} call: {exc}")
        if exc is not None and not isinstance(exc, OSError):
            self._fail(f"runtime error in {sc.name} call: {type(exc).__name__}: {exc}")
        if isinstance(exc, OSError):
            actual, err = -1, exc.errno or errno.EIO
        else:
            actual, err = job.result, 0
        want = value(sc.result)
        if want is not ...:
            fd_like = sc.name in ("socket", "accept", "accept4")
            if fd_like and isinstance(want, int) and want >= 0:
                if actual < 0:
                    self._fail(f"{sc.name}: Expected non-negative result but got {actual} with "
                               f"errno {err} ({os.strerror(err)})")
            elif actual != want:
                extra = f" with errno {err} ({os.strerror(err)})" if actual == -1 else ""
                self._fail(f"{sc.name}: Expected result {want} but got {actual}{extra}")
            if want == -1 and sc.errno_name:
                try:
                    want_err = symbol_value(sc.errno_name)
                except Unsupported:
                    want_err = -1
                if want_err != err:
                    self._fail(f"{sc.name}: Expected errno {want_err} ({sc.errno_name}) but got "
                               f"{err} ({errno.errorcode.get(err, '?')})")
        if sc.name == "poll" and self.calls.poll_mismatch:
            msg, self.calls.poll_mismatch = self.calls.poll_mismatch, None
            self._fail(f"poll: {msg}")
        self._line = line

    # ------------------------------------------------------------------ commands and code
    def _command(self, ev: Command, before_stack: bool = False) -> dict[str, Any]:
        res = shell.run_command(ev.text, self._count_state if not before_stack else
                                lambda *a: 0)
        self.notes.append(f"line {ev.line}: `{ev.text}`: {res.note}")
        if not res.ok:
            self._line = ev.line
            self._fail(f"error executing `{ev.text}` command: {res.error}")
        return res.changes

    def _count_state(self, state: str, direction: str | None, port: int | None) -> int:
        n = 0
        with self.vs.lock:
            if state == "LISTEN":
                items = [(lst.addr, lst.port, "*", 0) for lst in self.vs.core.listeners()]
            else:
                items = [(t.local[0], t.local[1], t.remote[0], t.remote[1])
                         for t in self.vs.core.connections() if t.state.name == state]
        for _la, lp, _ra, rp in items:
            if port is None or (direction == "sport" and lp == port) or \
                    (direction == "dport" and rp == port):
                n += 1
        return n

    def _code(self, ev: Code) -> None:
        sock = self.sut_sock
        info = sock.tcp_info() if sock is not None else {"state": "CLOSED"}
        msg = shell.check_code(ev.text, shell.tcpi_fields(info))
        if msg:
            self._fail(f"error executing code: {msg}")

    # ------------------------------------------------------------------ the end
    def _finish(self) -> None:
        if self.blocking is not None:
            self._await_idle()
            if self.blocking is not None:
                sc = self.blocking[0]
                self._line = sc.line
                self._fail("runtime error: exiting while a blocking system call is in "
                           f"progress ({sc.name})")
        for ev in self._cleanup:
            self._line = ev.line
            self._command(ev)


def sg_canon(addr: str) -> str:
    from rawtcp.core.ports import canonical_ip

    try:
        return canonical_ip(addr)
    except ValueError:
        raise ValueError(f"{addr!r} is not an IP address") from None
