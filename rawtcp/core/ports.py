"""Local ports: who holds which (bindings, connections, listeners), kept up to date as they
come and go, so bind() and the ephemeral-port choice never scan every connection."""

from __future__ import annotations

import errno
import ipaddress
import random
from typing import Any

WILDCARDS = ("0.0.0.0", "::")
_CANON: dict[str, str] = {}


def canonical_ip(addr: str) -> str:
    """The canonical text of an IPv4/IPv6 address (ValueError if it is not one); memoized,
    since a stack sees few distinct addresses and parsing costs microseconds."""
    c = _CANON.get(addr)
    if c is None:
        c = str(ipaddress.ip_address(addr))
        if len(_CANON) < 4096:
            _CANON[addr] = c
    return c


def overlap(a: str, b: str) -> bool:
    """Two local addresses collide: the same, or one is the wildcard of the other's family."""
    if a == b:
        return True
    return (":" in a) == (":" in b) and (a in WILDCARDS or b in WILDCARDS)


class PortTable:
    __slots__ = ("bindings", "conns", "refs")

    def __init__(self) -> None:
        self.bindings: dict[int, list[Any]] = {}                       # port -> Bindings
        # plain dicts of counts (a Counter's methods are Python calls, on every connect)
        self.conns: dict[int, dict[str, int]] = {}     # port -> local addr -> connections
        self.refs: dict[int, int] = {}                 # port -> holders

    # ------------------------------------------------------------------ bookkeeping
    def ref(self, port: int) -> None:
        refs = self.refs
        refs[port] = refs.get(port, 0) + 1

    def unref(self, port: int) -> None:
        n = self.refs.get(port, 0) - 1
        if n > 0:
            self.refs[port] = n
        else:
            self.refs.pop(port, None)

    def add_binding(self, b: Any) -> None:
        self.bindings.setdefault(b.port, []).append(b)
        self.ref(b.port)

    def remove_binding(self, b: Any) -> None:
        lst = self.bindings.get(b.port)
        if lst is None or b not in lst:
            return
        lst.remove(b)
        if not lst:
            del self.bindings[b.port]
        self.unref(b.port)

    def add_conn(self, addr: str, port: int) -> None:
        c = self.conns.get(port)
        if c is None:
            self.conns[port] = {addr: 1}
        else:
            c[addr] = c.get(addr, 0) + 1
        refs = self.refs
        refs[port] = refs.get(port, 0) + 1

    def remove_conn(self, addr: str, port: int) -> None:
        c = self.conns.get(port)
        n = c.get(addr, 0) if c is not None else 0
        if not n:
            return
        if n > 1:
            c[addr] = n - 1
        else:
            del c[addr]
            if not c:
                del self.conns[port]
        self.unref(port)

    # ------------------------------------------------------------------ questions
    def in_use(self, addr: str, port: int, reuse: bool, listeners: dict) -> bool:
        """bind(addr, port) would collide (SO_REUSEADDR semantics as Linux: two bindings
        may share a port when both ask for reuse and neither listens)."""
        for b in self.bindings.get(port, ()):
            if overlap(b.addr, addr) and not (reuse and b.reuse and not b.listening):
                return True
        if not reuse:
            for la in self.conns.get(port, ()):
                if overlap(la, addr):
                    return True
        return any(lp == port and overlap(la, addr) for (la, lp) in listeners)

    def ephemeral(self, low: int, high: int, rng: random.Random) -> int:
        """A free port in [low, high], starting the search at a random place (RFC 6056
        algorithm 1 without the hash). Expected O(1) while the range is not nearly full."""
        n = high - low + 1
        if n <= 0:
            raise OSError(errno.EADDRNOTAVAIL, "no ephemeral ports configured")
        start = int(rng.random() * n)   # randrange(n) is Python code: ~10x the cost
        refs = self.refs
        for i in range(n):
            p = low + (start + i) % n
            if p not in refs:
                return p
        raise OSError(errno.EADDRNOTAVAIL,
                      "no free ephemeral port: close connections or widen the port range")
