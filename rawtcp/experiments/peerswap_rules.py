"""rawtcp's fault rules for a Linux socket: nftables rules (and relay delays) that do to the
Linux run what the rules did to the rawtcp run, as closely as the wire allows.

rawtcp's rules see the connection's state; nftables sees packets. Translation (pure: text in,
:class:`Translation` out, nft text out, and :class:`TableModel`, the same logic in Python so
that the relay can mark on the ladder which packet the nft rule ate, checked against the nft
counters):

- ``dir``: ``out`` (what the subject sends) is dropped in the *peer kernel's* namespace, at
  its prerouting hook: the wire lost it. Dropping it in the Linux socket's own output hook
  would not be a loss: Linux TCP gets EPERM from a local netfilter drop and sends the segment
  again later as new. ``in`` is dropped in the Linux socket's namespace at prerouting, before
  its TCP sees it, as rawtcp's fault engine drops it before its core.
- ``flags``: ``tcp flags & (all eight) == F`` for an exact set, ``+X``/``-X`` as masks.
- ``state``: the subject's state comes from the FINs seen on the flow, kept in nft dynamic
  sets (our FIN, their FIN, our FIN after theirs, their FIN after ours):
  TIME_WAIT and CLOSING = their first FIN came after ours (TIME_WAIT's end, a timer, is not
  visible; CLOSING and TIME_WAIT are one condition); LAST_ACK = our FIN came after theirs;
  CLOSE_WAIT = their FIN, not ours; FIN_WAIT_1 and FIN_WAIT_2 = our FIN, not theirs (one
  condition); ESTABLISHED = no FIN and no SYN. Other states (LISTEN, SYN_SENT, SYN_RECEIVED,
  CLOSED), several states and ``state!=`` cannot be translated.
- ``seq``: nftables does not know the ISN, so a relative sequence number translates only where
  the scenario fixes it: 0 is the SYN, and sent-bytes + 2 is "after our FIN" (the first
  sequence number after a FIN that follows every byte sent).
- ``nth=N``: per flow, with N dynamic sets a flow climbs one per matching packet (the N-th is
  dropped) as rawtcp.lab.netem.NthDrop; rawtcp counts per rule, which is the same for a
  one-connection scenario.
- ``p``: ``numgen random`` (the kernel's random numbers: not repeatable with ``seed``; the
  ladder cannot mark which packets such a rule dropped, the nft counter says how many).
- ``len``, ``count``, ``proto`` other than tcp: not translated.
- ``delay`` (only with ``dir`` and ``flags``): done by the userspace relay between the two
  namespaces (this kernel has no netem qdisc); other actions (duplicate, reorder, corrupt):
  not translated.

Every rule that is not translated exactly says why (``notes``); an untranslatable one is left
out of the Linux run (``applied`` False) and the output says so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rawtcp.core.segment import Flags
from rawtcp.faults.grammar import FlagMatch, Rule, parse_action_rule

__all__ = ["PHASES", "TableModel", "Translation", "nft_table_body", "translate",
           "translate_all"]

#: phase name -> (membership conditions on the flow's FIN sets, text for people)
PHASES: dict[str, tuple[tuple[tuple[str, bool], ...], str]] = {
    "fiafo": ((("fiafo", True),), "the peer's first FIN came after ours"),
    "foafi": ((("foafi", True),), "our FIN came after the peer's"),
    "fi_not_fo": ((("fi", True), ("fo", False)), "the peer sent FIN, we did not"),
    "fo_not_fi": ((("fo", True), ("fi", False)), "we sent FIN, the peer did not"),
    "nofin": ((("fo", False), ("fi", False)), "no FIN either way, no SYN"),
    "fo": ((("fo", True),), "after our FIN"),
    "fi": ((("fi", True),), "after the peer's FIN"),
}
_STATE_PHASE = {
    "TIME_WAIT": ("fiafo", False, "TIME_WAIT ~ after the peer's first FIN that followed ours "
                                  "(the same condition as CLOSING; TIME_WAIT's end is a timer "
                                  "nftables does not see)"),
    "CLOSING": ("fiafo", False, "CLOSING ~ after the peer's first FIN that followed ours "
                                "(the same condition as TIME_WAIT)"),
    "LAST_ACK": ("foafi", False, "LAST_ACK ~ after our FIN that followed the peer's (also "
                                 "after the final ACK, when the socket is CLOSED)"),
    "CLOSE_WAIT": ("fi_not_fo", True, "CLOSE_WAIT = the peer's FIN seen, ours not sent"),
    "FIN_WAIT_1": ("fo_not_fi", False, "FIN_WAIT_1 ~ our FIN sent, the peer's not seen (the "
                                       "same condition as FIN_WAIT_2)"),
    "FIN_WAIT_2": ("fo_not_fi", False, "FIN_WAIT_2 ~ our FIN sent, the peer's not seen (the "
                                       "same condition as FIN_WAIT_1)"),
    "ESTABLISHED": ("nofin", False, "ESTABLISHED ~ no FIN either way and not a SYN"),
}
_ALL_FLAGS = int(Flags.FIN | Flags.SYN | Flags.RST | Flags.PSH | Flags.ACK | Flags.URG
                 | Flags.ECE | Flags.CWR)
_NFT_FLAG = [(int(Flags.FIN), "fin"), (int(Flags.SYN), "syn"), (int(Flags.RST), "rst"),
             (int(Flags.PSH), "psh"), (int(Flags.ACK), "ack"), (int(Flags.URG), "urg"),
             (int(Flags.ECE), "ecn"), (int(Flags.CWR), "cwr")]


@dataclass
class Translation:
    """One rule and what the Linux run does for it. ``where``: "peer" (nftables in the peer
    kernel's namespace), "linux" (nftables in the Linux socket's namespace), "both", "relay"
    (the userspace relay's delay) or "" (not applied)."""

    rule: str
    action: str
    dir: str
    applied: bool
    exact: bool
    where: str = ""
    flags: FlagMatch | None = None
    phase: str | None = None
    syn_only: bool = False
    nth: int | None = None
    p: float | None = None
    ms: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rule": self.rule, "applied": self.applied, "exact": self.exact,
                "where": self.where, "nft": self.describe(), "notes": list(self.notes)}

    def describe(self) -> str:
        """The condition in words, as the Linux run applies it."""
        if not self.applied:
            return "not applied"
        parts = [{"out": "segments the Linux socket sends", "in": "segments sent to it",
                  "any": "segments either way"}[self.dir]]
        if self.flags is not None:
            parts.append(f"flags {self.flags.text}")
        if self.syn_only:
            parts.append("SYN")
        if self.phase:
            parts.append(PHASES[self.phase][1])
        if self.nth:
            parts.append(f"the {self.nth}. match per flow")
        if self.p is not None:
            parts.append(f"p={self.p:g} (kernel random)")
        act = f"delay {self.ms:g} ms in the relay" if self.action == "delay" else "drop"
        return f"{act}: " + ", ".join(parts)


def translate(text: str | Rule, out_bytes: int | None = None,
              in_bytes: int | None = None) -> Translation:
    """Translate one rule (text with the action first, or a Rule). ``out_bytes``/``in_bytes``:
    the bytes the subject / the peer send in the scenario (for ``seq=``)."""
    r = parse_action_rule(text) if isinstance(text, str) else text
    t = Translation(str(r), r.action, r.dir, applied=True, exact=True, flags=r.flags,
                    nth=r.nth, p=r.p, ms=r.ms)

    def refuse(why: str) -> Translation:
        t.applied, t.exact, t.where = False, False, ""
        t.notes.append(f"not translated: {why}")
        return t

    if r.predicate is not None:
        return refuse("a Python predicate has no nftables form")
    if r.proto not in (None, "tcp"):
        return refuse(f"proto={r.proto}: the scenarios are TCP only")
    if r.action == "delay":
        if any(x is not None for x in (r.states, r.seq, r.len, r.nth, r.count, r.p)):
            return refuse("a delay with conditions other than dir and flags")
        t.where = "relay"
        t.notes.append("delayed by the userspace relay between the namespaces (no netem "
                       "qdisc in this kernel), in order, as rawtcp's delay holds each packet")
        return t
    if r.action != "drop":
        return refuse(f"{r.action}: only drop (nftables) and delay (relay) are translated")
    if r.len is not None:
        return refuse("len: the payload length is not a field nftables can compare")
    if r.count is not None:
        return refuse("count: no per-rule budget in the translation")
    if r.states is not None:
        if r.states_negate or len(r.states) != 1:
            return refuse("only one state, with '=', is translated")
        st = next(iter(r.states))
        if st not in _STATE_PHASE:
            return refuse(f"state={st} is not visible on the wire")
        t.phase, exact, note = _STATE_PHASE[st]
        t.exact = t.exact and exact
        t.notes.append(note)
    if r.seq is not None:
        phase, note = _seq_phase(r, out_bytes, in_bytes)
        if phase is None:
            return refuse(note)
        if phase == "syn":
            t.syn_only = True
        elif t.phase is not None and t.phase != phase:
            return refuse("seq= together with state= is not translated")
        else:
            t.phase = phase
        t.notes.append(note)
    if r.p is not None:
        t.exact = False
        t.notes.append("p: nftables numgen random (the kernel's random numbers, not the seed)")
    t.where = {"out": "peer", "in": "linux", "any": "both"}[r.dir]
    return t


def _seq_phase(r: Rule, out_bytes: int | None, in_bytes: int | None) -> tuple[str | None, str]:
    s = r.seq
    assert s is not None
    if s.absolute or s.op != "=" or s.hi is not None or r.dir == "any":
        return None, "seq: only seq=N on one direction is translated"
    sent = out_bytes if r.dir == "out" else in_bytes
    if s.lo == 0:
        return "syn", "seq=0: the SYN"
    if sent is not None and s.lo == sent + 2:
        who = "our" if r.dir == "out" else "the peer's"
        return ("fo" if r.dir == "out" else "fi"), \
            f"seq={s.lo}: the sequence number after {who} FIN ({sent} bytes sent before it)"
    return None, f"seq={s.lo}: a relative sequence number inside the data; nftables does not " \
                 "know the ISN"


def translate_all(texts: list[str], out_bytes: int | None = None,
                  in_bytes: int | None = None) -> list[Translation]:
    return [translate(x, out_bytes, in_bytes) for x in texts]


# ----------------------------------------------------------------------------- nftables text
def _flags_expr(fm: FlagMatch | None) -> str:
    if fm is None:
        return ""
    if fm.exact is not None:
        mask, want = _ALL_FLAGS, fm.exact
    else:
        mask, want = fm.must | fm.must_not, fm.must
    m = "|".join(n for b, n in _NFT_FLAG if mask & b)
    w = "|".join(n for b, n in _NFT_FLAG if want & b) or "0x0"
    return f"tcp flags & ({m}) == {w} "


_KEY_LK = "ip saddr . tcp sport . ip daddr . tcp dport"   # a packet from the Linux socket
_KEY_KL = "ip daddr . tcp dport . ip saddr . tcp sport"   # a packet to it: same flow key
_TYPE = "ipv4_addr . inet_service . ipv4_addr . inet_service"


def _phase_expr(phase: str | None, key: str) -> str:
    if phase is None:
        return ""
    conds, _ = PHASES[phase]
    out = "".join(f"{key} {'' if inside else '!= '}@{s} " for s, inside in conds)
    if phase == "nofin":
        out += "tcp flags & syn == 0x0 "
    return out


def nft_table_body(side: str, translations: list[Translation], linux_addr: str,
                   peer_addr: str) -> tuple[str, list[str]]:
    """The body of an ``inet`` table for ``side`` ("linux": the Linux socket's namespace, its
    drops are of ``in`` rules; "peer": the peer kernel's namespace, ``out`` rules) and the
    comments of its drop rules (one per translation, ``t<index>``). Both chains keep the FIN
    sets up to date; the drop rules come before the bookkeeping in the prerouting chain, so a
    dropped FIN does not count as seen."""
    drop_dir = "in" if side == "linux" else "out"
    # prerouting sees the packets arriving in this namespace; output those leaving it
    arriving_key = _KEY_KL if side == "linux" else _KEY_LK
    leaving_key = _KEY_LK if side == "linux" else _KEY_KL
    arriving = (f"ip saddr {peer_addr} ip daddr {linux_addr}" if side == "linux"
                else f"ip saddr {linux_addr} ip daddr {peer_addr}")
    leaving = (f"ip saddr {linux_addr} ip daddr {peer_addr}" if side == "linux"
               else f"ip saddr {peer_addr} ip daddr {linux_addr}")
    sets = [f"  set {s} {{ type {_TYPE}; flags dynamic; size 1024; }}"
            for s in ("fo", "fi", "foafi", "fiafo")]
    drops: list[str] = []
    comments: list[str] = []
    for i, t in enumerate(translations):
        if not t.applied or t.action != "drop" or t.dir not in (drop_dir, "any"):
            continue
        cond = (f"{arriving} meta l4proto tcp {_flags_expr(t.flags)}"
                + ("tcp flags & (syn|ack) == syn " if t.syn_only else "")
                + _phase_expr(t.phase, arriving_key))
        chance = "" if t.p is None or t.p >= 1 else \
            f"numgen random mod 10000 < {round(t.p * 10000)} "
        name = f"t{i}"
        comments.append(name)
        n = t.nth or 0
        if not n:
            drops.append(f"{cond}{chance}counter drop comment \"{name}\"")
            continue
        for level in range(1, n + 1):
            sets.append(f"  set {name}l{level} {{ type {_TYPE}; flags dynamic; size 1024; }}")
        for level in range(n, 0, -1):    # highest first: a packet climbs one level only
            below = f"{arriving_key} @{name}l{level - 1} " if level > 1 else ""
            head = f"{cond}{below}{arriving_key} != @{name}l{level} " \
                   f"add @{name}l{level} {{ {arriving_key} }} "
            drops.append(head + (f"{chance}counter drop comment \"{name}\"" if level == n
                                 else ""))
    fin = "tcp flags & fin == fin"

    def book(key: str, ours: bool) -> list[str]:
        mine, theirs, after = ("fo", "fi", "foafi") if ours else ("fi", "fo", "fiafo")
        return [f"meta l4proto tcp {fin} {key} @{theirs} {key} != @{mine} "
                f"add @{after} {{ {key} }}",
                f"meta l4proto tcp {fin} add @{mine} {{ {key} }}"]

    pre = [*drops, *[f"{arriving} {x}" for x in book(arriving_key, side == "peer")]]
    out = [f"{leaving} {x}" for x in book(leaving_key, side == "linux")]
    chains = []
    for hook, rules in (("prerouting", pre), ("output", out)):
        chains.append(f"  chain {hook} {{\n    type filter hook {hook} priority -150; "
                      "policy accept;\n" + "".join(f"    {x}\n" for x in rules) + "  }")
    return "\n".join(sets + chains), comments


# ----------------------------------------------------------------------------- the same in Python
class TableModel:
    """What one side's nft table does, packet by packet, in Python: the relay calls
    :meth:`leaving` for a packet that leaves this side's namespace and :meth:`arriving` for one
    that arrives (returns the index of the translation that dropped it, or None). Rules with
    ``p`` are never reported (the kernel's random numbers decide them)."""

    def __init__(self, side: str, translations: list[Translation]) -> None:
        self.side = side
        self.drop_dir = "in" if side == "linux" else "out"
        self.translations = translations
        self.sets: dict[str, set] = {"fo": set(), "fi": set(), "foafi": set(), "fiafo": set()}
        self.levels: dict[int, dict] = {}
        self.dropped: dict[int, int] = {}
        self._rng = random.Random(0)

    def _book(self, flow: tuple, flags: int, ours: bool) -> None:
        if not flags & int(Flags.FIN):
            return
        mine, theirs, after = ("fo", "fi", "foafi") if ours else ("fi", "fo", "fiafo")
        if flow in self.sets[theirs] and flow not in self.sets[mine]:
            self.sets[after].add(flow)
        self.sets[mine].add(flow)

    def _in_phase(self, phase: str | None, flow: tuple, flags: int) -> bool:
        if phase is None:
            return True
        conds, _ = PHASES[phase]
        ok = all((flow in self.sets[s]) == inside for s, inside in conds)
        return ok and not (phase == "nofin" and flags & int(Flags.SYN))

    def leaving(self, flow: tuple, flags: int) -> None:
        """A packet leaving this namespace (output hook): bookkeeping only."""
        self._book(flow, flags, ours=self.side == "linux")

    def arriving(self, flow: tuple, flags: int) -> int | None:
        """A packet arriving (prerouting): the drop rules, then bookkeeping if it lives."""
        for i, t in enumerate(self.translations):
            if not t.applied or t.action != "drop" or t.dir not in (self.drop_dir, "any"):
                continue
            if t.flags is not None and not t.flags(flags):
                continue
            if t.syn_only and flags & int(Flags.SYN | Flags.ACK) != int(Flags.SYN):
                continue
            if not self._in_phase(t.phase, flow, flags):
                continue
            if t.nth:
                lv = self.levels.setdefault(i, {})
                lv[flow] = lv.get(flow, 0) + 1
                if lv[flow] != t.nth:
                    continue
            if t.p is not None and t.p < 1:
                continue          # the kernel's coin: not known here
            self.dropped[i] = self.dropped.get(i, 0) + 1
            return i
        self._book(flow, flags, ours=self.side == "peer")
        return None
