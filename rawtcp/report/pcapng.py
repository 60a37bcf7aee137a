"""pcapng captures with a comment on each packet: what rawtcp's state was and which fault
rule acted on it, so that Wireshark (and ``tshark -e frame.comment``) shows them.

The format (IETF draft-ietf-opsawg-pcapng) is a sequence of blocks, each
``type, total_length, body, total_length``, 32-bit aligned, in the writer's byte order:

- Section Header Block (SHB, 0x0A0D0D0A): byte-order magic, version 1.0, section length -1;
- Interface Description Block (IDB, 1): link type (101, raw IP: what rawtcp records),
  snap length, options ``if_name`` and ``if_tsresol`` (6: microseconds);
- Enhanced Packet Block (EPB, 6): interface id, 64-bit timestamp, captured and original
  length, the packet padded to 32 bits, options ``opt_comment`` (1, UTF-8) and ``epb_flags``
  (2: direction, 1 inbound / 2 outbound).

Options are ``code, length, value`` padded to 32 bits and end with ``opt_endofopt`` (0).

- :class:`PcapngRecorder` the live writer, with the interface of
  :class:`rawtcp.trace.PcapRecorder` (``record(ip_bytes, ts_us)``) plus a comment and a
  direction per packet; :func:`open_capture` picks the format by the file's extension
  (``.pcap`` classic, anything else pcapng);
- :func:`annotate_capture` rewrites a capture rawtcp recorded (classic or pcapng) as pcapng
  with the comments taken from the run's trace events; :func:`packet_comments` gives those
  comments without writing anything.
"""

from __future__ import annotations

import errno
import os
import struct
from collections import Counter, defaultdict
from typing import Any

from rawtcp.report.captures import ip_of_frame, read_capture
from rawtcp.trace import LINKTYPE_RAW, CaptureFile, PcapRecorder, encode_packet

Event = dict[str, Any]

__all__ = ["PcapngRecorder", "annotate_capture", "open_capture", "packet_comments",
           "packet_key"]

_SHB, _IDB, _EPB = 0x0A0D0D0A, 1, 6
_BOM = 0x1A2B3C4D
OPT_END, OPT_COMMENT = 0, 1
SHB_USERAPPL, IF_NAME, IF_TSRESOL, EPB_FLAGS = 4, 2, 9, 2
DIR_IN, DIR_OUT = 1, 2
_MAX_COMMENT = 60_000   # an option length is 16 bits


def _option(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * ((-len(body)) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def section_header(application: str = "rawtcp") -> bytes:
    """An SHB (little endian, version 1.0, unknown section length) naming the writer."""
    opts = _option(SHB_USERAPPL, application.encode()) + _option(OPT_END, b"")
    return _block(_SHB, struct.pack("<IHHq", _BOM, 1, 0, -1) + opts)


def interface_block(linktype: int = LINKTYPE_RAW, snaplen: int = 65535,
                    name: str = "rawtcp") -> bytes:
    """An IDB with microsecond timestamps (if_tsresol 6)."""
    opts = (_option(IF_NAME, name.encode()) + _option(IF_TSRESOL, b"\x06")
            + _option(OPT_END, b""))
    return _block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + opts)


def packet_block(data: bytes, ts_us: int, orig_len: int | None = None,
                 comment: str | None = None, direction: str | None = None,
                 interface: int = 0) -> bytes:
    """An EPB for ``data`` captured at ``ts_us`` (microseconds), with an optional comment
    (UTF-8, cut to fit a 16-bit option length) and direction ("in"/"out")."""
    ts_us = int(ts_us)
    if ts_us < 0:
        raise OSError(errno.EINVAL, f"pcapng timestamp must be >= 0 us, got {ts_us}")
    body = struct.pack("<IIIII", interface, ts_us >> 32, ts_us & 0xFFFFFFFF, len(data),
                       len(data) if orig_len is None else orig_len) + data
    body += b"\0" * ((-len(body)) % 4)
    opts = b""
    if comment:
        raw = comment.encode("utf-8", "replace")[:_MAX_COMMENT]
        opts += _option(OPT_COMMENT, raw.decode("utf-8", "ignore").encode())
    if direction in ("in", "out"):
        opts += _option(EPB_FLAGS, struct.pack("<I", DIR_IN if direction == "in" else DIR_OUT))
    if opts:
        opts += _option(OPT_END, b"")
    return _block(_EPB, body + opts)


class PcapngRecorder(CaptureFile):
    """pcapng writer with :class:`rawtcp.trace.PcapRecorder`'s interface (LINKTYPE_RAW,
    microsecond timestamps): ``record(ip_bytes, ts_us, comment=None, direction=None)``,
    ``record_packet(pkt, ts_us, corrupt=False)``, ``count``, ``flush()``, ``close()``; a
    context manager. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], snaplen: int = 65535,
                 linktype: int = LINKTYPE_RAW) -> None:
        super().__init__(path, snaplen, section_header() + interface_block(linktype, snaplen))

    def record(self, ip_bytes: bytes, ts_us: int, comment: str | None = None,
               direction: str | None = None) -> None:
        n = len(ip_bytes)
        data = bytes(ip_bytes[:self.snaplen])
        self._write(packet_block(data, ts_us, n, comment, direction))

    def record_packet(self, pkt: Any, ts_us: int, corrupt: bool = False,
                      comment: str | None = None) -> None:
        self.record(encode_packet(pkt, corrupt=corrupt), ts_us, comment)


def open_capture(path: str | os.PathLike[str], snaplen: int = 65535) -> Any:
    """A recorder for ``path``: classic pcap (:class:`PcapRecorder`) when the name ends in
    ``.pcap``, pcapng (:class:`PcapngRecorder`) otherwise (``.pcapng`` is the default)."""
    if os.fspath(path).lower().endswith(".pcap"):
        return PcapRecorder(path, snaplen)
    return PcapngRecorder(path, snaplen)


# --------------------------------------------------------------------------- comments
Key = tuple[str, int, str, int, int, int, str, int]


def packet_key(ip: bytes) -> Key | None:
    """(src, sport, dst, dport, seq, ack, flags, payload length) of a TCP packet, without
    checking checksums (a corrupted copy still matches its event); None for anything else."""
    from rawtcp.wire import decode_ip

    try:
        pkt = decode_ip(ip, verify=False)
    except ValueError:
        return None
    from rawtcp.core.segment import flags_str

    s = pkt.segment
    return (pkt.src, s.src_port, pkt.dst, s.dst_port, s.seq, s.ack, flags_str(s.flags),
            len(s.payload))


def _event_key(e: Event) -> Key | None:
    try:
        return (str(e["src"]), int(e["sport"]), str(e["dst"]), int(e["dport"]), int(e["seq"]),
                int(e["ack"]), str(e["flags"]), int(e.get("len") or 0))
    except (KeyError, TypeError, ValueError):
        return None


def _describe(seg: Event | None, faults: list[Event], direction: str,
              earlier: Event | None = None, t: int = 0) -> str:
    """The comment of one packet: what rawtcp did with it (``seg``: its seg event at the
    packet's instant; ``earlier``: the last seg event of the same segment before it, for a
    packet a rule held) and the fault rules that acted on it at that instant."""
    parts: list[str] = []
    actions = {str(f.get("action")) for f in faults if f.get("ev") == "fault"}
    if seg is not None:
        what = "sent" if direction == "out" else "received"
        state = seg.get("state")
        parts.append(f"rawtcp {what} in {state}" if state else f"rawtcp {what}")
        if seg.get("rtx"):
            parts.append("retransmission")
    elif direction == "out" and earlier is not None:
        held = (t - int(earlier.get("t", t))) / 1000
        state = earlier.get("state")
        parts.append(f"rawtcp sent in {state}" if state else "rawtcp sent")
        parts.append(f"held {held:g} ms by a fault rule")
    elif direction == "in":
        if "drop" in actions:
            parts.append("rawtcp never saw it")
        elif "corrupt" in actions:
            parts.append("corrupted by a fault rule: rawtcp dropped it (bad checksum)")
        elif actions & {"delay", "reorder"}:
            parts.append("held by a fault rule before rawtcp (it came later)")
        else:
            parts.append("rawtcp never saw it")
    for f in faults:
        kind = "released by" if f.get("ev") == "fault_release" else str(f.get("action"))
        parts.append(f"fault {kind}: {f.get('rule')}")
    return "; ".join(parts)


def _offset(records: list[tuple[int, Key | None]], by_key: dict[Key, list[Event]]) -> int:
    """Capture time minus trace time: the most common difference over the first packets
    whose key occurs once in the trace (the runtime stamps both from one clock)."""
    votes: Counter[int] = Counter()
    for ts, key in records[:200]:
        evs = by_key.get(key) if key is not None else None
        if evs:
            for e in evs[:3]:
                votes[ts - int(e.get("t", 0))] += 1
    return votes.most_common(1)[0][0] if votes else 0


def packet_comments(capture: str | os.PathLike[str], events: list[Event]
                    ) -> list[tuple[int, int, bytes, str | None, str | None]]:
    """Every frame of ``capture`` with its comment and direction from ``events`` (the run's
    trace): ``(ts_us, linktype, frame, comment or None, "in"/"out"/None)``.

    A frame matches the ``seg``, ``fault`` and ``fault_release`` events with the same
    addresses, ports, seq, ack, flags and length at the same time (the runtime records the
    capture from the core's clock: the offset between the two is found from the packets)."""
    from rawtcp.report.enrich import enrich

    frames = read_capture(capture)
    by_key: dict[Key, list[Event]] = defaultdict(list)
    for e in enrich([e for e in events if e.get("ev") in ("seg", "fault", "fault_release")]):
        k = _event_key(e)
        if k is not None:
            by_key[k].append(e)
    keyed: list[tuple[int, Key | None]] = []
    for ts, linktype, frame in frames:
        ip = ip_of_frame(linktype, frame)
        keyed.append((ts, packet_key(ip) if ip else None))
    off = _offset(keyed, by_key)
    out: list[tuple[int, int, bytes, str | None, str | None]] = []
    for (ts, linktype, frame), (_ts, key) in zip(frames, keyed, strict=True):
        comment = direction = None
        same = by_key.get(key, ()) if key else ()
        evs = [e for e in same if int(e.get("t", -1)) == ts - off]
        if not evs:         # a packet a rule held: its events are from when it was sent
            sent = [e for e in same if e["ev"] == "seg" and e.get("dir") == "out"
                    and int(e.get("t", 0)) < ts - off]
            holds = {int(e.get("t", -1)): e for e in same if e["ev"] == "fault"
                     and e.get("dir") == "out" and e.get("action") in ("delay", "reorder")}
            held_segs = [e for e in sent if int(e.get("t", 0)) in holds]
            if sent:        # the last copy a rule held, else the last one sent
                seg = held_segs[-1] if held_segs else sent[-1]
                hold = holds.get(int(seg.get("t", 0)))
                comment = _describe(None, [hold] if hold else [], "out", seg, ts - off)
                out.append((ts, linktype, frame, comment, "out"))
                continue
        if evs:
            direction = str(evs[0].get("dir") or "") or None
            segs = [e for e in evs if e["ev"] == "seg"]
            faults = [e for e in evs if e["ev"] != "seg"]
            earlier = None
            if not segs and direction == "out":
                before = [e for e in same if e["ev"] == "seg" and e.get("dir") == "out"
                          and int(e.get("t", 0)) < ts - off]
                earlier = before[-1] if before else None
            comment = _describe(segs[0] if segs else None, faults, direction or "", earlier,
                                ts - off)
        out.append((ts, linktype, frame, comment or None, direction))
    return out


def annotate_capture(capture: str | os.PathLike[str], events: list[Event],
                     out: str | os.PathLike[str]) -> int:
    """Write ``capture`` (classic pcap or pcapng, as rawtcp records it) to ``out`` as pcapng
    with a comment per packet from the trace ``events`` (see :func:`packet_comments`).
    ``out`` may be ``capture`` itself. Returns the number of packets with a comment."""
    rows = packet_comments(capture, events)
    linktypes: dict[int, int] = {}
    blocks = [section_header()]
    for _ts, linktype, _frame, _c, _d in rows:
        if linktype not in linktypes:
            linktypes[linktype] = len(linktypes)
            blocks.append(interface_block(linktype))
    if not rows:
        blocks.append(interface_block())
    n = 0
    for ts, linktype, frame, comment, direction in rows:
        blocks.append(packet_block(frame, ts, None, comment, direction, linktypes[linktype]))
        n += comment is not None
    tmp = os.fspath(out) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(blocks))
    os.replace(tmp, out)
    return n
