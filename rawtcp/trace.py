"""Trace sinks: the event log (:class:`Tracer`) and the packet capture (:class:`PcapRecorder`).

Theory of operation
-------------------
The core, the fault engine and the runtime all report what happens by calling a *tracer*,
which is any ``callable(dict) -> None`` (see docs/contracts.md, "Trace events").
:class:`Tracer` is the standard one. It

* keeps the events in memory, in a bounded deque (``max_events``; the oldest are evicted and
  counted in ``evicted``), unless ``keep=False``;
* writes every event as one JSON line to ``path`` (buffered; ``flush()`` or ``close()`` push it
  to the file);
* calls every subscriber with the event (a subscriber that raises is removed and the error is
  counted in ``subscriber_errors``: a broken observer never breaks the stack);
* stamps ``wall`` (absolute wall-clock seconds, float) on the event when it was built with a
  ``clock`` function, e.g. ``Tracer(clock=time.time)``.

Events are written as given. The tracer never mutates the caller's dict except to add
``wall``; values JSON cannot hold (bytes, enums, tuples...) are written via ``_json_default``.
All methods are thread-safe: the runtime thread emits while a user thread reads.

:class:`PcapRecorder` writes raw IP packets (both directions, IPv4 and IPv6 in one file) in
the classic libpcap format with ``LINKTYPE_RAW`` (101), microsecond timestamps. It is written
with ``struct`` so recording costs a few microseconds per packet.
"""

from __future__ import annotations

import collections
import enum
import errno
import json
import os
import struct
import threading
from collections.abc import Callable, Iterable
from typing import Any, Self

Event = dict[str, Any]
Subscriber = Callable[[Event], None]

__all__ = [
    "LINKTYPE_RAW",
    "CaptureFile",
    "PcapRecorder",
    "Tracer",
    "read_trace",
]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(obj)


class Tracer:
    """A trace sink: ``tracer(event)`` records one event dict.

    ``Tracer(path=None, *, keep=True, max_events=100_000, clock=None, subscribers=())``

    - ``path``: JSON-lines file to write (truncated on open), or None for memory only.
    - ``keep``: keep events in memory for :meth:`events`.
    - ``max_events``: memory bound; the oldest events are evicted (count in ``evicted``).
    - ``clock``: zero-argument function returning wall-clock seconds; adds ``wall`` to events.
    - ``subscribers``: callables receiving every event as it arrives.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        keep: bool = True,
        max_events: int = 100_000,
        clock: Callable[[], float] | None = None,
        subscribers: Iterable[Subscriber] = (),
    ) -> None:
        if max_events < 1:
            raise OSError(errno.EINVAL, f"max_events must be >= 1, got {max_events}")
        self._lock = threading.Lock()
        self._events: collections.deque[Event] | None = (
            collections.deque(maxlen=max_events) if keep else None
        )
        self._clock = clock
        self._subscribers: list[Subscriber] = list(subscribers)
        self._file = open(path, "w", encoding="utf-8") if path is not None else None  # noqa: SIM115
        self.path = path
        self.count = 0  # events seen in total
        self.evicted = 0  # events pushed out of memory by max_events
        self.subscriber_errors = 0
        self.closed = False

    # -- the sink ---------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        if self._clock is not None and "wall" not in event:
            event["wall"] = self._clock()
        with self._lock:
            if self.closed:
                return
            self.count += 1
            if self._events is not None:
                if len(self._events) == self._events.maxlen:
                    self.evicted += 1
                self._events.append(event)
            if self._file is not None:
                self._file.write(json.dumps(event, default=_json_default, separators=(",", ":")))
                self._file.write("\n")
            subs = list(self._subscribers)
        for cb in subs:
            try:
                cb(event)
            except Exception:  # noqa: BLE001 - an observer must never break the stack
                with self._lock:
                    self.subscriber_errors += 1
                    if cb in self._subscribers:
                        self._subscribers.remove(cb)

    emit = __call__

    # -- subscribers ------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every later event. Returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- reading ----------------------------------------------------------------------------
    def events(self, kind: str | Iterable[str] | None = None) -> list[Event]:
        """Events kept in memory, oldest first; only those whose ``ev`` is ``kind`` (or in it)."""
        with self._lock:
            evs = list(self._events) if self._events is not None else []
        if kind is None:
            return evs
        kinds = {kind} if isinstance(kind, str) else set(kind)
        return [e for e in evs if e.get("ev") in kinds]

    def clear(self) -> None:
        with self._lock:
            if self._events is not None:
                self._events.clear()

    # -- lifetime ---------------------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        """Flush and close the file. Later events are ignored. Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(path: str | os.PathLike[str]) -> list[Event]:
    """Read a JSON-lines trace file. Blank lines are skipped; a truncated last line (a process
    killed mid-write) is ignored; a malformed line elsewhere raises ValueError naming it."""
    out: list[Event] = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    last = max((i for i, s in enumerate(lines) if s.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == last:
                break
            raise ValueError(f"{path}:{i + 1}: not a JSON trace event: {e}") from None
    return out


# ---------------------------------------------------------------------------------------------
# pcap
# ---------------------------------------------------------------------------------------------

LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version read from the first nibble
_PCAP_MAGIC_US = 0xA1B2C3D4
_GLOBAL = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, network
_RECORD = struct.Struct("<IIII")  # ts_sec, ts_usec, incl_len, orig_len


class CaptureFile:
    """What every capture writer shares: the file opened with its header written, a lock
    (the loop and callers record at once), the packet count, flush/close and ``with``.
    A writer adds ``record(ip_bytes, ts_us, ...)``."""

    def __init__(self, path: str | os.PathLike[str], snaplen: int, header: bytes) -> None:
        if not 0 < snaplen <= 262144:
            raise OSError(errno.EINVAL, f"snaplen must be in 1..262144, got {snaplen}")
        self.path = path
        self.snaplen = snaplen
        self.count = 0
        self._lock = threading.Lock()
        self._f: Any = open(path, "wb")  # noqa: SIM115
        self._f.write(header)

    def _write(self, *parts: bytes) -> None:
        with self._lock:
            if self._f is None:
                raise OSError(errno.EBADF, f"{type(self).__name__} is closed; create a new one")
            for part in parts:
                self._f.write(part)
            self.count += 1

    def flush(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.flush()

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcapRecorder(CaptureFile):
    """Classic pcap writer (LINKTYPE_RAW, microsecond timestamps).

    ``rec = PcapRecorder(path, snaplen=65535)``; ``rec.record(ip_bytes, ts_us)`` with ``ts_us``
    the absolute capture time in microseconds since the Unix epoch (or any origin you like:
    Wireshark shows it as a date). ``rec.record_packet(pkt, ts_us)`` encodes a
    :class:`rawtcp.core.segment.Packet` first. ``close()`` flushes; it is a context manager.
    """

    def __init__(self, path: str | os.PathLike[str], snaplen: int = 65535) -> None:
        super().__init__(path, snaplen,
                         _GLOBAL.pack(_PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_RAW))

    def record(self, ip_bytes: bytes, ts_us: int) -> None:
        """Append one raw IP packet captured at ``ts_us`` (integer microseconds)."""
        ts_us = int(ts_us)
        if ts_us < 0:
            raise OSError(errno.EINVAL, f"pcap timestamp must be >= 0 us, got {ts_us}")
        n = len(ip_bytes)
        incl = min(n, self.snaplen)
        hdr = _RECORD.pack(ts_us // 1_000_000, ts_us % 1_000_000, incl, n)
        self._write(hdr, ip_bytes[:incl] if incl < n else ip_bytes)

    def record_packet(self, pkt: Any, ts_us: int, corrupt: bool = False) -> None:
        """Encode a Packet (rawtcp.wire when present, else Scapy) and record it."""
        self.record(encode_packet(pkt, corrupt=corrupt), ts_us)


# ---------------------------------------------------------------------------------------------
# encoding helpers: the wire codecs (Scapy only loaded when asked for a Scapy packet)
# ---------------------------------------------------------------------------------------------


def encode_packet(pkt: Any, corrupt: bool = False) -> bytes:
    """Packet (or a UDP Datagram / ICMP IcmpError) -> IP bytes, with a deliberately wrong
    transport checksum when ``corrupt``."""
    from rawtcp.wire import corrupt_checksum, encode_ip

    if not hasattr(pkt, "segment"):
        from rawtcp.wire import udp

        raw = (udp.encode_datagram(pkt) if isinstance(pkt, udp.Datagram)
               else udp.encode_icmp_error(pkt))
        return udp.corrupt_checksum_non_tcp(raw) if corrupt else raw
    raw = encode_ip(pkt)
    return corrupt_checksum(raw) if corrupt else raw


def to_scapy(pkt: Any) -> Any:
    """Packet -> Scapy IP()/TCP() (the reference codec's view of it); a UDP Datagram or
    ICMP IcmpError -> IP()/UDP() or IP()/ICMP() (IPv6 likewise)."""
    from rawtcp.wire import scapy_codec

    if not hasattr(pkt, "segment"):
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6

        raw = encode_packet(pkt)
        return IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)

    return scapy_codec.to_scapy(pkt)
