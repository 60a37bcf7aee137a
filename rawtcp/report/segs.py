"""Shared helpers for reports: fill in relative numbers and spot retransmissions in seg events.

Works on trace events (docs/contracts.md) from the core, from the fault engine or built from a
pcap file by :func:`seg_events_from_pcap`.
"""

from __future__ import annotations

import os
from typing import Any

from rawtcp.core.segment import Flags, parse_flags

Event = dict[str, Any]
_MOD = 1 << 32

__all__ = ["enrich", "flow", "seg_events_from_pcap", "seq_len"]


def seq_len(ev: Event) -> int:
    """Sequence space a seg event occupies: payload + SYN + FIN."""
    n = int(ev.get("len") or 0)
    f = ev.get("flags") or ""
    return n + ("S" in f) + ("F" in f)


def flow(ev: Event) -> tuple[str, int, str, int]:
    return (str(ev.get("src")), int(ev.get("sport") or 0), str(ev.get("dst")),
            int(ev.get("dport") or 0))


def _newer(a: int, b: int) -> bool:
    """a after b in sequence space (RFC 9293 3.4 modulo arithmetic)."""
    d = (a - b) % _MOD
    return 0 < d < (1 << 31)


def enrich(events: list[Event]) -> list[Event]:
    """Copies of the ``seg`` and ``fault`` events with ``rseq``/``rack`` filled in when the event
    lacked them (from the SYNs seen), and ``rtx`` = True on a seg that carries sequence space
    that was already sent in that direction (a retransmission, detected per flow).

    Other events are returned unchanged (same objects), order kept.
    """
    isn: dict[tuple[str, int, str, int], int] = {}
    highest: dict[tuple[str, int, str, int], int] = {}
    out: list[Event] = []
    for ev in events:
        kind = ev.get("ev")
        if kind not in ("seg", "fault") or "seq" not in ev:
            out.append(ev)
            continue
        e = dict(ev)
        key = flow(e)
        flags = str(e.get("flags") or "")
        seq = int(e["seq"])
        if "S" in flags and kind == "seg":
            isn[key] = seq
        rev = (key[2], key[3], key[0], key[1])
        if e.get("rseq") is None and key in isn:
            e["rseq"] = (seq - isn[key]) % _MOD
        if e.get("rack") is None and "A" in flags and rev in isn and e.get("ack") is not None:
            e["rack"] = (int(e["ack"]) - isn[rev]) % _MOD
        if kind == "seg":
            n = seq_len(e)
            end = (seq + n) % _MOD
            top = highest.get(key)
            e["rtx"] = bool(n) and top is not None and not _newer(end, top)
            if n and (top is None or _newer(end, top)):
                highest[key] = end
        out.append(e)
    return out


def seg_events_from_pcap(path: str | os.PathLike[str], our_addr: str | None = None) -> list[Event]:
    """Seg events (``dir``, addresses, ports, seq/ack, rseq/rack, flags, win, len, ``t`` in us)
    for every TCP segment in a pcap file (any link type Scapy reads).

    ``our_addr`` ("10.0.0.1", "fd00::1" or "10.0.0.1:40000") is rawtcp's side; by default the
    side that sent the first SYN without ACK. Segments not to or from our side are skipped.
    """
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import PcapReader

    rows: list[tuple[int, str, int, str, int, Any]] = []
    with PcapReader(str(path)) as rd:
        for p in rd:
            ip = p.getlayer(IP) or p.getlayer(IPv6)
            if ip is None or not ip.haslayer(TCP):
                continue
            tcp = ip[TCP]
            t = round(float(p.time) * 1_000_000)
            rows.append((t, str(ip.src), int(tcp.sport), str(ip.dst), int(tcp.dport), tcp))
    ours: tuple[str, int | None] | None = None
    if our_addr is not None:
        ours = _split_addr(our_addr)
    else:
        for _t, src, sport, _dst, _dport, tcp in rows:
            f = int(tcp.flags)
            if f & Flags.SYN and not f & Flags.ACK:
                ours = (src, sport)
                break
        if ours is None and rows:
            ours = (rows[0][1], rows[0][2])
    events: list[Event] = []
    if ours is None:
        return events
    for t, src, sport, dst, dport, tcp in rows:
        if _is(ours, src, sport):
            d = "out"
        elif _is(ours, dst, dport):
            d = "in"
        else:
            continue
        payload = bytes(tcp.payload)
        flags = str(tcp.flags)
        flags = "".join(ch for ch in "FSRPAUEC" if ch in flags)
        parse_flags(flags)  # canonical letters only
        events.append({
            "t": t, "ev": "seg", "dir": d, "src": src, "dst": dst, "sport": sport,
            "dport": dport, "seq": int(tcp.seq), "ack": int(tcp.ack), "rseq": None,
            "rack": None, "flags": flags, "win": int(tcp.window), "len": len(payload),
            "conn": (f"{src}:{sport}>{dst}:{dport}" if d == "out"
                     else f"{dst}:{dport}>{src}:{sport}"),
        })
    return [e for e in enrich(events)]


def _split_addr(text: str) -> tuple[str, int | None]:
    import ipaddress

    text = text.strip()
    if text.startswith("["):  # [v6]:port
        host, _, port = text[1:].partition("]:")
        return str(ipaddress.ip_address(host)), int(port) if port else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return str(ipaddress.ip_address(host)), int(port)
    return str(ipaddress.ip_address(text)), None


def _is(ours: tuple[str, int | None], addr: str, port: int) -> bool:
    return addr == ours[0] and (ours[1] is None or ours[1] == port)
