"""Segments between script space and live space, as packetdrill maps them.

packetdrill reads sequence numbers like tcpdump: numbers in SYN segments are absolute, the
others are relative to the first SYN of each side. The remote side (the script) picks its own
ISN, so inbound numbers go out as written (offset by the script SYN's ISN); the local side
(rawtcp) picks its ISN, so outbound numbers are compared after subtracting it, and inbound
ACKs have it added. Timestamps: an outbound TS val is remembered against the script's value,
so an inbound TS ecr written as that script value is replaced by the live one; outbound TS
vals are shifted by the first one seen (and compared only with ``--tcp_ts_tick_usecs``).

:class:`Conn` holds that mapping for the script's socket under test; :func:`to_live` builds an
inbound segment, :func:`compare` checks an outbound one and says what differs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from rawtcp.core.segment import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, Options, Segment
from rawtcp.packetdrill.script import Option
from rawtcp.packetdrill.script import Packet as ScriptPacket
from rawtcp.wire import encode_tcp

MASK = 0xFFFFFFFF
_FLAG_BITS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, ".": ACK, "U": URG, "E": ECE, "W": CWR}
_FLAG_NAMES = [(FIN, "tcp_fin"), (SYN, "tcp_syn"), (RST, "tcp_rst"), (PSH, "tcp_psh"),
               (ACK, "tcp_ack"), (URG, "tcp_urg"), (ECE, "tcp_ece"), (CWR, "tcp_cwr")]
_OPT_NAMES = {0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack", 8: "TS"}
_OPT_KINDS = {v: k for k, v in _OPT_NAMES.items()}


class MapError(ValueError):
    """An inbound segment cannot be mapped (packetdrill's "unable to infer live TS ecr")."""


def script_flags(text: str) -> int:
    f = 0
    for ch in text:
        f |= _FLAG_BITS.get(ch, 0)
    return f


def flag_text(flags: int) -> str:
    """Flags as packetdrill prints them (``S.``, ``P.``, ``F.``, ``R``, ``.``)."""
    out = "".join(ch for ch, bit in (("F", FIN), ("S", SYN), ("R", RST), ("P", PSH))
                  if flags & bit)
    out += "".join(ch for ch, bit in (("U", URG), ("E", ECE), ("W", CWR)) if flags & bit)
    if flags & ACK:
        out += "."
    return out or "-"


@dataclass
class Conn:
    """packetdrill's socket under test: its live 4-tuple and the numbers that map between
    script and live space."""

    local_ip: str
    remote_ip: str
    local_port: int | None = None
    remote_port: int | None = None
    state: str = "new"             # new, listening, passive_syn, synack_sent, connecting,
    #                                syn_sent (packetdrill's SOCKET_* states, abridged)
    remote_isn: int = 0            # script == live for the remote side
    script_local_isn: int = 0
    live_local_isn: int = 0
    ts_map: dict[int, int] = field(default_factory=dict)
    first_ts: tuple[int, int] | None = None   # (script val, live val) of the first TS seen

    def local_offset(self, syn: bool) -> int:
        """script -> live offset of our (rawtcp's) sequence space."""
        return (self.live_local_isn - self.script_local_isn) & MASK if syn \
            else self.live_local_isn

    def remote_offset(self, syn: bool) -> int:
        return 0 if syn else self.remote_isn

    def matches_out(self, src: str, sport: int, dst: str, dport: int) -> bool:
        return (src == self.local_ip and dst == self.remote_ip and sport == self.local_port
                and dport == self.remote_port)


def to_live(conn: Conn, p: ScriptPacket, tcp_ts_ecr_scaled: bool = False) -> Segment:
    """The inbound script segment as the live segment to inject."""
    flags = script_flags(p.flags)
    syn = bool(flags & SYN)
    seq = (p.seq_start + conn.remote_offset(syn)) & MASK
    aoff = conn.local_offset(syn)
    ack = ((p.ack or 0) + aoff) & MASK if flags & ACK else (p.ack or 0) & MASK
    mss = wscale = None
    sack_ok = False
    blocks: list[tuple[int, int]] = []
    ts = None
    for o in p.options or ():
        if o.kind == "mss":
            mss = o.values[0]
        elif o.kind == "wscale":
            wscale = o.values[0]
        elif o.kind == "sackOK":
            sack_ok = True
        elif o.kind == "sack":
            blocks += [((a + aoff) & MASK, (b + aoff) & MASK) for a, b in o.blocks]
        elif o.kind == "TS":
            val, ecr = o.values
            if flags & ACK:
                ecr = _live_ecr(conn, ecr, tcp_ts_ecr_scaled)
            ts = (val & MASK, ecr & MASK)
    opts = Options(mss, wscale, sack_ok, tuple(blocks), ts)
    return Segment(conn.remote_port or 0, conn.local_port or 0, seq, ack, flags,
                   p.win or 0, opts, bytes(p.length), p.urg or 0)


def _live_ecr(conn: Conn, ecr: int, scaled: bool) -> int:
    if ecr in conn.ts_map:
        return conn.ts_map[ecr]
    if scaled and conn.first_ts is not None:
        return (ecr - conn.first_ts[0] + conn.first_ts[1]) & MASK
    raise MapError(f"unable to infer live TS ecr for script TS ecr {ecr}; "
                   "no matching or preceding outbound TS val")


# ------------------------------------------------------------------------------ outbound
@dataclass
class Actual:
    """An outbound live segment in script space: what is compared and printed."""

    flags: int
    seq: int
    ack: int
    win: int
    urg: int
    length: int
    options: list[tuple[int, bytes]]   # (kind, data) in wire order, NOPs and EOLs included
    ts: tuple[int, int] | None          # (val in script space, ecr)

    def text(self) -> str:
        parts = [flag_text(self.flags), f"{self.seq}:{(self.seq + self.length) & MASK}"
                 f"({self.length})"]
        if self.flags & ACK:
            parts.append(f"ack {self.ack}")
        parts.append(f"win {self.win}")
        if self.flags & URG:
            parts.append(f"urg {self.urg}")
        if self.options:
            parts.append("<" + ",".join(_option_text(k, d, self.ts) for k, d in self.options)
                         + ">")
        return " ".join(parts)


def _option_text(kind: int, data: bytes, ts: tuple[int, int] | None) -> str:
    name = _OPT_NAMES.get(kind, f"opt{kind}")
    if kind == 2 and len(data) == 2:
        return f"mss {struct.unpack('!H', data)[0]}"
    if kind == 3 and len(data) == 1:
        return f"wscale {data[0]}"
    if kind == 8 and ts is not None:
        return f"TS val {ts[0]} ecr {ts[1]}"
    if kind == 5:
        edges = struct.unpack(f"!{len(data) // 4}I", data[: len(data) // 4 * 4])
        return "sack " + " ".join(f"{edges[i]}:{edges[i + 1]}" for i in range(0, len(edges) - 1, 2))
    return name


def wire_options(seg: Segment, src: str, dst: str) -> list[tuple[int, bytes]]:
    """The options of ``seg`` as rawtcp's codec puts them on the wire, in order."""
    raw = encode_tcp(seg.replace(payload=b""), src, dst)
    hlen = (raw[12] >> 4) * 4
    data = raw[20:hlen]
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        kind = data[i]
        if kind in (0, 1):
            out.append((kind, b""))
            i += 1
            if kind == 0:
                break
            continue
        n = data[i + 1] if i + 1 < len(data) else 2
        out.append((kind, bytes(data[i + 2: i + max(n, 2)])))
        i += max(n, 2)
    return out


def to_script(conn: Conn, seg: Segment, src: str, dst: str, script: ScriptPacket | None,
              learn_ts: bool = True) -> Actual:
    """Map a live outbound segment into script space (and learn its TS val mapping when the
    script packet carries a TS option too, as packetdrill does)."""
    syn = bool(seg.flags & SYN)
    seq = (seg.seq - conn.local_offset(syn)) & MASK
    ack = (seg.ack - conn.remote_offset(syn)) & MASK if seg.flags & ACK else seg.ack
    opts = wire_options(seg, src, dst)
    roff = conn.remote_offset(syn)
    mapped: list[tuple[int, bytes]] = []
    for kind, data in opts:
        if kind == 5:
            edges = struct.unpack(f"!{len(data) // 4}I", data[: len(data) // 4 * 4])
            data = struct.pack(f"!{len(edges)}I", *[(e - roff) & MASK for e in edges])
        mapped.append((kind, data))
    ts = None
    live_ts = seg.options.timestamps
    if live_ts is not None:
        val, ecr = live_ts
        sts = _script_ts(script)
        if sts is not None and learn_ts:
            conn.ts_map[sts[0]] = val
            if conn.first_ts is None:
                conn.first_ts = (sts[0], val)
        if conn.first_ts is not None:
            val = (conn.first_ts[0] + (val - conn.first_ts[1])) & MASK
        ts = (val, ecr)
    return Actual(seg.flags, seq, ack, seg.window, seg.urgent, len(seg.payload), mapped, ts)


def _script_ts(p: ScriptPacket | None) -> tuple[int, int] | None:
    if p is None or p.options is None:
        return None
    for o in p.options:
        if o.kind == "TS":
            return o.values[0], o.values[1]
    return None


def compare(p: ScriptPacket, a: Actual, ts_tick_usecs: int, tolerance_usecs: int) -> str | None:
    """What differs between the script's outbound packet and the actual one (packetdrill's
    wording), or None."""
    if p.length != a.length:     # packetdrill checks the IP length first
        return f"live packet payload: expected {p.length} bytes vs actual {a.length} bytes"
    want = script_flags(p.flags)
    for bit, name in _FLAG_NAMES:
        if (want & bit) != (a.flags & bit):
            return _field(name, int(bool(want & bit)), int(bool(a.flags & bit)))
    if p.seq_start & MASK != a.seq:
        return _field("tcp_seq", p.seq_start & MASK, a.seq)
    want_ack = (p.ack or 0) & MASK
    if want_ack != (a.ack & MASK):
        return _field("tcp_ack_seq", want_ack, a.ack & MASK)
    if p.win is not None and p.win != a.win:
        return _field("tcp_window", p.win, a.win)
    if (p.urg or 0) != (a.urg if a.flags & URG else 0):
        return _field("tcp_urg_ptr", p.urg or 0, a.urg)
    if p.options is not None:
        return _compare_options(p.options, a, ts_tick_usecs, tolerance_usecs)
    return None


def _field(name: str, expected: int, actual: int) -> str:
    return (f"live packet field {name}: expected: {expected} ({expected:#x}) vs actual: "
            f"{actual} ({actual:#x})")


def _compare_options(want: tuple[Option, ...], a: Actual, tick: int, tol: int) -> str | None:
    got = a.options
    if [_OPT_KINDS.get(o.kind, -1) for o in want] != [k for k, _ in got]:
        return "bad outbound TCP options"
    for o, (kind, data) in zip(want, got, strict=True):
        if o.kind == "TS":
            if tick and a.ts is not None:
                diff = (a.ts[0] - o.values[0]) & MASK
                diff = diff - (1 << 32) if diff >= 1 << 31 else diff
                if abs(diff) * tick > tol:
                    return f"bad outbound TCP timestamp value, tolerance {tol}"
            continue
        expect = _option_data(o)
        if expect is None:
            continue
        if len(expect) != len(data):
            return f"bad lengths for outbound TCP option {kind} ({o.kind})"
        if expect != data:
            return f"bad value outbound TCP option {kind} ({o.kind})"
    return None


def _option_data(o: Option) -> bytes | None:
    if o.kind == "mss":
        return struct.pack("!H", o.values[0])
    if o.kind == "wscale":
        return bytes([o.values[0]])
    if o.kind == "sack":
        return b"".join(struct.pack("!II", x & MASK, y & MASK) for x, y in o.blocks)
    if o.kind == "sackOK":
        return b""
    return None
