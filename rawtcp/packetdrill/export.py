"""A rawtcp trace of one connection as a packetdrill script (docs/packetdrill.md).

- :func:`export_trace`: **the peer's point of view**. The script's local stack is the peer, so
  rawtcp's segments are inbound ``<`` lines (as the peer received them) and the peer's are
  outbound ``>`` lines, with the peer application's calls: the real packetdrill replays it
  against Linux. Written from the peer's own events when the trace holds them (a Sim traces
  both stacks), else reconstructed from rawtcp's: the peer's clock is rawtcp's shifted by the
  one-way delay (default half the handshake round trip), made causally consistent.
- :func:`export_local`: **rawtcp's point of view** (its calls, its segments ``>``, the peer's
  ``<``), which ``rawtcp packetdrill`` replays against rawtcp: a round trip.

Segments come from ``seg`` events; numbers are written as packetdrill reads them (SYNs
``0:0(0)``, the rest relative to each side's ISN, SACK blocks too); options as rawtcp's codec
lays them out (Linux's order). ``fault`` events say what the link did to each segment (lost,
corrupted, delayed, duplicated, reordered), so each view shows what its side sent and got.
Socket calls are not in traces: they are inferred from the segments (accept when the
handshake completes, writes before new data, reads when bytes are in order, close or
shutdown before the FIN, SO_LINGER + close before an abort's reset).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from rawtcp.core.segment import Options, Segment
from rawtcp.packetdrill.export_read import (
    MASK,
    Event,
    ExportError,
    _Conn,
    _le,
    _lt,
    _read,
    _Seg,
)
from rawtcp.packetdrill.script import Option, Packet, Time, format_packet, format_time
from rawtcp.wire import encode_tcp

__all__ = ["ExportError", "export_local", "export_trace", "write_script"]


# packetdrill's default addresses (what the replay command in the header uses)
PD_V4 = ("192.168.0.1", "192.0.2.1", "--gateway_ip=192.168.0.1 --netmask_ip=255.255.0.0")
PD_V6 = ("fd3d:0a0b:17d6::1", "fd3d:fa7b:d17d::1", "--gateway_ip=fd3d:0a0b:17d6:8888::1 --mtu=1520")
REAL_TOLERANCE = 10_000   # us: timing slack of a script exported from a real-time run
WRITE_MAX = 65536   # the largest write the exporter infers (a replaying send buffer holds it)


def _flags_text(flags: int) -> str:
    out = "".join(ch for ch, bit in (("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08),
                                     ("U", 0x20), ("E", 0x40), ("W", 0x80)) if flags & bit)
    return out + "." if flags & 0x10 else out


def _options(s: _Seg, sack_base: int, src: str, dst: str) -> tuple[Option, ...] | None:
    """The segment's options as the codec lays them out, SACK blocks relative to sack_base."""
    if s.opts is None:
        return None
    o = s.opts
    if not o:
        return ()
    ts = tuple(o["ts"]) if o.get("ts") is not None else None
    blocks = tuple((int(a), int(b)) for a, b in o.get("sack") or ())
    opts = Options(o.get("mss"), o.get("wscale"), bool(o.get("sack_perm")), blocks, ts)
    raw = encode_tcp(Segment(1, 1, 0, 0, s.flags, 0, opts), src, dst)
    data = raw[20:(raw[12] >> 4) * 4]
    out: list[Option] = []
    i = 0
    while i < len(data):
        kind = data[i]
        if kind == 0:
            break
        if kind == 1:
            out.append(Option("nop"))
            i += 1
            continue
        n = max(2, data[i + 1])
        body = bytes(data[i + 2:i + n])
        if kind == 2:
            out.append(Option("mss", (int.from_bytes(body, "big"),)))
        elif kind == 3:
            out.append(Option("wscale", (body[0],)))
        elif kind == 4:
            out.append(Option("sackOK"))
        elif kind == 5:
            edges = [int.from_bytes(body[j:j + 4], "big") for j in range(0, len(body), 4)]
            out.append(Option("sack", (), tuple(((edges[j] - sack_base) & MASK,
                                                 (edges[j + 1] - sack_base) & MASK)
                                                for j in range(0, len(edges) - 1, 2))))
        elif kind == 8 and ts is not None:
            out.append(Option("TS", (int(ts[0]), int(ts[1]))))
        i += n
    return tuple(out)


def _packet(c: _Conn, s: _Seg, direction: str, with_win: bool) -> Packet:
    """The segment as a script line (time filled in later)."""
    base, other = (c.iss, c.irs) if s.ours else (c.irs, c.iss)
    syn = bool(s.flags & 0x02)
    seq = 0 if syn else (s.seq - base) & MASK
    ack = (s.ack - other) & MASK if s.flags & 0x10 else None
    src, dst = (c.local[0], c.remote[0]) if s.ours else (c.remote[0], c.local[0])
    return Packet(0, Time("relative", 0), direction, _flags_text(s.flags), seq,
                  (seq + s.length) & MASK, s.length, ack, s.win if with_win else None,
                  _options(s, other, src, dst), s.urp if s.flags & 0x20 else None)


@dataclass
class _Line:
    unit: int            # the segment line this line belongs to; -1: the opening calls
    sub: int             # -1 before its segment, 0 the segment, 1 after it
    n: int               # insertion order
    text: str            # a call (without its time)
    packet: Packet | None = None


class _Builder:
    """Lines grouped in units: one segment with the calls made just before or after it."""

    def __init__(self, t0: int) -> None:
        self.t0 = t0
        self.lines: list[_Line] = []
        self.units: list[tuple[int, _Seg, bool]] = []     # (time, segment, inbound)
        self.unit_of: dict[tuple[int, int], int] = {}     # (segment idx, time) -> unit
        self.orders: list[float] = []                      # unit -> place at equal times

    def packet(self, t: int, s: _Seg, p: Packet, order: float | None = None) -> None:
        """A segment line at ``t``; ``order``: its place among lines at the same time (by
        default the segment's place in the trace)."""
        self.unit_of.setdefault((s.idx, t), len(self.units))
        self.lines.append(_Line(len(self.units), 0, len(self.lines), "", p))
        self.units.append((t, s, p.direction == "<"))
        self.orders.append(s.idx if order is None else order)

    def call(self, at: tuple[int, _Seg] | None, sub: int, text: str) -> _Line:
        unit = -1 if at is None else self.unit_of[(at[1].idx, at[0])]
        ln = _Line(unit, sub, len(self.lines), text)
        self.lines.append(ln)
        return ln

    def render(self, causal: bool) -> list[str]:
        """The script lines. Units are in time order; at the same time in trace order, or,
        when ``causal`` (a peer's clock reconstructed from one side's trace), each outbound
        unit after the inbound ones it shows it has seen (it acknowledges them)."""
        by_unit: dict[int, list[_Line]] = {}
        for ln in self.lines:
            by_unit.setdefault(ln.unit, []).append(ln)
        order = sorted(range(len(self.units)), key=lambda u: (self.units[u][0],
                                                              self.orders[u], u))
        if causal:
            order = self._causal(order)
        timed = [(self.t0, ln) for ln in sorted(by_unit.get(-1, []), key=lambda x: x.n)]
        for u in order:
            t = self.units[u][0]
            timed += [(t, ln) for ln in sorted(by_unit.get(u, []), key=lambda x: (x.sub, x.n))]
        out: list[str] = []
        prev: int | None = None
        for t, ln in timed:
            when = Time("absolute", 0) if prev is None else Time("relative", t - prev)
            prev = t
            if ln.packet is not None:
                out.append(_indent(format_packet(replace(ln.packet, time=when))))
            else:
                out.append(_indent(f"{format_time(when)} {ln.text}"))
        return out

    def _rel(self, s: _Seg) -> int:
        """Sequence number relative to the first segment of the same sender."""
        first = next(x for _, x, _ in self.units if x.ours == s.ours)
        return (s.seq - first.seq) & MASK

    def _send_order(self, outs: list[int]) -> list[int]:
        """The peer's segments sent at one instant: in the order rawtcp received them (a
        FIFO link keeps it); one whose arrival says nothing of that order (lost, delayed or
        reordered by the link) goes before the first of them with a later sequence number."""
        def odd(u: int) -> bool:      # a fault stamped by rawtcp on arrival keeps its place
            s = self.units[u][1]
            return s.peer_clock or bool(s.held_us) or s.sent_t is not None

        out = [u for u in outs if not odd(u)]
        for u in sorted((u for u in outs if odd(u)), key=lambda u: self._rel(self.units[u][1])):
            rel = self._rel(self.units[u][1])
            at = next((i for i, v in enumerate(out) if self._rel(self.units[v][1]) > rel),
                      len(out))
            out.insert(at, u)
        return out

    def _causal(self, order: list[int]) -> list[int]:
        out: list[int] = []
        i = 0
        while i < len(order):
            j = i
            while j < len(order) and self.units[order[j]][0] == self.units[order[i]][0]:
                j += 1
            group = order[i:j]
            ins = [u for u in group if self.units[u][2]]
            outs = self._send_order([u for u in group if not self.units[u][2]])
            k = 0
            for u in outs:
                s = self.units[u][1]
                need = max((n for n, r in enumerate(ins) if _seen(s, self.units[r][1])),
                           default=-1)
                while k <= need:
                    out.append(ins[k])
                    k += 1
                out.append(u)
            out += ins[k:]
            i = j
        return out


def _seen(s: _Seg, r: _Seg) -> bool:
    """Whether segment ``s`` (sent at the time ``r`` arrived) shows it was sent after ``r``
    arrived: it acknowledges (or SACKs) r's first byte; a segment without sequence space
    (a pure ACK) counts as seen."""
    span = r.length + bool(r.flags & 0x02) + bool(r.flags & 0x01)
    if not span:
        return True
    if s.flags & 0x10 and _lt(r.seq, s.ack):
        return True
    return any(_le(int(a), r.seq) and _lt(r.seq, int(b))
               for a, b in (s.opts or {}).get("sack") or ())


def _indent(line: str) -> str:
    when, _, rest = line.partition(" ")
    return f"{when:>9} {rest}"


class _Stream:
    """One direction's bytes as the receiver gets them: in order (for reads)."""

    def __init__(self, isn: int) -> None:
        self.nxt = (isn + 1) & MASK
        self.pending: list[tuple[int, int]] = []    # (start, end) absolute, out of order
        self.fin_at: int | None = None               # sequence number of the FIN
        self.fin_done = False

    def add(self, seq: int, length: int, fin: bool) -> tuple[int, bool]:
        """A segment arrives: (new in-order bytes, FIN now in order)."""
        if length:
            self.pending.append((seq, (seq + length) & MASK))
        if fin:
            self.fin_at = (seq + length) & MASK
        got = 0
        moved = True
        while moved:
            moved = False
            for a, b in list(self.pending):
                if _le(a, self.nxt) and _lt(self.nxt, b):
                    got += (b - self.nxt) & MASK
                    self.nxt = b
                    moved = True
                if not _lt(self.nxt, b):
                    self.pending.remove((a, b))
        fin_now = False
        if self.fin_at is not None and not self.fin_done and self.nxt == self.fin_at:
            self.fin_done = fin_now = True
        return got, fin_now


def _apps(c: _Conn, b: _Builder, fd: int, mine: bool,
          sent: list[tuple[int, _Seg]], got: list[tuple[int, _Seg]]) -> None:
    """The calls of one side's application: ``sent`` are its segments with the times it sent
    them, ``got`` the other side's segments with the times this side received them."""
    isn, other_isn = (c.iss, c.irs) if mine else (c.irs, c.iss)
    fin: tuple[int, _Seg] | None = None
    # at one instant a sender sends new data in sequence order (a segment the link delayed
    # or lost has no exact place in the receiver's trace)
    sent = sorted(sent, key=lambda x: (x[0], (x[1].seq - isn) & MASK, x[1].idx))
    fresh: list[tuple[int, _Seg, int]] = []     # segments carrying new data, with their end
    top = (isn + 1) & MASK
    for t, s in sent:
        end = (s.seq + s.length) & MASK
        if s.length and _lt(top, end):
            fresh.append((t, s, end))
            top = end
        if s.flags & 0x01 and fin is None:
            fin = (t, s)
    # A write covers what was sent then and what stayed queued behind it: up to the end of
    # the next segment with PSH (rawtcp and Linux push the segment that empties the send
    # buffer), at most WRITE_MAX bytes; data beyond it needs another write.
    covered = (isn + 1) & MASK
    last_write: tuple[int, _Line] | None = None
    writes: list[tuple[int, _Seg, int]] = []     # (time, first segment, end covered)
    for i, (t, s, end) in enumerate(fresh):
        if not _lt(covered, end):
            continue
        push = next((e for _, x, e in fresh[i:] if x.flags & 0x09), fresh[-1][2])
        target = push if ((push - covered) & MASK) <= WRITE_MAX else (covered + WRITE_MAX) & MASK
        if not _lt(covered, target):
            target = end
        n = (target - covered) & MASK
        if last_write is not None and last_write[0] == t:
            n += int(last_write[1].text.rsplit("= ", 1)[-1])
            last_write[1].text = f"write({fd}, ..., {n}) = {n}"
        else:
            at, sub = _write_anchor(c, t, s, sent, got) if mine else (s, -1)
            last_write = (t, b.call((t, at), sub, f"write({fd}, ..., {n}) = {n}"))
        covered = target
        writes.append((t, s, target))
    close_at = fin
    if fin is not None and fin[1].length:
        # a FIN on a data segment: the close came while that data was still queued, so
        # right after the write that queued its last byte (as late as the trace allows)
        close_at = next(((t, s) for t, s, e in writes
                         if _le((fin[1].seq + fin[1].length) & MASK, e)), fin)
    rst = next(((t, s) for t, s in sent if s.flags & 0x04), None)
    stream = _Stream(other_isn)
    other_fin: tuple[int, _Seg] | None = None
    last_read: tuple[int, float] | None = None
    for t, s in sorted(got, key=lambda x: (x[0], x[1].arrival_idx or x[1].idx)):
        if s.flags & (0x02 | 0x04):
            continue
        n, fin_now = stream.add(s.seq, s.length, bool(s.flags & 0x01))
        if n and (rst is None or t < rst[0]) and not _unread_close(c, mine, t):
            b.call((t, s), 1, f"read({fd}, ..., {n}) = {n}")
            last_read = (t, s.arrival_idx or s.idx)
        if fin_now:
            other_fin = (t, s)
    if fin is not None and close_at is not None:
        # data from the other side beyond what our FIN acknowledged arrived after it: the
        # FIN came from shutdown(SHUT_WR), the socket stayed open for reading
        if (fin[1].flags & 0x10 and _lt(fin[1].ack, stream.nxt)) or (
                last_read is not None and last_read > (close_at[0], close_at[1].idx)):
            b.call(close_at, -1, f"shutdown({fd}, SHUT_WR) = 0")
            if other_fin is not None and other_fin[0] >= fin[0]:
                b.call(other_fin, 1, f"close({fd}) = 0")
        else:
            b.call(close_at, -1, f"close({fd}) = 0")
    elif rst is not None and mine and c.closes:
        if any(r == "abort" for _, r in c.closes):      # SO_LINGER {1, 0}: close() resets
            b.call(rst, -1, f"setsockopt({fd}, SOL_SOCKET, SO_LINGER, "
                            "{l_onoff=1, l_linger=0}, 8) = 0")
        b.call(rst, -1, f"close({fd}) = 0")


def _write_anchor(c: _Conn, t: int, s: _Seg, sent: list[tuple[int, _Seg]],
                  got: list[tuple[int, _Seg]]) -> tuple[_Seg, int]:
    """Where a write that fed segment ``s`` goes (the segment, and before: -1): before the
    burst ``s`` belongs to (sent at one instant, nothing received in between); and before the
    segments received at that instant just ahead of the burst when the sender had been
    stopped by the peer's window (a real-time application writes while the stack is busy,
    and the window decides when the data leaves)."""
    first = s
    for _, x in reversed([p for p in sent if p[0] == t and p[1].idx < s.idx]):
        if any(t3 == t and x.idx < y.idx < first.idx for t3, y in got):
            break
        first = x
    before = [x for _, x in sent if x.idx < first.idx]
    run = [y for t3, y in got if t3 == t and y.idx < first.idx
           and (not before or y.idx > before[-1].idx)]
    data = [x for x in before if x.length]
    if not run or not data:
        return first, -1
    prev = data[-1]
    acks = [y for _, y in got if y.idx < prev.idx and y.flags & 0x10]
    if not acks:
        return first, -1
    syns = [x for x in c.segs if x.flags & 0x02]
    scaled = all((x.opts or {}).get("wscale") is not None for x in syns[:2]) and len(syns) >= 2
    peer_syn = next((x for x in syns if not x.ours), None)
    shift = int((peer_syn.opts or {}).get("wscale") or 0) if scaled and peer_syn else 0
    edge = (acks[-1].ack + (acks[-1].win << shift)) & MASK
    if _le(edge, (prev.seq + prev.length) & MASK):
        return run[0], -1
    return first, -1


def _unread_close(c: _Conn, mine: bool, t: int) -> bool:
    """rawtcp closed with unread data at or after ``t``: these bytes were never read."""
    return mine and any(r == "close with unread data" and ct >= t for ct, r in c.closes)


def _open_calls(b: _Builder, accept_at: tuple[int, _Seg] | None,
                syn_at: tuple[int, _Seg] | None, listener: bool) -> int:
    """socket/bind/listen/accept or socket/connect; returns the connection's fd."""
    b.call(None, 0, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    if listener:
        b.call(None, 0, "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0")
        b.call(None, 0, "bind(3, ..., ...) = 0")
        b.call(None, 0, "listen(3, 1) = 0")
        if accept_at is not None:
            b.call(accept_at, 1, "accept(3, ..., ...) = 4")
        return 4
    b.call(None, 0, "fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0")
    if syn_at is None:
        b.call(None, 0, "connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    else:
        b.call(syn_at, -1, "connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    return 3


def _established_at(received: list[tuple[int, _Seg]],
                    listener_isn: int) -> tuple[int, _Seg] | None:
    """When the listening side got the first segment acknowledging its SYN-ACK."""
    for t, s in sorted(received, key=lambda x: (x[0], x[1].idx)):
        if s.flags & 0x10 and not s.flags & (0x02 | 0x04) \
                and _le((listener_isn + 1) & MASK, s.ack):
            return t, s
    return None


def _header(c: _Conn, view: str, title: str | None, extra: list[str],
            peer_view: bool = False, flipped: bool = False) -> list[str]:
    """``c`` is the connection from the side of the script's local stack, or from the other
    side when ``flipped``."""
    v6 = ipaddress.ip_address(c.local[0]).version == 6
    lip, rip, more = PD_V6 if v6 else PD_V4
    who = "the peer" if peer_view else "rawtcp"
    near, far = (c.remote, c.local) if flipped else (c.local, c.remote)
    role = "connected" if c.active != flipped else "accepted"
    lines = [
        f"// {title}" if title else "// rawtcp trace exported as a packetdrill script",
        f"// Connection {near[0]}:{near[1]} > {far[0]}:{far[1]} "
        f"({who} {role}), exported by rawtcp.packetdrill.export.{view}.",
    ]
    lines += extra
    if peer_view:
        lines += [
            "// `>` options are the original peer's: a replaying kernel must use the same "
            "settings (MSS, wscale,",
            "// SACK, timestamps), or relax the SYN lines to <...> when timestamps are off.",
        ]
    return lines + [
        "// Replay with the real packetdrill against Linux (as root, in a scratch network "
        "namespace):",
        f"//   packetdrill --ip_version={'ipv6' if v6 else 'ipv4'} --local_ip={lip} "
        f"--remote_ip={rip} {more} --tolerance_usecs=20000 FILE.pkt",
        "// Replay against rawtcp (virtual clock, no root): rawtcp packetdrill FILE.pkt",
        "",
    ]


def _local_lines(c: _Conn) -> list[str]:
    """The connection as its traced side saw it: its segments ``>``, the other's ``<``."""
    # a reset from an abort after the application had closed (the stack being shut down)
    # has no call that would make it: left out, said in a comment
    aborts = [t for t, r in c.closes if r == "abort"
              and any(r2.startswith("close") and t2 <= t for t2, r2 in c.closes)]
    teardown = [s for s in c.segs if s.ours and s.flags & 0x04 and s.t in aborts]
    sent = [(s.t, s) for s in c.segs if s.ours and s not in teardown]
    got = [(s.t, s) for s in c.segs if not s.ours and s.seen_by_rawtcp]
    b = _Builder(min(t for t, _ in sent + got))
    for t, s in sorted(sent + got, key=lambda x: (x[0], x[1].idx)):
        b.packet(t, s, _packet(c, s, ">" if s.ours else "<", not s.ours))
    listener = not c.active
    acc = _established_at(got, c.iss) if listener else None
    syn = next(((t, s) for t, s in sent if s.flags & 0x02), None)
    fd = _open_calls(b, acc, syn, listener)
    _apps(c, b, fd, True, sent, got)
    lines = b.render(causal=False)
    if teardown:
        lines.append("// (then rawtcp's stack was shut down: it reset the connection, "
                     "which no socket call can ask for)")
    return lines


def _peer_trace(events: list[Event], ours: str | None, conn: str | None) -> _Conn | None:
    """The peer's own record of the connection when the trace holds it (a Sim traces both
    stacks): read from the other stack's events, the connection seen from its side."""
    stacks = {str(e["stack"]) for e in events if "stack" in e}
    if ours is None or len(stacks) != 2 or ours not in stacks:
        return None
    mine = _read(events, ours, conn, 0)
    other = (stacks - {ours}).pop()
    back = f"{mine.remote[0]}:{mine.remote[1]}>{mine.local[0]}:{mine.local[1]}"
    try:
        return _read(events, other, back, 0)
    except ExportError:
        return None


def _span(s: _Seg) -> int:
    return s.length + bool(s.flags & 0x02) + bool(s.flags & 0x01)


def _latest_acked(by: _Seg, segs: list[tuple[int, _Seg]], limit: int = 64) -> int:
    """The latest time in ``segs`` (sorted by trace position) of a segment before ``by`` in
    the trace whose first sequence number ``by`` acknowledges or SACKs (of several copies of
    one segment, the first); -1 when none."""
    if not by.flags & 0x10:
        return -1
    ack, before = by.ack, by.idx
    blocks = [(int(a), int(b)) for a, b in (by.opts or {}).get("sack") or ()]
    lo, hi = 0, len(segs)
    while lo < hi:                      # segs before the given trace position
        mid = (lo + hi) // 2
        if segs[mid][1].idx < before:
            lo = mid + 1
        else:
            hi = mid
    # a segment that arrived twice (a retransmission, a duplicate) was acknowledged by its
    # first copy: the earliest time per sequence number counts, then the latest of those
    first: dict[int, int] = {}
    for t, x in reversed(segs[max(0, lo - limit):lo]):
        if _span(x) and (_lt(x.seq, ack) or any(_le(a, x.seq) and _lt(x.seq, b)
                                                 for a, b in blocks)):
            first[x.seq] = min(t, first.get(x.seq, t))
    return max(first.values(), default=-1)


def _causal_times(inbound: list[tuple[int, _Seg]], outbound: list[tuple[int, _Seg]]
                  ) -> tuple[list[tuple[int, _Seg]], list[tuple[int, _Seg]]]:
    """The peer's clock reconstructed with one delay is only an estimate (round trips vary on
    a real link): make it consistent. A segment that acknowledges another's first byte was
    sent after that one arrived; the peer's segments leave in the order rawtcp received them
    (FIFO); a changed time only ever moves later."""
    ins = sorted(inbound, key=lambda x: (x[1].idx, x[0]))
    outs = sorted(outbound, key=lambda x: x[1].idx)
    for _ in range(3):
        changed = False
        prev = None
        new_outs = []
        for t, s in outs:
            need = _latest_acked(s, ins)
            odd = s.peer_clock or s.held_us or s.sent_t is not None
            if prev is not None and not odd:
                need = max(need, prev)
            if need > t:
                t, changed = need, True
            if not odd:
                prev = t
            new_outs.append((t, s))
        outs = new_outs
        new_ins = []
        for t, s in ins:
            need = _latest_acked(s, outs)
            if need > t:
                t, changed = need, True
            new_ins.append((t, s))
        ins = new_ins
        if not changed:
            break
    return ins, outs


def export_trace(events: Iterable[Event], *, ours: str | None = None, conn: str | None = None,
                 delay_us: int | None = None, title: str | None = None) -> str:
    """The connection as a packetdrill script from the **peer's** point of view.

    ``events``: trace events (a ``--trace`` file read with :func:`rawtcp.trace.read_trace`, or
    ``Tracer.events()``). ``ours``: the ``stack`` label of rawtcp's events when the trace
    holds several stacks (``"a"`` for :class:`rawtcp.sim.Sim`'s a); ``conn``:
    ``"laddr:lport>raddr:rport"`` from rawtcp's side (default: the first connection with a
    SYN); ``delay_us``: the one-way delay (default: half the handshake round trip).

    When the trace also holds the peer's own events (both stacks of a Sim), the script is
    written from them; otherwise the peer's side is reconstructed from rawtcp's record.
    Raises :class:`ExportError` when the trace has no exportable connection."""
    events = [e for e in events if isinstance(e, dict)]
    peer = _peer_trace(events, ours, conn)
    if peer is not None:
        extra = [
            "// The PEER's point of view, from the peer's own trace events: the local stack "
            "is the peer; `<` lines",
            "// are rawtcp's segments as the peer received them, `>` lines the peer's "
            "segments; socket calls are inferred.",
        ]
        return "\n".join(_header(peer, "export_trace", title, extra, peer_view=True)
                         + _local_lines(peer)) + "\n"
    c = _read(events, ours, conn, delay_us)
    inbound: list[tuple[int, _Seg]] = []       # rawtcp's, as the peer got them
    outbound: list[tuple[int, _Seg]] = []      # the peer's, when it sent them
    for s in c.segs:
        if s.ours:
            inbound += [(at, s) for at in s.arrivals]
        else:
            if s.copy:
                continue
            if s.sent_t is not None:
                at = s.sent_t[0] if s.sent_t[1] else s.sent_t[0] - c.delay
            else:
                at = s.t if s.peer_clock else s.t - c.delay - s.held_us
            outbound.append((at, s))
    inbound, outbound = _causal_times(inbound, outbound)
    b = _Builder(min(t for t, _ in inbound + outbound))
    for t, s in sorted(inbound + outbound, key=lambda x: (x[0], x[1].idx)):
        b.packet(t, s, _packet(c, s, "<" if s.ours else ">", s.ours),
                 s.arrival_idx if s.ours else None)
    listener = c.active          # rawtcp connected: the peer listened
    acc = _established_at(inbound, c.irs) if listener else None
    syn = next(((t, s) for t, s in sorted(outbound, key=lambda x: (x[0], x[1].idx))
                if s.flags & 0x02), None)
    fd = _open_calls(b, acc, syn, listener)
    _apps(c, b, fd, False, outbound, inbound)
    lost = sum(1 for s in c.segs if s.ours and not s.arrivals)
    extra = [
        "// The PEER's point of view, reconstructed from rawtcp's trace: the local stack is the "
        "peer; `<` lines",
        f"// are rawtcp's segments as the peer received them ({lost} lost on the way left "
        "out), `>` lines the peer's",
        f"// segments; the peer's clock is rawtcp's shifted by a one-way delay of {c.delay} us; "
        "socket calls are inferred.",
    ]
    return "\n".join(_header(c, "export_trace", title, extra, peer_view=True, flipped=True)
                     + b.render(causal=True)) + "\n"


def export_local(events: Iterable[Event], *, ours: str | None = None, conn: str | None = None,
                 title: str | None = None, tolerance_usecs: int | None = None) -> str:
    """The connection as a packetdrill script from **rawtcp's** point of view: rawtcp's
    inferred calls, its segments as ``>`` (windows not checked, options exact), the peer's
    segments it received as ``<``, on rawtcp's clock. ``rawtcp packetdrill`` replays it
    against rawtcp. Arguments as :func:`export_trace`; ``tolerance_usecs`` goes into the
    header (default: none for a simulated run, :data:`REAL_TOLERANCE` for a run on a real link,
    whose timers fire a little late)."""
    events = [e for e in events if isinstance(e, dict)]
    c = _read(events, ours, conn, 0)
    if tolerance_usecs is None and not any("stack" in e for e in events):
        tolerance_usecs = REAL_TOLERANCE
    extra = [
        "// rawtcp's point of view: `>` lines are rawtcp's segments (windows not checked), "
        "`<` lines the",
        "// peer's segments rawtcp received, on rawtcp's clock; socket calls are inferred.",
    ]
    head = _header(c, "export_local", title, extra)
    if tolerance_usecs is not None:
        head.append(f"--tolerance_usecs={int(tolerance_usecs)}")
    return "\n".join(head + _local_lines(c)) + "\n"


def write_script(path: str, events: Iterable[Event], *, view: str = "peer", **kw: Any) -> str:
    """Export and write to ``path`` (``view`` "peer" or "local"); returns the text."""
    if view not in ("peer", "local"):
        raise ValueError(f"view must be 'peer' or 'local', not {view!r}")
    text = export_trace(events, **kw) if view == "peer" else export_local(events, **kw)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text
