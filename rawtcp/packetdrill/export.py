"""A rawtcp trace of one connection as a packetdrill script.

Two views of the same run:

- :func:`export_trace` writes it **from the peer's point of view**: the script's local stack is
  the peer (the kernel rawtcp talked to), so rawtcp's segments become inbound ``<`` lines (as
  the peer received them) and the peer's segments outbound ``>`` lines, with the socket calls
  the peer's application made. The real packetdrill replays it against Linux; ``rawtcp
  packetdrill`` replays it against rawtcp in the peer's role.
- :func:`export_local` writes it **from rawtcp's point of view**: rawtcp's calls, its segments
  as ``>``, the peer's as ``<``, so ``rawtcp packetdrill`` can check that rawtcp still does what
  it did (a round trip).

What the trace gives and what is inferred
-----------------------------------------
Segments come from ``seg`` events (both directions, absolute numbers; options as
``Options.to_dict()``). Sequence numbers are written relative to each side's ISN as packetdrill
reads them (SYNs ``0:0(0)``); SACK blocks relative to the ISN of the side whose data they cover.
Options are laid out as rawtcp's codec puts them on the wire (Linux's order, NOPs included).

Faults (``fault`` events) say what the link did: a rawtcp segment dropped or corrupted on the
way out never reaches the peer (no ``<`` line in the peer's view, still a ``>`` line in
rawtcp's); a delayed one arrives later; a duplicated one arrives more than once; a reordered
one arrives when its ``fault_release`` says. A peer segment dropped before rawtcp saw it is a
``>`` line in the peer's view (options unknown: ``<...>``) and absent from rawtcp's.

Times: rawtcp's clock in rawtcp's view. The peer's clock is shifted by the one-way delay
``delay_us`` (default: half the handshake round trip seen in the trace): rawtcp's segment sent
at *t* reaches the peer at *t + delay*, the peer's segment seen at *t* left it at *t - delay*.

Socket calls are not in traces; they are inferred from the segments: ``accept`` when the
handshake completes, ``write`` of the new bytes before the segment that first carries them,
``read`` of every byte as soon as it is in order, ``close`` before the FIN (``shutdown(SHUT_WR)``
when data still flows towards that side after its FIN, then ``close`` after the other FIN), a
``close`` before a reset of a connection that had unread data.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from rawtcp.core.segment import Options, Segment, parse_flags
from rawtcp.packetdrill.script import Option, Packet, Time, format_packet, format_time
from rawtcp.wire import encode_tcp

__all__ = ["ExportError", "export_local", "export_trace", "write_script"]

MASK = 0xFFFFFFFF
Event = dict[str, Any]

# packetdrill's default addresses (what the replay command in the header uses)
PD_V4 = ("192.168.0.1", "192.0.2.1", "--gateway_ip=192.168.0.1 --netmask_ip=255.255.0.0")
PD_V6 = ("fd3d:0a0b:17d6::1", "fd3d:fa7b:d17d::1", "--gateway_ip=fd3d:0a0b:17d6:8888::1 --mtu=1520")

_ORDER_SETUP, _ORDER_IN, _ORDER_CALL, _ORDER_OUT = -1, 0, 1, 2


class ExportError(ValueError):
    """The trace holds no connection that can be exported (says why)."""


@dataclass
class _Seg:
    """One transmission of a segment, on the link between rawtcp and the peer."""

    t: int                       # when the sender sent it (sender's view, rawtcp's clock)
    ours: bool                   # sent by rawtcp
    flags: int
    seq: int
    ack: int
    win: int
    length: int
    opts: dict | None            # None: unknown (a peer segment dropped before rawtcp)
    urp: int = 0
    seen_by_rawtcp: bool = True  # the peer's: rawtcp received it; ours: always True
    arrivals: list[int] = field(default_factory=list)  # ours: when the peer got each copy


@dataclass
class _Conn:
    local: tuple[str, int]
    remote: tuple[str, int]
    active: bool                 # rawtcp connected (else it accepted)
    iss: int
    irs: int
    segs: list[_Seg]
    delay: int
    closes: list[tuple[int, str]]   # rawtcp's state changes caused by its app: (t, reason)


# ------------------------------------------------------------------------------ reading
def _select(events: Iterable[Event], ours: str | None) -> list[Event]:
    evs = [e for e in events if isinstance(e, dict)]
    stacks = sorted({str(e["stack"]) for e in evs if "stack" in e})
    if ours is None:
        if len(stacks) > 1:
            raise ExportError(f"the trace holds the stacks {', '.join(stacks)}: say which is "
                              "rawtcp's with ours=")
        return evs
    if ours not in stacks:
        raise ExportError(f"no events of stack {ours!r} in the trace "
                          f"(stacks: {', '.join(stacks) or 'none named'})")
    return [e for e in evs if e.get("stack") == ours]


def _tuple_of(e: Event) -> tuple[tuple[str, int], tuple[str, int]]:
    """(rawtcp's side, the peer's side) of a seg/fault event."""
    src, dst = (str(e["src"]), int(e["sport"])), (str(e["dst"]), int(e["dport"]))
    return (src, dst) if e["dir"] == "out" else (dst, src)


def _parse_conn(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    try:
        a, b = text.split(">")
        la, lp = a.rsplit(":", 1)
        ra, rp = b.rsplit(":", 1)
        return (la.strip("[]"), int(lp)), (ra.strip("[]"), int(rp))
    except ValueError:
        raise ExportError(f"conn {text!r} is not 'laddr:lport>raddr:rport'") from None


def _read(events: Iterable[Event], ours: str | None, conn: str | None,
          delay_us: int | None) -> _Conn:
    evs = _select(events, ours)
    segs_ev = [e for e in evs if e.get("ev") == "seg" and "src" in e]
    if conn is not None:
        want = _parse_conn(conn)
    else:
        first = next((e for e in segs_ev if "S" in str(e.get("flags", ""))), None)
        if first is None:
            raise ExportError("the trace holds no SYN segment: export needs the handshake")
        want = _tuple_of(first)
    mine = [e for e in evs if e.get("ev") in ("seg", "fault", "fault_release")
            and "src" in e and _tuple_of(e) == want]
    segs: list[_Seg] = []
    last_out: dict[tuple, _Seg] = {}
    for e in mine:
        key = (int(e["seq"]), int(e["ack"]), str(e["flags"]), int(e["len"]))
        if e["ev"] == "seg":
            s = _Seg(int(e["t"]), e["dir"] == "out", int(parse_flags(str(e["flags"]))),
                     int(e["seq"]), int(e["ack"]), int(e["win"]), int(e["len"]),
                     e.get("opts") or {}, int(e.get("urp") or 0))
            segs.append(s)
            if s.ours:
                s.arrivals = [s.t]          # shifted by the delay below
                last_out[key] = s
        elif e["dir"] == "out":
            s = last_out.get(key)
            if s is not None:
                _apply_fault(s, e)
        elif e["ev"] == "fault" and e.get("action") in ("drop", "corrupt"):
            segs.append(_Seg(int(e["t"]), False, int(parse_flags(str(e["flags"]))),
                             int(e["seq"]), int(e["ack"]), int(e["win"]), int(e["len"]),
                             None, seen_by_rawtcp=False))
    ours_syn = next((s for s in segs if s.ours and s.flags & 0x02), None)
    peer_syn = next((s for s in segs if not s.ours and s.flags & 0x02), None)
    if ours_syn is None or peer_syn is None:
        raise ExportError("the trace does not hold both SYNs of the connection "
                          f"{want[0][0]}:{want[0][1]}>{want[1][0]}:{want[1][1]}")
    active = not ours_syn.flags & 0x10
    delay = _handshake_delay(segs, active) if delay_us is None else int(delay_us)
    for s in segs:
        if s.ours:
            s.arrivals = [a + delay for a in s.arrivals]
    conn_text = f"{want[0][0]}:{want[0][1]}>{want[1][0]}:{want[1][1]}"
    closes = [(int(e["t"]), str(e.get("reason", ""))) for e in evs
              if e.get("ev") == "state" and e.get("conn") == conn_text
              and str(e.get("reason", "")).startswith(("close", "abort"))]
    return _Conn(want[0], want[1], active, ours_syn.seq, peer_syn.seq, segs, delay, closes)


def _apply_fault(s: _Seg, e: Event) -> None:
    """What the link did to rawtcp's segment ``s`` on its way to the peer."""
    action = e.get("action")
    if e["ev"] == "fault_release":       # a reordered copy goes on when released
        s.arrivals = [int(e["t"])] * max(1, len(s.arrivals))
    elif action in ("drop", "corrupt"):
        s.arrivals = []
    elif action == "delay":
        s.arrivals = [a + int(float(e.get("ms", 0)) * 1000) for a in s.arrivals]
    elif action == "duplicate":
        s.arrivals = s.arrivals + s.arrivals[:1] * int(e.get("copies", 1))


def _handshake_delay(segs: list[_Seg], active: bool) -> int:
    """Half the round trip of the handshake's last exchange, as rawtcp saw it."""
    if active:           # our SYN ... their SYN-ACK
        reply = next((s for s in segs if not s.ours and s.seen_by_rawtcp and s.flags & 0x02), None)
        asks = [s for s in segs if s.ours and s.flags & 0x02]
    else:                # our SYN-ACK ... their first segment acknowledging it
        asks = [s for s in segs if s.ours and s.flags & 0x02]
        reply = next((s for s in segs if not s.ours and s.seen_by_rawtcp and s.flags & 0x10
                      and not s.flags & 0x02 and asks and s.t >= asks[0].t), None)
    if reply is None:
        return 0
    before = [s.t for s in asks if s.t <= reply.t]
    return (reply.t - before[-1]) // 2 if before else 0


# ------------------------------------------------------------------------------ writing
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
    t: int
    order: int
    n: int
    text: str            # the event without its time
    packet: Packet | None = None


class _Builder:
    def __init__(self) -> None:
        self.lines: list[_Line] = []

    def add(self, t: int, order: int, text: str, packet: Packet | None = None) -> None:
        self.lines.append(_Line(t, order, len(self.lines), text, packet))

    def render(self) -> list[str]:
        out: list[str] = []
        prev: int | None = None
        for ln in sorted(self.lines, key=lambda x: (x.t, x.order, x.n)):
            when = Time("absolute", 0) if prev is None else Time("relative", ln.t - prev)
            prev = ln.t
            if ln.packet is not None:
                out.append(_indent(format_packet(replace(ln.packet, time=when))))
            else:
                out.append(_indent(f"{format_time(when)} {ln.text}"))
        return out


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


def _lt(a: int, b: int) -> bool:
    return 0 < ((b - a) & MASK) < 1 << 31


def _le(a: int, b: int) -> bool:
    return a == b or _lt(a, b)


def _apps(c: _Conn, b: _Builder, fd: int, mine: bool,
          sent: list[tuple[int, _Seg]], got: list[tuple[int, _Seg]]) -> None:
    """The calls of one side's application: ``sent`` are its segments with the times it sent
    them, ``got`` the other side's segments with the times this side received them."""
    isn, other_isn = (c.iss, c.irs) if mine else (c.irs, c.iss)
    top = (isn + 1) & MASK
    prev_write: int | None = None
    fin_t = None
    for t, s in sorted(sent, key=lambda x: x[0]):
        end = (s.seq + s.length) & MASK
        if s.length and _lt(top, end):
            n = (end - top) & MASK if _le(s.seq, top) else s.length
            prev_write = _io(b, prev_write, t, "write", fd, n)
            top = end
        if s.flags & 0x01 and fin_t is None:
            fin_t = t
    stream = _Stream(other_isn)
    reads_after_fin = False
    prev_read: int | None = None
    other_fin_t = None
    rst_t = next((t for t, s in sorted(sent, key=lambda x: x[0]) if s.flags & 0x04), None)
    for t, s in sorted(got, key=lambda x: x[0]):
        if s.flags & (0x02 | 0x04):
            continue
        n, fin_now = stream.add(s.seq, s.length, bool(s.flags & 0x01))
        if n and (rst_t is None or t < rst_t) and not _unread_close(c, mine, t):
            prev_read = _io(b, prev_read, t, "read", fd, n)
            if fin_t is not None and t > fin_t:
                reads_after_fin = True
        if fin_now:
            other_fin_t = t
    if fin_t is not None:
        if reads_after_fin:
            b.add(fin_t, _ORDER_CALL, f"shutdown({fd}, SHUT_WR) = 0")
            b.add(max(other_fin_t or fin_t, fin_t), _ORDER_CALL, f"close({fd}) = 0")
        else:
            b.add(fin_t, _ORDER_CALL, f"close({fd}) = 0")
    elif rst_t is not None and mine and c.closes:
        b.add(rst_t, _ORDER_CALL, f"close({fd}) = 0")


def _io(b: _Builder, prev: int | None, t: int, name: str, fd: int, n: int) -> int:
    """A read or write of n bytes at t, merged into the previous one made at the same time."""
    if prev is not None and b.lines[prev].t == t:
        old = b.lines[prev]
        total = int(old.text.rsplit("= ", 1)[-1]) + n
        old.text = f"{name}({fd}, ..., {total}) = {total}"
        return prev
    b.add(t, _ORDER_CALL, f"{name}({fd}, ..., {n}) = {n}")
    return len(b.lines) - 1


def _unread_close(c: _Conn, mine: bool, t: int) -> bool:
    """rawtcp closed with unread data at or before ``t``: these bytes were never read."""
    return mine and any(r == "close with unread data" and ct >= t for ct, r in c.closes)


def _open_calls(b: _Builder, t0: int, t_accept: int | None, t_syn: int | None,
                listener: bool) -> int:
    """socket/bind/listen/accept or socket/connect; returns the connection's fd."""
    b.add(t0, _ORDER_SETUP, "socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    if listener:
        b.add(t0, _ORDER_SETUP, "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0")
        b.add(t0, _ORDER_SETUP, "bind(3, ..., ...) = 0")
        b.add(t0, _ORDER_SETUP, "listen(3, 1) = 0")
        if t_accept is not None:
            b.add(t_accept, _ORDER_CALL, "accept(3, ..., ...) = 4")
        return 4
    b.add(t0, _ORDER_SETUP, "fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0")
    b.add(t_syn if t_syn is not None else t0, _ORDER_CALL,
          "connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    return 3


def _established_at(c: _Conn, received: list[tuple[int, _Seg]], listener_isn: int) -> int | None:
    """When the listening side got the first segment acknowledging its SYN-ACK."""
    for t, s in sorted(received, key=lambda x: x[0]):
        if s.flags & 0x10 and not s.flags & (0x02 | 0x04) \
                and _le((listener_isn + 1) & MASK, s.ack):
            return t
    return None


def _header(c: _Conn, view: str, title: str | None, extra: list[str]) -> list[str]:
    v6 = ipaddress.ip_address(c.local[0]).version == 6
    lip, rip, more = PD_V6 if v6 else PD_V4
    role = "connected to" if c.active else "accepted"
    lines = [
        f"// {title}" if title else "// rawtcp trace exported as a packetdrill script",
        f"// Connection {c.local[0]}:{c.local[1]} > {c.remote[0]}:{c.remote[1]} "
        f"(rawtcp {role} the peer), exported by rawtcp.packetdrill.export.{view}.",
    ]
    return lines + extra + [
        "// Replay with the real packetdrill against Linux (as root, in a scratch network "
        "namespace):",
        f"//   packetdrill --ip_version={'ipv6' if v6 else 'ipv4'} --local_ip={lip} "
        f"--remote_ip={rip} {more} --tolerance_usecs=20000 FILE.pkt",
        "// Replay against rawtcp (virtual clock, no root): rawtcp packetdrill FILE.pkt",
        "",
    ]


def export_trace(events: Iterable[Event], *, ours: str | None = None, conn: str | None = None,
                 delay_us: int | None = None, title: str | None = None) -> str:
    """The connection as a packetdrill script from the **peer's** point of view.

    ``events``: trace events (a ``--trace`` file read with :func:`rawtcp.trace.read_trace`, or
    ``Tracer.events()``). ``ours``: the ``stack`` label of rawtcp's events when the trace
    holds several stacks (``"a"`` for :class:`rawtcp.sim.Sim`'s a); ``conn``:
    ``"laddr:lport>raddr:rport"`` from rawtcp's side (default: the first connection with a
    SYN); ``delay_us``: the one-way delay (default: half the handshake round trip).
    Raises :class:`ExportError` when the trace has no exportable connection."""
    c = _read(events, ours, conn, delay_us)
    b = _Builder()
    inbound: list[tuple[int, _Seg]] = []       # rawtcp's, as the peer got them
    outbound: list[tuple[int, _Seg]] = []      # the peer's, when it sent them
    for s in c.segs:
        if s.ours:
            for at in s.arrivals:
                inbound.append((at, s))
                b.add(at, _ORDER_IN, "", _packet(c, s, "<", True))
        else:
            at = s.t - c.delay
            outbound.append((at, s))
            b.add(at, _ORDER_OUT, "", _packet(c, s, ">", False))
    times = [t for t, _ in inbound + outbound]
    t0 = min(times)
    listener = c.active          # rawtcp connected: the peer listened
    t_acc = _established_at(c, inbound, c.irs) if listener else None
    t_syn = next((t for t, s in sorted(outbound, key=lambda x: x[0]) if s.flags & 0x02), None)
    fd = _open_calls(b, t0, t_acc, t_syn, listener)
    _apps(c, b, fd, False, outbound, inbound)
    lost = sum(1 for s in c.segs if s.ours and not s.arrivals)
    extra = [
        "// The PEER's point of view: the local stack is the peer; `<` lines are the segments "
        "rawtcp sent,",
        f"// as the peer received them ({lost} lost on the way are left out), `>` lines the "
        "peer's segments.",
        f"// The peer's clock is rawtcp's shifted by a one-way delay of {c.delay} us; socket "
        "calls are inferred.",
        "// `>` options are the original peer's: a replaying kernel must use the same "
        "settings (MSS, wscale,",
        "// SACK, timestamps) or the lines be relaxed to <...>.",
    ]
    return "\n".join(_header(c, "export_trace", title, extra) + b.render()) + "\n"


def export_local(events: Iterable[Event], *, ours: str | None = None, conn: str | None = None,
                 title: str | None = None) -> str:
    """The connection as a packetdrill script from **rawtcp's** point of view: rawtcp's
    inferred calls, its segments as ``>`` (windows not checked, options exact), the peer's
    segments it received as ``<``, on rawtcp's clock. ``rawtcp packetdrill`` replays it
    against rawtcp. Arguments as :func:`export_trace`."""
    c = _read(events, ours, conn, 0)
    b = _Builder()
    sent: list[tuple[int, _Seg]] = []
    got: list[tuple[int, _Seg]] = []
    for s in c.segs:
        if s.ours:
            sent.append((s.t, s))
            b.add(s.t, _ORDER_OUT, "", _packet(c, s, ">", False))
        elif s.seen_by_rawtcp:
            got.append((s.t, s))
            b.add(s.t, _ORDER_IN, "", _packet(c, s, "<", True))
    t0 = min(t for t, _ in sent + got)
    listener = not c.active
    t_acc = _established_at(c, got, c.iss) if listener else None
    t_syn = next((t for t, s in sent if s.flags & 0x02), None)
    fd = _open_calls(b, t0, t_acc, t_syn, listener)
    _apps(c, b, fd, True, sent, got)
    extra = [
        "// rawtcp's point of view: `>` lines are rawtcp's segments (windows not checked), "
        "`<` lines the",
        "// peer's segments rawtcp received, on rawtcp's clock; socket calls are inferred.",
    ]
    return "\n".join(_header(c, "export_local", title, extra) + b.render()) + "\n"


def write_script(path: str, events: Iterable[Event], *, view: str = "peer", **kw: Any) -> str:
    """Export and write to ``path`` (``view`` "peer" or "local"); returns the text."""
    if view not in ("peer", "local"):
        raise ValueError(f"view must be 'peer' or 'local', not {view!r}")
    text = export_trace(events, **kw) if view == "peer" else export_local(events, **kw)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text
