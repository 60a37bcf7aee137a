"""Helpers for the kernel tests: a lab (TUN, AF_PACKET or raw IP link) with a rawtcp Stack
on it, a Linux-like config with short timers, and ways to watch both sides' TCP states.

rawtcp's states come from its trace (``{"ev": "state"}`` events); the kernel's from ``ss``
(rawtcp.lab.kernel), sampled by a StatePoller or polled until a wanted state shows up.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from rawtcp.core.config import MS, Config
from rawtcp.faults import parse_rule
from rawtcp.lab import TunLab, VethLab
from rawtcp.lab.kernel import kernel_sockets
from rawtcp.runtime import Stack
from rawtcp.trace import Tracer

LINKS = ("tun", "packet", "rawip")
SYN_RETRIES = 2


def kernel_config(**kw) -> Config:
    """Linux's RTO bounds, but a short MSL (TIME_WAIT = 1 s) and few SYN retries."""
    base = dict(msl=500 * MS, rto_initial=300 * MS, rto_min=200 * MS, syn_retries=SYN_RETRIES,
                synack_retries=2, retries2=6, fin_timeout=5000 * MS)
    base.update(kw)
    return Config(**base)


@dataclass
class Env:
    kind: str
    lab: object
    stack: Stack
    tracer: Tracer

    @property
    def kernel_addr(self) -> str:
        return self.lab.kernel_addr  # type: ignore[attr-defined]

    @property
    def netns(self) -> str:
        return self.lab.kernel_netns  # type: ignore[attr-defined]

    def states(self, conn: str) -> list[str]:
        """rawtcp's states for one connection, in order (from the trace)."""
        return [e["new"] for e in self.tracer.events("state") if e.get("conn") == conn]

    def segs(self, conn: str, direction: str) -> list[dict]:
        return [e for e in self.tracer.events("seg")
                if e.get("conn") == conn and e["dir"] == direction]

    def connect(self, port: int, timeout: float = 5.0, addr: str | None = None):
        import socket

        host = addr or self.kernel_addr
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = self.stack.socket(fam, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, port))
        return s


def make_lab(kind: str, family: str = "dual"):
    if kind == "tun":
        return TunLab(family=family)
    # rawip: ports=None makes the nftables rule cover every local port of rawtcp's address
    return VethLab(mode=kind, family=family)


@contextlib.contextmanager
def kernel_env(kind: str, *, family: str = "dual", faults: list[tuple[str, str]] = (),
               config: Config | None = None) -> Iterator[Env]:
    """A fresh lab with unique names and a running Stack; both always torn down."""
    with make_lab(kind, family) as lab:
        tracer = Tracer()
        rules = [parse_rule(action, text) for action, text in faults]
        with Stack(lab.open_link(), config or kernel_config(), tracer=tracer,
                   faults=rules or None, name=f"rawtcp-{kind}") as st:
            yield Env(kind, lab, st, tracer)


def wait_kernel_state(netns: str, port: int, states: str | tuple[str, ...],
                      timeout: float = 5.0, gone_ok: bool = False) -> dict | None:
    """Poll ``ss`` until a non-listening kernel socket on ``port`` is in one of ``states``.
    With gone_ok, no such socket at all also ends the wait (returns None)."""
    want = (states,) if isinstance(states, str) else states
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        socks = [s for s in kernel_sockets(netns, port) if s["state"] != "LISTEN"]
        for s in socks:
            if s["state"] in want:
                return s
        if gone_ok and not socks:
            return None
        seen.append(",".join(s["state"] for s in socks) or "-")
        time.sleep(0.01)   # ss is the only way to see the kernel's state: poll, bounded
    raise OSError(errno.ETIMEDOUT, f"kernel never reached {want} on port {port} within "
                  f"{timeout}s; saw {seen[-5:]}")


def wait_sampled(poller, state: str, timeout: float = 5.0) -> None:
    """Wait until a StatePoller has recorded ``state`` (its first ss run takes a moment)."""
    deadline = time.monotonic() + timeout
    while state not in poller.states():
        if time.monotonic() > deadline:
            raise OSError(errno.ETIMEDOUT, f"the poller never saw {state}: {poller.samples}")
        time.sleep(0.005)   # the poller runs ss in its own thread: poll its samples, bounded


def compact(states: list[str]) -> list[str]:
    """Drop consecutive repeats."""
    out: list[str] = []
    for s in states:
        if not out or out[-1] != s:
            out.append(s)
    return out


def recv_hashed(s) -> tuple[int, str]:
    """Read until the peer's FIN: (bytes read, their sha256), without holding them."""
    h = hashlib.sha256()
    n = 0
    while True:
        d = s.recv(1 << 20)
        if not d:
            return n, h.hexdigest()
        h.update(d)
        n += len(d)
