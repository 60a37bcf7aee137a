"""Ladder diagrams in the terminal, like the classic TCP sequence diagrams.

rawtcp is the left column, the peer (the kernel) the right one; time runs down, in ms since
the first event. One arrow per segment, labelled with flags, relative seq/ack and payload
length::

            ms rawtcp        10.7.0.1:40000                10.7.0.2:80  peer
         0.000              |                                         | LISTEN
         0.000 SYN_SENT     |                                         |
         0.000              |------------ S seq=0 len=0 ------------->|
         1.000              |<--------- SA seq=0 ack=1 len=0 ---------|
         6.000              |<-------- FA seq=1 ack=102 len=0 --------|
         6.000 TIME_WAIT    |                                         |
         6.000              |--- A seq=102 ack=2 len=0 --X            |
       206.000              |<----- FA seq=1 ack=102 len=0 [rtx] -----|
       206.000              |-------- A seq=102 ack=2 len=0 --------->|

- rawtcp's state changes (``state`` events) are written left of the left column, the peer's
  (``kernel`` events, repeated states folded) right of the right column; a listening socket
  (conn ``"0.0.0.0:9000>*:*"``) is not the connection: its LISTEN is shown once at the top
  when it comes before the connection, its other state changes (the listener's close) never;
- a segment dropped by a fault (``fault`` event, action drop) stops where it died: an outgoing
  one half-way with an ``X``, an incoming one short of rawtcp (``X`` at its tip);
- ``[rtx]`` marks a retransmission (sequence space already sent in that direction),
  ``[corrupt]``, ``[delay 300ms]``, ``[dup]``, ``[held]`` the other faults on our outgoing
  segments; faults on incoming segments and segments rawtcp discarded (``drop`` events)
  become ``~`` notes in the middle;
- UDP datagrams (``udp`` events) are arrows labelled ``UDP sport>dport len=N``, ICMP errors
  (``icmp`` events) ``ICMP port-unreachable sport>dport`` (the ports of the packet they
  quote); faults on them (``proto=udp``) are drawn as on segments.

:func:`render_ladder` draws trace events; :func:`ladder_from_pcap` draws a capture;
:class:`LiveLadder` is a tracer subscriber that prints the rows of a live run as they happen.
Plain ASCII unless ``color=True`` (ANSI).
"""

from __future__ import annotations

import errno
import json
import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from rawtcp.report.captures import seg_events_from_pcap
from rawtcp.report.enrich import enrich

Event = dict[str, Any]

__all__ = ["LiveLadder", "check_trace", "event_problem", "ladder_from_pcap", "ladder_rows",
           "render_ladder"]

TIME_W = 10
STATE_W = 12

_RESET = "\x1b[0m"
_STYLE = {
    "out": "\x1b[32m",  # green
    "in": "\x1b[36m",  # cyan
    "x": "\x1b[1;31m",  # bold red
    "rtx": "\x1b[33m",  # yellow
    "state": "\x1b[1m",  # bold
    "note": "\x1b[2m",  # dim
}


@dataclass
class _Row:
    t: int
    kind: str  # "seg", "state", "kernel", "note"
    ev: Event
    tags: list[str] = field(default_factory=list)
    dropped: bool = False
    corrupt: bool = False


# ------------------------------------------------------------------- events read from a file
#: the whole-number fields the ladder computes with, and their ranges (null allowed)
_INT_FIELDS = {"seq": (0, 2**32 - 1), "ack": (0, 2**32 - 1), "len": (0, 2**32 - 1),
               "sport": (0, 65535), "dport": (0, 65535)}
_T_LIMIT = 2**63      # microseconds: far beyond any run, and still a float after / 1000


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def event_problem(ev: Any) -> str | None:
    """Why ``ev`` (one line of a trace file, as parsed JSON) cannot be drawn, in a few words,
    or None when it can: it must be an object; ``t`` (if present) a finite number of
    microseconds; ``conn`` a string (or null); on the events that become arrows,
    ``seq``/``ack``/``len``/``sport``/``dport`` whole numbers in range (or null) and
    ``flags`` a string (or null); a delay fault's ``ms`` a number. Other fields are only
    printed, and anything prints."""
    if not isinstance(ev, dict):
        return f"not a trace event: expected a JSON object, got {json.dumps(ev)[:40]}"
    t = ev.get("t", 0)
    if not _is_number(t) or not -_T_LIMIT < t < _T_LIMIT:
        return f'"t" must be a number of microseconds, got {json.dumps(t)[:40]}'
    if not isinstance(ev.get("conn", ""), (str, type(None))):
        return f'"conn" must be a string or null, got {json.dumps(ev["conn"])[:40]}'
    if ev.get("ev") not in ("seg", "fault", "drop", "udp", "icmp"):
        return None
    for key, (lo, hi) in _INT_FIELDS.items():
        v = ev.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                              or not lo <= v <= hi):
            return f'"{key}" must be a whole number {lo}-{hi} or null, got {json.dumps(v)[:40]}'
    if not isinstance(ev.get("flags", ""), (str, type(None))):
        return f'"flags" must be a string such as "SA", got {json.dumps(ev["flags"])[:40]}'
    if "ms" in ev and not _is_number(ev["ms"]):
        return f'"ms" must be a number, got {json.dumps(ev["ms"])[:40]}'
    return None


def check_trace(events: list[Any], path: str | os.PathLike[str]) -> None:
    """ValueError ``"PATH:LINE: what is wrong"`` for the first event of ``events`` (read from
    ``path`` by :func:`rawtcp.trace.read_trace`, one per non-blank line, in order) that
    :func:`render_ladder` cannot draw; :func:`event_problem` says what it checks."""
    for i, ev in enumerate(events):
        problem = event_problem(ev)
        if problem is None:
            continue
        with open(path, encoding="utf-8") as f:     # the i-th non-blank line is the event's
            lines = [n for n, text in enumerate(f, 1) if text.strip()]
        raise ValueError(f"{os.fspath(path)}:{lines[i]}: {problem}")


def _other_label(ev: Event) -> str | None:
    """A UDP datagram or an ICMP error (trace events ``udp``/``icmp``, or a fault or drop
    with ``proto``), else None."""
    kind = ev.get("ev")
    proto = ev.get("proto")
    if kind == "udp" or proto == "udp":
        return f"UDP {ev.get('sport')}>{ev.get('dport')} len={ev.get('len', 0)}"
    if kind == "icmp" or proto == "icmp":
        return f"ICMP {ev.get('kind', '?')} {ev.get('qsport')}>{ev.get('qdport')}"
    return None


def _label(ev: Event, tags: list[str]) -> str:
    other = _other_label(ev)
    if other is not None:
        return other + "".join(f" [{t}]" for t in tags)
    flags = ev.get("flags") or "."
    seq = ev.get("rseq") if ev.get("rseq") is not None else ev.get("seq")
    s = f"{flags} seq={seq}"
    if "A" in flags:
        ack = ev.get("rack") if ev.get("rack") is not None else ev.get("ack")
        s += f" ack={ack}"
    s += f" len={ev.get('len', 0)}"
    for t in tags:
        s += f" [{t}]"
    return s


def _same_seg(a: Event, b: Event) -> bool:
    return all(a.get(k) == b.get(k) for k in ("seq", "ack", "flags", "len", "sport", "dport"))


def _conn_of(ev: Event) -> str | None:
    return ev.get("conn")


def _listener(ev: Event) -> str | None:
    """The local ``addr:port`` of a listening socket's event (conn ``"0.0.0.0:9000>*:*"``)."""
    c = ev.get("conn")
    if isinstance(c, str) and c.endswith(">*:*"):
        return c[:-4]
    return None


def _listener_serves(local: str, conn: str | None) -> bool:
    """Whether the listener on ``local`` could have made the connection ``conn``."""
    if conn is None:
        return True
    addr, _, port = local.rpartition(":")
    caddr, _, cport = conn.partition(">")[0].rpartition(":")
    return port == cport and addr in ("0.0.0.0", "::", caddr)


def _build_rows(events: list[Event], conn: str | None) -> list[_Row]:
    rows: list[_Row] = []
    last_kernel: dict[str | None, str] = {}
    for ev in enrich(events):
        kind = ev.get("ev")
        t = int(ev.get("t", 0))
        local = _listener(ev)
        if local is not None:
            # A listening socket is not the connection: its LISTEN is drawn once, when it
            # comes before any segment (the passive open starts there); its other state
            # changes (closing the listener) are not the connection's and are left out.
            if (kind == "state" and ev.get("new") == "LISTEN" and _listener_serves(local, conn)
                    and not any(r.kind in ("seg", "state") for r in rows)):
                rows.append(_Row(t, "state", ev))
            continue
        if conn is not None and ev.get("conn") not in (None, conn):
            continue
        if kind in ("udp", "icmp"):          # datagrams and ICMP errors: arrows too
            rows.append(_Row(t, "seg", ev))
        elif kind == "seg":
            r = _Row(t, "seg", ev)
            if ev.get("rtx"):
                r.tags.append("rtx")
            rows.append(r)
        elif kind == "state":
            rows.append(_Row(t, "state", ev))
        elif kind == "kernel":
            st = str(ev.get("state"))
            key = _conn_of(ev)
            if last_kernel.get(key) == st:
                continue
            last_kernel[key] = st
            rows.append(_Row(t, "kernel", ev))
        elif kind == "fault":
            _apply_fault(rows, ev, t)
        elif kind == "drop":
            reason = ev.get("reason", "?")
            what = f" {ev['flags']} seq={ev.get('rseq', ev.get('seq'))}" if "flags" in ev else ""
            if ev.get("proto") in ("udp", "icmp"):
                what = " " + str(_other_label(ev))
            if reason == "retransmitted-fin-reacked":   # RFC 9293 3.10.7.4, TIME-WAIT
                note = f"rawtcp: retransmitted{what} in TIME_WAIT: re-ACK, 2MSL restarted"
            else:
                note = f"rawtcp dropped{what}: {reason}"
            rows.append(_Row(t, "note", ev, tags=[note]))
        elif kind == "error":
            rows.append(_Row(t, "note", ev, tags=[f"error {ev.get('errno')}: {ev.get('message')}"]))
    return rows


def _apply_fault(rows: list[_Row], ev: Event, t: int) -> None:
    action = ev.get("action")
    d = ev.get("dir")
    target: _Row | None = None
    if d == "out":
        for r in reversed(rows):
            if r.kind == "seg" and r.ev.get("dir") == "out" and _same_seg(r.ev, ev):
                if not r.dropped:
                    target = r
                break
    if target is None:
        if action == "drop":
            # no matching seg event (an incoming segment never reaches the core): draw it here
            seg = dict(ev)
            seg["ev"] = "seg"
            r = _Row(t, "seg", seg, dropped=True)
            rows.append(r)
        else:
            extra = f" {ev['ms']:g}ms" if action == "delay" and "ms" in ev else ""
            what = _label(ev, [])
            rows.append(_Row(t, "note", ev, tags=[f"fault {action}{extra} {d} {what}"]))
        return
    if action == "drop":
        target.dropped = True
    elif action == "corrupt":
        target.corrupt = True
        target.tags.append("corrupt")
    elif action == "delay":
        target.tags.append(f"delay {ev.get('ms', 0):g}ms")
    elif action == "duplicate":
        target.tags.append("dup" if ev.get("copies", 1) == 1 else f"dup x{ev['copies']}")
    elif action == "reorder":
        target.tags.append("held")


class _Line:
    """A line as styled pieces, so padding is computed on the plain text."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self.parts: list[str] = []

    def add(self, text: str, style: str | None = None) -> None:
        if self.color and style and text.strip():
            self.parts.append(_STYLE[style] + text + _RESET)
        else:
            self.parts.append(text)

    def __str__(self) -> str:
        return "".join(self.parts).rstrip()


def _arrow(row: _Row, aw: int, line: _Line) -> None:
    ev = row.ev
    d = ev.get("dir")
    lab = " " + _label(ev, row.tags) + " "
    style = "rtx" if "rtx" in row.tags else d
    n = len(lab)
    if row.dropped:
        # stops where it died: about half-way, never shorter than its label
        length = max(aw // 2, n + 6)
        length = min(length, aw) if n + 6 <= aw else n + 6
        if d == "out":
            body = "---" + lab + "-" * (length - n - 4)
            line.add(body, style)
            line.add("X", "x")
            line.add(" " * max(0, aw - length))
        else:
            body = "-" * (length - n - 4) + lab + "---"
            line.add(" " * max(0, aw - length))
            line.add("X", "x")
            line.add(body, style)
        return
    fill = max(aw - n - 1, 6)
    a = fill // 2
    b = fill - a
    if d == "out":
        line.add("-" * a + lab + "-" * b, style)
        line.add("X" if row.corrupt else ">", "x" if row.corrupt else style)
    else:
        line.add("X" if row.corrupt else "<", "x" if row.corrupt else style)
        line.add("-" * b + lab + "-" * a, style)


def render_ladder(
    events: list[Event],
    width: int = 80,
    color: bool = False,
    conn: str | None = None,
    left: str = "rawtcp",
    right: str = "peer",
) -> str:
    """Draw the events as a ladder diagram (see the module docstring). ``width`` is the total
    line width for arrows whose labels fit; ``conn`` keeps one connection
    (``"laddr:lport>raddr:rport"``, events without ``conn`` are kept)."""
    if width < 60:
        raise OSError(errno.EINVAL, f"ladder width must be at least 60 columns, got {width}")
    events = sorted(events, key=lambda e: e.get("t", 0))  # stable: same-time order kept
    rows = _build_rows(events, conn)
    aw = width - (TIME_W + 1 + STATE_W + 1 + 2 + 1 + STATE_W)
    t0 = min((r.t for r in rows), default=0)
    t0 = min([t0] + [int(e["t"]) for e in events if "t" in e])
    # the two addresses, from the first segment
    laddr = raddr = ""
    for r in rows:
        if r.kind == "seg" and r.ev.get("sport") is not None:
            e = r.ev
            a = f"{e.get('src')}:{e.get('sport')}"
            b = f"{e.get('dst')}:{e.get('dport')}"
            laddr, raddr = (a, b) if e.get("dir") == "out" else (b, a)
            break
    out: list[str] = []
    head = f"{'ms':>{TIME_W}} {left:<{STATE_W}}  "
    mid = aw - len(laddr) - len(raddr)
    head += laddr + " " * max(1, mid) + raddr + f"  {right}"
    out.append(head.rstrip())
    blank = " " * aw
    for r in rows:
        line = _Line(color)
        line.add(f"{(r.t - t0) / 1000:{TIME_W}.3f} ")
        if r.kind == "state":
            line.add(f"{r.ev.get('new')!s:<{STATE_W}}", "state")
            line.add(" |" + blank + "|")
        elif r.kind == "kernel":
            line.add(" " * STATE_W + " |" + blank + "| ")
            line.add(str(r.ev.get("state")), "state")
        elif r.kind == "note":
            text = "~ " + r.tags[0]
            line.add(" " * STATE_W + " |")
            if len(text) <= aw - 2:
                line.add(f" {text:<{aw - 1}}", "note")
                line.add("|")
            else:  # a long note runs over the peer's column, cut at the line width
                room = width - (TIME_W + 1 + STATE_W + 3)
                if len(text) > room:
                    text = text[: room - 3] + "..."
                line.add(" " + text, "note")
        else:
            line.add(" " * STATE_W + " |")
            _arrow(r, aw, line)
            line.add("|")
        out.append(str(line))
    return "\n".join(out) + "\n"


def ladder_rows(events: list[Event], conn: str | None = None) -> list[tuple[str, Event]]:
    """``(kind, event)`` for each line :func:`render_ladder` draws after its header, in
    order (kind: ``seg``, ``state``, ``kernel`` or ``note``): for annotating the lines."""
    events = sorted(events, key=lambda e: e.get("t", 0))
    return [(r.kind, r.ev) for r in _build_rows(events, conn)]


def ladder_from_pcap(
    path: str | os.PathLike[str],
    our_addr: str | None = None,
    width: int = 80,
    color: bool = False,
) -> str:
    """A ladder of every TCP segment and UDP datagram in a capture (classic pcap or pcapng; see
    :func:`rawtcp.report.captures.seg_events_from_pcap` for the link types); our side is
    ``our_addr`` ("10.0.0.1", "10.0.0.1:40000", "[fd00::1]:40000") or the side that sent the
    first SYN.

    OSError(EINVAL) when ``our_addr`` is not an address, when the file is not a capture, when
    no TCP segment is from or to ``our_addr`` or when the capture holds no TCP segment."""
    events = seg_events_from_pcap(path, our_addr)
    if not events:
        raise OSError(errno.EINVAL, f"no TCP segments or UDP datagrams in {os.fspath(path)}: "
                                    "nothing to draw")
    return render_ladder(events, width=width, color=color, right="peer")


class LiveLadder:
    """A tracer subscriber (``Tracer(subscribers=[LiveLadder(sys.stderr.write)])``) that
    writes the ladder of a running stack row by row, as the events arrive.

    Each row is written once the next event has arrived, because a fault on an outgoing
    segment is reported just after the segment (the row must carry its ``X``). The header
    is written with the first segment (it names both addresses). :meth:`close` writes the
    rows still held back. Redrawing is quadratic in the number of events, so after
    ``max_live`` events the rest is written at :meth:`close` only.
    """

    def __init__(self, write: Any, width: int = 100, color: bool = False,
                 right: str = "peer", max_live: int = 2000) -> None:
        self.write, self.width, self.color, self.right = write, width, color, right
        self.max_live = max_live
        self.events: list[Event] = []
        self.printed = 0          # lines of the current drawing already written
        self._lock = threading.Lock()

    def _lines(self) -> list[str]:
        return render_ladder(self.events, width=self.width, color=self.color,
                             right=self.right).splitlines()

    def _flush(self, final: bool) -> None:
        if not any(e.get("ev") in ("seg", "udp", "icmp")
                   or (e.get("ev") == "fault" and e.get("action") == "drop")
                   for e in self.events):
            if not final:
                return
        lines = self._lines()
        upto = len(lines) if final else len(lines) - 1
        if upto > self.printed:
            self.write("".join(ln + "\n" for ln in lines[self.printed:upto]))
            self.printed = upto

    def __call__(self, ev: Event) -> None:
        if ev.get("ev") not in ("seg", "udp", "icmp", "state", "kernel", "fault", "drop",
                                "error"):
            return
        with self._lock:
            self.events.append(ev)
            if len(self.events) <= self.max_live:
                self._flush(final=False)

    def close(self) -> None:
        with self._lock:
            if self.events:
                self._flush(final=True)
