"""Backtick commands and ``%{ }%`` blocks, understood without running anything on the host.

- ``sysctl -q net.ipv4.tcp_sack=0`` (and ``-w``, several assignments in one command; Google's
  ``set_sysctls.py /proc/sys/net/ipv4/tcp_sack=0``; ``echo 0 > /proc/sys/...``): a Linux
  sysctl with a rawtcp :class:`~rawtcp.core.config.Config` equivalent is applied to the
  configuration; other sysctls are reported and ignored. A block of several commands (lines,
  ``;``, ``&&``) is taken command by command.
- ``../common/defaults.sh`` (Google's tests) and ``scripts/defaults.sh`` (ligurio's): the
  Linux settings those files make, applied the same way (their text is not read or run).
- ``ss -Htan state STATE [( sport = :P )] | wc -l | grep -qx N``: the count of rawtcp
  connections in that state (and port) must be N.
- Anything else is reported and ignored; nothing is ever executed.
- ``%{ assert tcpi_state == TCPI_TIME_WAIT }%``: assertions over TCP_INFO fields, evaluated
  (a small expression language, not Python's ``exec``) against rawtcp's ``tcp_info()``.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawtcp.core.config import SEC, Config

# Linux sysctl -> (Config field, conversion of the Linux value)
SYSCTLS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "net.ipv4.tcp_sack": ("sack", lambda v: int(v) != 0),
    "net.ipv4.tcp_timestamps": ("timestamps", lambda v: int(v) != 0),
    "net.ipv4.tcp_window_scaling": ("window_scaling", lambda v: int(v) != 0),
    "net.ipv4.tcp_dsack": ("dsack", lambda v: int(v) != 0),
    "net.ipv4.tcp_rfc1337": ("rfc1337", lambda v: int(v) != 0),
    "net.ipv4.tcp_moderate_rcvbuf": ("moderate_rcvbuf", lambda v: int(v) != 0),
    "net.ipv4.tcp_syn_retries": ("syn_retries", int),
    "net.ipv4.tcp_synack_retries": ("synack_retries", int),
    "net.ipv4.tcp_retries2": ("retries2", int),
    "net.ipv4.tcp_orphan_retries": ("orphan_retries", int),
    "net.ipv4.tcp_syncookies": ("syncookies", int),
    "net.ipv4.tcp_fin_timeout": ("fin_timeout", lambda v: int(v) * SEC),
    "net.ipv4.tcp_keepalive_time": ("keepalive_time", lambda v: int(v) * SEC),
    "net.ipv4.tcp_keepalive_intvl": ("keepalive_intvl", lambda v: int(v) * SEC),
    "net.ipv4.tcp_keepalive_probes": ("keepalive_probes", int),
    "net.ipv4.tcp_challenge_ack_limit": ("challenge_ack_limit", int),
    "net.core.rmem_max": ("rmem_max", int),
    "net.core.wmem_max": ("wmem_max", int),
    # the default of the three values: the buffer a new socket gets
    "net.ipv4.tcp_rmem": ("rcvbuf", lambda v: int(v.split()[1])),
    "net.ipv4.tcp_wmem": ("sndbuf", lambda v: int(v.split()[1])),
}

# What ../common/defaults.sh and scripts/defaults.sh set (Linux production defaults); the
# runner applies these, it never runs the files.
DEFAULTS_SH = [
    "net.ipv4.tcp_rmem=4096 540000 15728640", "net.ipv4.tcp_wmem=4096 262144 4194304",
    "net.ipv4.tcp_timestamps=1", "net.ipv4.tcp_syn_retries=5", "net.ipv4.tcp_synack_retries=5",
    "net.ipv4.tcp_frto=2", "net.ipv4.tcp_sack=1", "net.ipv4.tcp_dsack=1", "net.ipv4.tcp_fack=0",
    "net.ipv4.tcp_reordering=3", "net.ipv4.tcp_congestion_control=cubic",
    "net.ipv4.tcp_slow_start_after_idle=0", "net.ipv4.tcp_early_retrans=4",
    "net.ipv4.tcp_recovery=1", "net.ipv4.tcp_tso_win_divisor=3", "net.ipv4.tcp_ecn=0",
    "net.ipv4.tcp_pacing_ss_ratio=200", "net.ipv4.tcp_pacing_ca_ratio=120",
    "net.ipv4.tcp_fastopen=0x70403", "net.ipv4.tcp_syncookies=1",
]
DEFAULTS_FILES = ("defaults.sh",)
SET_SYSCTLS = ("set_sysctls.py",)     # Google's helper: set_sysctls.py /proc/sys/...=V ...
_PROC_WRITE = re.compile(r"^echo\s+(?P<value>\"[^\"]*\"|'[^']*'|\S+)\s*>\s*"
                         r"(?P<path>/proc/sys/\S+)$")

SS_STATES = {
    "established": "ESTABLISHED", "syn-sent": "SYN_SENT", "syn-recv": "SYN_RECEIVED",
    "fin-wait-1": "FIN_WAIT_1", "fin-wait-2": "FIN_WAIT_2", "time-wait": "TIME_WAIT",
    "closed": "CLOSED", "close-wait": "CLOSE_WAIT", "last-ack": "LAST_ACK",
    "listening": "LISTEN", "closing": "CLOSING",
}
_SS = re.compile(r"^ss\s+(?P<opts>(?:-\w+\s+)*)state\s+(?P<state>[\w-]+)\s*(?P<filter>.*?)\s*"
                 r"\|\s*wc\s+-l\s*\|\s*grep\s+-qx\s+(?P<n>\d+)\s*$")
_FILTER = re.compile(r"^'?\(?\s*(?P<dir>sport|dport)\s*(?:=|==|eq)\s*:(?P<port>\d+)\s*\)?'?$")


@dataclass
class CommandResult:
    """``ok`` False: the command "failed" (packetdrill fails the script); ``note``: what was
    applied or ignored (for the report)."""

    ok: bool
    note: str
    changes: dict[str, Any]
    error: str | None = None


def sysctl_changes(assignments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Config changes for ``name=value`` sysctl assignments, and the names ignored."""
    out: dict[str, Any] = {}
    ignored = []
    for a in assignments:
        name, _, val = a.partition("=")
        name = name.strip().replace("/", ".")
        val = val.strip().strip('"').strip("'")
        if name in SYSCTLS:
            field, conv = SYSCTLS[name]
            try:
                out[field] = conv(val)
                if name == "net.ipv4.tcp_rmem":
                    # Linux's window scale covers max(tcp_rmem[2], net.core.rmem_max);
                    # rawtcp's rmem_max stands for both
                    out["rmem_max"] = max(int(val.split()[2]), out.get("rmem_max", 0))
                elif name == "net.ipv4.tcp_wmem":
                    out["sndbuf_max"] = int(val.split()[2])   # how far autotuning goes
            except (ValueError, IndexError):
                ignored.append(f"{name}={val} (bad value)")
        else:
            ignored.append(name)
    return out, ignored


def split_commands(text: str) -> list[str]:
    """The shell commands in one backtick block: lines (``\\`` continues one), ``;``, ``&&``."""
    text = text.replace("\\\n", " ")
    return [c.strip() for c in re.split(r"\n|;|&&", text) if c.strip()]


def run_command(text: str, count_state: Callable[[str, str | None, int | None], int],
                ) -> CommandResult:
    """Interpret one backtick block, command by command (see the module docstring)."""
    results = [_one_command(c, count_state) for c in split_commands(text)]
    if not results:
        return CommandResult(True, "empty command", {})
    changes: dict[str, Any] = {}
    for r in results:
        changes.update(r.changes)
    bad = [r for r in results if not r.ok]
    return CommandResult(not bad, "; ".join(r.note for r in results), changes,
                         bad[0].error if bad else None)


def _one_command(cmd: str, count_state: Callable[[str, str | None, int | None], int],
                 ) -> CommandResult:
    cmd = " ".join(cmd.split())
    base = cmd.split()[0] if cmd else ""
    if base.endswith(DEFAULTS_FILES):
        ch, ign = sysctl_changes(DEFAULTS_SH)
        return CommandResult(True, f"applied Linux defaults ({_fmt(ch)}); ignored "
                                   f"{', '.join(ign)}", ch)
    m = _SS.match(cmd)
    if m:
        return _ss(m, count_state)
    proc = _PROC_WRITE.match(cmd)
    if base == "sysctl" or base.endswith(SET_SYSCTLS) or proc:
        if proc:
            words = [f"{proc['path']}={proc['value']}"]
        else:
            try:
                words = shlex.split(cmd)[1:]
            except ValueError:
                return CommandResult(True, f"ignored (cannot parse): {cmd}", {})
        assigns = [_sysctl_name(w) for w in words if not w.startswith("-") and "=" in w]
        if not assigns:
            return CommandResult(True, f"ignored (reads nothing into rawtcp): {cmd}", {})
        ch, ign = sysctl_changes(assigns)
        note = f"applied {_fmt(ch)}" if ch else "applied nothing"
        if ign:
            note += f"; ignored {', '.join(ign)} (no rawtcp equivalent)"
        return CommandResult(True, note, ch)
    return CommandResult(True, f"ignored, not executed: {cmd}", {})


def _sysctl_name(assignment: str) -> str:
    """``/proc/sys/net/ipv4/tcp_sack=0`` -> ``net.ipv4.tcp_sack=0`` (sysctl names as is)."""
    name, _, val = assignment.partition("=")
    if name.startswith("/proc/sys/"):
        name = name[len("/proc/sys/"):].replace("/", ".")
    return f"{name}={val}"


def _fmt(ch: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in ch.items())


def _ss(m: re.Match, count_state: Callable[[str, str | None, int | None], int]
        ) -> CommandResult:
    state = SS_STATES.get(m["state"])
    if state is None:
        return CommandResult(True, f"ignored ss state {m['state']!r}", {})
    direction = port = None
    flt = m["filter"].strip()
    if flt:
        fm = _FILTER.match(flt)
        if fm is None:
            return CommandResult(True, f"ignored ss filter {flt!r}", {})
        direction, port = fm["dir"], int(fm["port"])
    n = count_state(state, direction, port)
    want = int(m["n"])
    ok = n == want
    note = f"ss: {n} connection(s) in {state}" + (f" with {direction} {port}" if port else "")
    return CommandResult(ok, note, {}, None if ok else
                         f"non-zero status 1: expected {want} connection(s) in {state}, "
                         f"rawtcp has {n}")


# ------------------------------------------------------------------------------ %{ }% blocks
LINUX_STATES = {"ESTABLISHED": 1, "SYN_SENT": 2, "SYN_RECEIVED": 3, "FIN_WAIT_1": 4,
                "FIN_WAIT_2": 5, "TIME_WAIT": 6, "CLOSED": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9,
                "LISTEN": 10, "CLOSING": 11}
TCPI_CONSTANTS = {"TCPI_" + k.replace("SYN_RECEIVED", "SYN_RECV").replace("FIN_WAIT_",
                                                                            "FIN_WAIT"): v
                  for k, v in LINUX_STATES.items()}
TCPI_CONSTANTS["TCPI_CLOSE"] = 7


def tcpi_fields(info: dict[str, Any]) -> dict[str, Any]:
    """rawtcp's tcp_info() as Linux struct tcp_info field names (where one exists)."""
    mss = info.get("mss") or 1
    out = {"tcpi_state": LINUX_STATES.get(info.get("state", ""), 0)}
    if "rto" in info:
        out.update({
            "tcpi_rto": info["rto"], "tcpi_rtt": info.get("srtt") or 0,
            "tcpi_rttvar": info.get("rttvar") or 0,
            "tcpi_snd_cwnd": (info.get("cwnd") or 0) // mss,
            "tcpi_snd_ssthresh": (info.get("ssthresh") or 0) // mss,
            "tcpi_retransmits": info.get("retransmits", 0),
            "tcpi_total_retrans": info.get("total_retrans", 0),
            "tcpi_probes": info.get("probes", 0), "tcpi_snd_mss": info.get("mss", 0),
            "tcpi_snd_wscale": info.get("snd_wscale") or 0,
            "tcpi_rcv_wscale": info.get("rcv_wscale") or 0,
            "tcpi_unacked": info.get("unacked", 0),
        })
    return out


_ALLOWED = (ast.Module, ast.Assert, ast.Expr, ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp,
            ast.Name, ast.Constant, ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Eq, ast.NotEq,
            ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.BitAnd, ast.BitOr, ast.Tuple)


class CodeUnsupported(Exception):
    """The block uses something rawtcp cannot give (a tcpi_ field, a Python statement)."""


def check_code(text: str, fields: dict[str, Any]) -> str | None:
    """Evaluate the assertions; None when they hold, else the failing one."""
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise CodeUnsupported(f"%{{ }}% block is not an expression list: {e.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise CodeUnsupported(f"%{{ }}% block uses {type(node).__name__}, which the rawtcp "
                                  "runner does not evaluate")
        if isinstance(node, ast.Name) and node.id not in fields \
                and node.id not in TCPI_CONSTANTS:
            raise CodeUnsupported(f"{node.id} has no rawtcp equivalent")
    env = {**TCPI_CONSTANTS, **fields}
    for stmt in tree.body:
        expr = stmt.test if isinstance(stmt, ast.Assert) else stmt.value   # type: ignore[attr-defined]
        code = compile(ast.Expression(expr), "<tcpi>", "eval")
        if not eval(code, {"__builtins__": {}}, env):  # noqa: S307 - only the nodes above
            return f"assertion failed: {ast.unparse(expr)} " \
                   f"({', '.join(f'{n}={env[n]}' for n in _names(expr) if n in fields)})"
    return None


def _names(expr: ast.AST) -> list[str]:
    return sorted({n.id for n in ast.walk(expr) if isinstance(n, ast.Name)})


def apply(config: Config, changes: dict[str, Any]) -> Config:
    return config.with_overrides(changes) if changes else config
