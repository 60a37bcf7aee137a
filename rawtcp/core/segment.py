"""The Segment value type: what the core consumes and produces.

Segments compare with ``==`` so tests can state exactly what must be sent. They are named
tuples: immutable, and built in a fraction of a frozen dataclass's time (the hot path builds
one per packet each way). Flags are plain ints; :class:`Flags` names them for users.
A :class:`Packet` is a segment with its IP source and destination (strings, IPv4 or IPv6).
"""

from __future__ import annotations

import enum
from functools import partial
from typing import NamedTuple


class Flags(enum.IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


# Plain-int flag bits for the hot path (an IntFlag operation costs a Python-level call).
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

# Scapy's letter order, so "SA", "FA", "PA", "R", "RA" read the same as in Scapy.
_LETTERS = "FSRPAUEC"


def flags_str(flags: int) -> str:
    """Flags as Scapy-style letters: SYN|ACK -> 'SA'."""
    return "".join(ch for i, ch in enumerate(_LETTERS) if flags & (1 << i))


def parse_flags(text: str) -> Flags:
    """'SA' -> SYN|ACK. Raises ValueError on an unknown letter."""
    out = Flags(0)
    for ch in text.upper():
        i = _LETTERS.find(ch)
        if i < 0:
            raise ValueError(f"unknown TCP flag letter {ch!r} (use {_LETTERS})")
        out |= Flags(1 << i)
    return out


class Options(NamedTuple):
    """TCP options we understand. Unknown options are skipped by the decoders.

    A named tuple (immutable, compares with ``==``, cheap to build on the hot path)."""

    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    timestamps: tuple[int, int] | None = None  # (TSval, TSecr)

    def __bool__(self) -> bool:
        return bool(
            self.mss is not None
            or self.wscale is not None
            or self.sack_permitted
            or self.sack_blocks
            or self.timestamps is not None
        )

    def to_dict(self) -> dict:
        d: dict = {}
        if self.mss is not None:
            d["mss"] = self.mss
        if self.wscale is not None:
            d["wscale"] = self.wscale
        if self.sack_permitted:
            d["sack_perm"] = True
        if self.sack_blocks:
            d["sack"] = [list(b) for b in self.sack_blocks]
        if self.timestamps is not None:
            d["ts"] = list(self.timestamps)
        return d


NO_OPTIONS = Options()


class Segment(NamedTuple):
    """One TCP segment. ``flags`` is a plain int (compare with the module's FIN, SYN, ...
    constants or :class:`Flags`); ``payload`` is bytes (or a memoryview on the hot path)."""

    src_port: int
    dst_port: int
    seq: int
    ack: int = 0
    flags: int = 0
    window: int = 0
    options: Options = NO_OPTIONS
    payload: bytes = b""
    urgent: int = 0
    # The IP header's ECN field (RFC 3168 5) of the packet that carries the segment:
    # 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE. Set on the IP layer by encode_ip, read back by
    # decode_ip (the TCP-level codecs ignore it).
    ecn: int = 0

    @property
    def seq_len(self) -> int:
        """Sequence space the segment occupies: payload + SYN + FIN."""
        f = self.flags
        return len(self.payload) + (f & SYN and 1) + (f & FIN and 1)

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    def replace(self, **kw) -> Segment:
        return self._replace(**kw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = tuple.__hash__

    def __str__(self) -> str:
        s = f"{self.src_port}>{self.dst_port} [{flags_str(self.flags)}] seq={self.seq}"
        if self.flags & ACK:
            s += f" ack={self.ack}"
        s += f" win={self.window} len={len(self.payload)}"
        if self.options:
            s += f" {self.options.to_dict()}"
        return s


class Packet(NamedTuple):
    """A segment with its IP addresses: what links, codecs, faults and the stack exchange."""

    src: str
    dst: str
    segment: Segment

    def __str__(self) -> str:
        s = self.segment
        return f"{self.src}:{s.src_port} > {self.dst}:{s.dst_port} {str(s).split(' ', 1)[1]}"


# The three built from a tuple of all their fields, on the per-segment paths: a named tuple's
# own constructor is a Python function (it fills in defaults), these are C calls.
new_options = partial(tuple.__new__, Options)
new_segment = partial(tuple.__new__, Segment)
new_packet = partial(tuple.__new__, Packet)


#: the IP ECN codepoints (RFC 3168 5)
NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3
