"""Helpers for the socket tests: two rawtcp stacks joined by an in-process MemoryLink pair.

Real threads and real time, but short timers (Config below) so that TIME_WAIT, SYN retries
and RTO backoff finish in well under a second.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from rawtcp.core.config import MS, Config
from rawtcp.link.memory import MemoryLink
from rawtcp.runtime import Stack
from rawtcp.trace import Tracer

A4, B4 = "10.1.0.1", "10.1.0.2"
A6, B6 = "fd01::1", "fd01::2"


def fast_config(**kw) -> Config:
    """Linux-like behaviour with timers short enough for tests."""
    base = dict(rto_initial=200 * MS, rto_min=50 * MS, msl=150 * MS, syn_retries=2,
                synack_retries=2, retries2=4, delayed_ack=10 * MS, fin_timeout=1000 * MS,
                persist_min=50 * MS, persist_max=400 * MS)
    base.update(kw)
    return Config(**base)


@dataclass
class Pair:
    a: Stack
    b: Stack
    ta: Tracer
    tb: Tracer
    extra: list = field(default_factory=list)

    def states(self, tracer: Tracer, conn: str | None = None) -> list[str]:
        """The sequence of new states traced (optionally for one connection)."""
        return [e["new"] for e in tracer.events("state")
                if conn is None or e.get("conn") == conn]


def make_pair(config: Config | None = None, config_b: Config | None = None,
              faults_a=None, faults_b=None) -> Pair:
    la, lb = MemoryLink.pair([A4, A6], [B4, B6])
    ta, tb = Tracer(), Tracer()
    a = Stack(la, config or fast_config(), tracer=ta, faults=faults_a, name="stack-a")
    try:
        b = Stack(lb, config_b or config or fast_config(), tracer=tb, faults=faults_b,
                  name="stack-b")
    except BaseException:
        a.close()
        raise
    return Pair(a, b, ta, tb)


def connected(p: Pair, family: int = socket.AF_INET, port: int = 5000, timeout: float = 2.0,
              before_connect=None, before_listen=None):
    """(client on a, server side on b, listener on b), all with a timeout."""
    ls = p.b.socket(family, socket.SOCK_STREAM)
    if before_listen:
        before_listen(ls)
    ls.bind(("", port))
    ls.listen(8)
    ls.settimeout(timeout)
    c = p.a.socket(family, socket.SOCK_STREAM)
    c.settimeout(timeout)
    if before_connect:
        before_connect(c)
    c.connect((B6 if family == socket.AF_INET6 else B4, port))
    s, _ = ls.accept()
    s.settimeout(timeout)
    return c, s, ls
