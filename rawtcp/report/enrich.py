"""Seg events made readable: relative sequence numbers and retransmissions filled in.

Works on trace events (docs/contracts.md) from the core, from the fault engine or read from a
capture file (pcap or pcapng) by :func:`rawtcp.report.captures.seg_events_from_pcap`.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]
_MOD = 1 << 32

__all__ = ["Event", "enrich", "flow", "seq_len"]


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
        if kind not in ("seg", "fault") or ev.get("seq") is None:     # null: not known
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
