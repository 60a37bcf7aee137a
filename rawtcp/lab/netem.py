"""Loss inside a namespace's kernel with nftables, in a uniquely named table.

    with Loss(lab.kernel_netns, [RandomDrop(20), NthDrop(3, flags="A")], direction="out") as loss:
        ... traffic ...
        loss.dropped()       # packets the rules dropped (nft counters)

Directions are the kernel's: "out" = hook output (what the kernel sends), "in" = hook input
(what it receives), "both". Rules:

- RandomDrop(percent): each matching packet is dropped with this probability
  (`numgen random mod 10000 < percent*100`).
- NthDrop(n, flags=None): drop the n-th matching segment of each flow (direction-specific
  4-tuple). Implemented with n dynamic sets: a flow climbs one set per matching segment and
  the n-th is dropped; later segments (the retransmission) pass. NthDrop(1) = once per flow.
- `flags`: TCP flags in Scapy letters ("S", "SA", "F", "FA", "R"...): the segment's F/S/R/A
  bits (and P/U/E/C when named) must equal exactly these. `match`: extra nft expression
  (e.g. "tcp dport 5000").

The table is removed on exit, always (registered for rawtcp.lab.cleanup meanwhile).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Self

from rawtcp.host import nft

_FLAG_NAMES = {"F": "fin", "S": "syn", "R": "rst", "P": "psh", "A": "ack", "U": "urg",
               "E": "ecn", "C": "cwr"}


def flags_expr(flags: str | None) -> str:
    if flags is None:
        return ""
    bad = set(flags) - set(_FLAG_NAMES)
    if bad:
        raise OSError(errno.EINVAL, f"unknown TCP flag letters {sorted(bad)}; use FSRPAUEC")
    mask = {"fin", "syn", "rst", "ack"} | {_FLAG_NAMES[c] for c in flags}
    want = [_FLAG_NAMES[c] for c in flags]
    order = ["fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"]
    m = "|".join(f for f in order if f in mask)
    w = "|".join(f for f in order if f in want) or "0x0"
    return f"tcp flags & ({m}) == {w} "


@dataclass(frozen=True)
class RandomDrop:
    percent: float
    flags: str | None = None
    match: str = ""
    proto: str | None = "tcp"


@dataclass(frozen=True)
class NthDrop:
    n: int = 1
    flags: str | None = None
    match: str = ""


_KEYS = {
    "ip": ("ipv4_addr . inet_service . ipv4_addr . inet_service",
           "ip saddr . tcp sport . ip daddr . tcp dport"),
    "ip6": ("ipv6_addr . inet_service . ipv6_addr . inet_service",
            "ip6 saddr . tcp sport . ip6 daddr . tcp dport"),
}


class Loss:
    """An nftables table in `netns` holding drop rules for the kernel's traffic.

    Attributes: table (name; family inet), netns, rules, direction.
    """

    def __init__(self, netns: str | None, rules: list[RandomDrop | NthDrop],
                 direction: str = "out", priority: int = -10) -> None:
        if direction not in ("in", "out", "both"):
            raise OSError(errno.EINVAL, "direction must be 'in', 'out' or 'both'")
        for r in rules:
            if isinstance(r, RandomDrop) and not 0 <= r.percent <= 100:
                raise OSError(errno.EINVAL, "RandomDrop percent must be within 0..100")
            if isinstance(r, NthDrop) and r.n < 1:
                raise OSError(errno.EINVAL, "NthDrop n must be >= 1")
        self.netns, self.rules, self.direction = netns, list(rules), direction
        self.priority = priority
        self.table = nft.unique_table_name("netem")
        self._installed = False

    def _body(self) -> str:
        sets: list[str] = []
        rules: list[str] = []
        for i, r in enumerate(self.rules):
            if isinstance(r, RandomDrop):
                proto = f"meta l4proto {r.proto} " if r.proto else ""
                flags = flags_expr(r.flags)
                thr = round(r.percent * 100)
                chance = "" if thr >= 10000 else f"numgen random mod 10000 < {thr} "
                rules.append(f"{proto}{flags}{r.match} {chance}"
                             f"counter drop comment \"r{i}-random\"")
                continue
            flags = flags_expr(r.flags)
            for fam, (typ, key) in _KEYS.items():
                for level in range(1, r.n + 1):
                    sets.append(f"  set r{i}{fam}l{level} {{ type {typ}; flags dynamic; "
                                f"size 65536; }}")
                # highest level first, so that one packet climbs one level only
                for level in range(r.n, 0, -1):
                    s = f"@r{i}{fam}l{level}"
                    below = f"{key} @r{i}{fam}l{level - 1} " if level > 1 else ""
                    head = f"meta nfproto {'ipv4' if fam == 'ip' else 'ipv6'} " \
                           f"meta l4proto tcp {flags}{r.match} {below}{key} != {s} " \
                           f"add {s} {{ {key} }}"
                    if level == r.n:
                        rules.append(f"{head} counter drop comment \"r{i}-nth{r.n}-{fam}\"")
                    else:
                        rules.append(head)
        chains = []
        hooks = {"in": ["input"], "out": ["output"], "both": ["input", "output"]}[self.direction]
        for hook in hooks:
            chains.append(f"  chain {hook} {{\n    type filter hook {hook} priority "
                          f"{self.priority}; policy accept;\n"
                          + "".join(f"    {x}\n" for x in rules) + "  }")
        return "\n".join(sets + chains)

    def install(self) -> Loss:
        if self._installed:
            raise OSError(errno.EALREADY, "loss rules already installed")
        nft.add_table(self.netns, "inet", self.table, self._body())
        self._installed = True
        return self

    def remove(self) -> None:
        if self._installed:
            self._installed = False
            nft.delete_table(self.netns, "inet", self.table)

    def counters(self) -> list[dict]:
        """Per drop rule: {"chain", "comment", "packets", "bytes"}."""
        return nft.rule_counters(self.netns, "inet", self.table)

    def dropped(self) -> int:
        return sum(c["packets"] for c in self.counters())

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.remove()
