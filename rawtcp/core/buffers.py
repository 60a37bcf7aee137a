"""Send buffer and out-of-order reassembly.

Sequence numbers here are *absolute* (unbounded) integers: the connection converts from and
to 32-bit wire values at its edges, so no modular arithmetic is needed inside.
"""

from __future__ import annotations


class SendBuffer:
    """Bytes written by the user and not yet acknowledged. ``start`` is the absolute sequence
    number of the first byte held; ``end`` the one after the last."""

    __slots__ = ("buf", "start", "limit")

    def __init__(self, start: int, limit: int) -> None:
        self.buf = bytearray()
        self.start = start
        self.limit = limit

    @property
    def end(self) -> int:
        return self.start + len(self.buf)

    @property
    def free(self) -> int:
        return max(0, self.limit - len(self.buf))

    def __len__(self) -> int:
        return len(self.buf)

    def write(self, data: bytes) -> int:
        n = min(len(data), self.free)
        if n:
            self.buf += memoryview(data)[:n]
        return n

    def peek(self, seq: int, n: int) -> bytes:
        off = seq - self.start
        if off < 0:
            raise ValueError("peek below the send buffer")
        return bytes(self.buf[off : off + n])

    def ack_to(self, seq: int) -> int:
        """Drop every byte below ``seq``; returns how many were dropped."""
        n = min(seq - self.start, len(self.buf))
        if n <= 0:
            return 0
        del self.buf[:n]
        self.start += n
        return n

    def rebase(self, start: int) -> None:
        """Set where the (empty) buffer starts, once the ISN is known."""
        assert not self.buf
        self.start = start


class Reassembly:
    """Out-of-order segments above rcv_nxt, merged into disjoint, non-adjacent blocks kept
    sorted by start. ``recent`` is the block that holds the latest arrival (RFC 2018 4)."""

    __slots__ = ("blocks", "recent", "nbytes")

    def __init__(self) -> None:
        self.blocks: list[tuple[int, bytes]] = []
        self.recent: tuple[int, int] | None = None
        self.nbytes = 0

    def __bool__(self) -> bool:
        return bool(self.blocks)

    def add(self, start: int, data: bytes) -> None:
        if not data:
            return
        end = start + len(data)
        new_start, new_end = start, end
        keep_before: list[tuple[int, bytes]] = []
        keep_after: list[tuple[int, bytes]] = []
        merged: list[tuple[int, bytes]] = []
        for s, b in self.blocks:
            e = s + len(b)
            if e < start:
                keep_before.append((s, b))
            elif s > end:
                keep_after.append((s, b))
            else:
                merged.append((s, b))
                new_start = min(new_start, s)
                new_end = max(new_end, e)
        if merged:
            out = bytearray(new_end - new_start)
            for s, b in merged:
                out[s - new_start : s - new_start + len(b)] = b
            out[start - new_start : end - new_start] = data
            blob = bytes(out)
        else:
            blob = bytes(data)
        self.blocks = keep_before + [(new_start, blob)] + keep_after
        self.nbytes = sum(len(b) for _, b in self.blocks)
        self.recent = (new_start, new_end)

    def pop_ready(self, rcv_nxt: int) -> bytes:
        """Remove and return the bytes that now continue the stream at ``rcv_nxt``."""
        out = b""
        while self.blocks and self.blocks[0][0] <= rcv_nxt:
            s, b = self.blocks.pop(0)
            e = s + len(b)
            if e > rcv_nxt:
                out += b[rcv_nxt - s :]
                rcv_nxt = e
        self.nbytes = sum(len(b) for _, b in self.blocks)
        if self.recent is not None and (not self.blocks or self.recent[1] <= rcv_nxt):
            self.recent = None
        return out

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` (start, end) ranges, the most recent arrival's block first."""
        ranges = [(s, s + len(b)) for s, b in self.blocks]
        if self.recent is not None:
            for r in ranges:
                if r[0] <= self.recent[0] < r[1] or r == self.recent:
                    ranges.remove(r)
                    ranges.insert(0, r)
                    break
        return ranges[:limit]

    def clear(self) -> None:
        self.blocks.clear()
        self.recent = None
        self.nbytes = 0
