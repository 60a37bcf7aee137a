"""Send buffer and out-of-order reassembly.

Sequence numbers here are *absolute* (unbounded) integers: the connection converts from and
to 32-bit wire values at its edges, so no modular arithmetic is needed inside.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterator

# Memory charged per stored piece on top of its bytes (``Reassembly.cost``), like Linux's
# skb truesize: what CPython spends to hold one piece (a bytes object header of 33 bytes, its
# start as an int of 28 bytes, two list slots of 8 bytes), rounded up to 80. A peer that sends
# 1-byte segments into holes is charged 81 bytes per byte it makes us keep.
PIECE_OVERHEAD = 80


class SendBuffer:
    """Bytes written by the user and not yet acknowledged. ``start`` is the absolute sequence
    number of the first byte held; ``end`` the one after the last.

    The bytes live in one bytearray from index ``head`` on. An ACK only moves ``head``; the
    acknowledged front is cut off once it is as large as what is still held. (Cutting it at
    every ACK made CPython copy the whole buffer at the next append that had to grow it: with
    a 4 MiB buffer that copy was most of the cost of sending.)"""

    __slots__ = ("buf", "head", "start", "end", "limit")

    def __init__(self, start: int, limit: int) -> None:
        self.buf = bytearray()
        self.head = 0
        self.start = start
        # start + held bytes, kept as a field (read several times per segment): moved by
        # write() and rebase(), never by an ACK
        self.end = start
        self.limit = limit

    @property
    def free(self) -> int:
        return max(0, self.limit - len(self.buf) + self.head)

    def __len__(self) -> int:
        return len(self.buf) - self.head

    def write(self, data: bytes) -> int:
        n = min(len(data), self.limit - len(self.buf) + self.head)
        if n > 0:
            self.buf += memoryview(data)[:n]
            self.end += n
            return n
        return 0

    def peek(self, seq: int, n: int) -> bytes:
        off = seq - self.start
        if off < 0:
            raise ValueError("peek below the send buffer")
        off += self.head
        with memoryview(self.buf) as view:
            return bytes(view[off : off + n])

    def ack_to(self, seq: int) -> int:
        """Drop every byte below ``seq``; returns how many were dropped."""
        buf = self.buf
        n = min(seq - self.start, len(buf) - self.head)
        if n <= 0:
            return 0
        head = self.head + n
        self.start += n
        if head >= len(buf) - head:
            # head first: a reader without the lock (socket.py _wait) meanwhile sees the
            # buffer no emptier than it is, never a negative length
            self.head = 0
            del buf[:head]             # at most as many bytes as were acknowledged move
        else:
            self.head = head
        return n

    def rebase(self, start: int) -> None:
        """Set where the (empty) buffer starts, once the ISN is known."""
        assert len(self.buf) == self.head
        self.start = self.end = start


class ReceiveBuffer:
    """In-order bytes received and not read yet (``rbuf += data`` appends).

    Held as a queue of the appended pieces, not copied into one buffer: a read joins the
    pieces it takes (a read of exactly one piece returns it as it is), so a large segment's
    bytes are copied once between the segment and the reader. Small appends (a peer sending
    tiny segments) are gathered into bytearray pieces of up to ``GATHER`` bytes, so the
    per-piece overhead stays a few percent of what is held. ``storage()`` is what the
    pieces take."""

    __slots__ = ("pieces", "size", "head")

    SMALL = 1024          # appends shorter than this are gathered ...
    GATHER = 64 * 1024    # ... into bytearray pieces up to this size

    def __init__(self) -> None:
        # an empty buffer holds no deque (an empty deque takes ~600 bytes, and most of
        # the thousands of idle connections a stack may hold have nothing unread)
        self.pieces: deque | tuple = _NO_PIECES
        self.size = 0
        self.head = 0      # bytes of pieces[0] already read

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __iadd__(self, data) -> ReceiveBuffer:
        n = len(data)
        if n:
            pieces = self.pieces
            if pieces is _NO_PIECES:
                pieces = self.pieces = deque()
            if n >= self.SMALL:
                pieces.append(data if type(data) is bytes else bytes(data))
            elif pieces and type(pieces[-1]) is bytearray and len(pieces[-1]) < self.GATHER:
                pieces[-1] += data
            else:
                pieces.append(bytearray(data))
            self.size += n
        return self

    def storage(self) -> int:
        """Bytes the pieces occupy (read bytes of the first one included)."""
        return sum(len(p) for p in self.pieces)

    def _collect(self, n: int, remove: bool) -> bytes:
        pieces = self.pieces
        head = self.head
        out = []
        i = 0
        while n > 0 and i < len(pieces):
            p = pieces[i]
            avail = len(p) - head
            if avail <= n:
                out.append(p[head:] if head else p)
                n -= avail
                if remove:
                    pieces.popleft()
                else:
                    i += 1
                head = 0
            else:
                out.append(p[head:head + n])
                head += n
                n = 0
        if remove:
            self.head = head
            if not pieces:
                self.pieces = _NO_PIECES
        if len(out) == 1 and type(out[0]) is bytes:
            data = out[0]
        else:
            data = b"".join(out)
        if remove:
            self.size -= len(data)
        return data

    def peek(self, n: int) -> bytes:
        """The first ``n`` bytes (or all there are), left in place."""
        return self._collect(n, False)

    def take(self, n: int) -> bytes:
        """The first ``n`` bytes (or all there are), removed."""
        return self._collect(n, True)

    def clear(self) -> None:
        self.pieces = _NO_PIECES
        self.size = 0
        self.head = 0


_NO_PIECES: tuple = ()


class _Blocks:
    """Read-only view of the blocks of a :class:`Reassembly`: ``len()`` is O(1); iterating
    yields ``(start, bytes)`` for each block (joining its pieces)."""

    __slots__ = ("_r",)

    def __init__(self, r: Reassembly) -> None:
        self._r = r

    def __len__(self) -> int:
        return len(self._r._bs)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        r = self._r
        for s, e in zip(r._bs, r._be, strict=True):
            yield s, r.read(s, e)

    def __getitem__(self, i: int) -> tuple[int, bytes]:
        r = self._r
        return r._bs[i], r.read(r._bs[i], r._be[i])


class Reassembly:
    """Out-of-order segments above rcv_nxt.

    Two sorted views of the same bytes, kept in parallel lists so every lookup is a bisect and
    every insert or delete is a list memmove:

    - *blocks*: disjoint, non-adjacent ``[start, end)`` ranges (``_bs``, ``_be``): what SACK
      reports (RFC 2018) and what ``pop_ready`` hands over;
    - *pieces*: the stored bytes (``_ps`` starts, ``_pd`` data), disjoint and sorted, each
      inside one block. A segment adds only the parts not held yet, as new pieces: merged
      blocks never re-copy their bytes.

    ``add`` costs O(log n + k) list operations for n blocks and k blocks it merges (k is
    amortized O(1): a block is merged away once), plus the new bytes; ``pop_ready`` O(log n)
    plus the pieces and bytes it returns. ``cost`` charges each piece ``PIECE_OVERHEAD`` on
    top of its bytes (Linux's truesize), and ``prune(limit)`` drops from the highest sequence
    numbers down (Linux tcp_prune_ofo_queue).
    """

    __slots__ = ("_bs", "_be", "_ps", "_pd", "_recent", "nbytes")

    def __init__(self) -> None:
        self._bs: list[int] = []
        self._be: list[int] = []
        self._ps: list[int] = []
        self._pd: list[bytes] = []
        self._recent: list[int] = []  # starts of the latest-touched blocks, latest first
        self.nbytes = 0

    def __bool__(self) -> bool:
        return bool(self._bs)

    def __len__(self) -> int:
        """Number of blocks (disjoint ranges held)."""
        return len(self._bs)

    @property
    def blocks(self) -> _Blocks:
        """The blocks, lowest first: ``len(r.blocks)`` is cheap, iteration joins pieces."""
        return _Blocks(self)

    @property
    def npieces(self) -> int:
        return len(self._ps)

    @property
    def cost(self) -> int:
        """Memory charged for what is held: bytes plus ``PIECE_OVERHEAD`` per piece."""
        return self.nbytes + PIECE_OVERHEAD * len(self._ps)

    @property
    def recent(self) -> tuple[int, int] | None:
        """The block holding the latest arrival (RFC 2018 4), or None."""
        for s in self._recent:
            i = bisect_left(self._bs, s)
            if i < len(self._bs) and self._bs[i] == s:
                return s, self._be[i]
        return None

    def ranges(self) -> list[tuple[int, int]]:
        """Every block as ``(start, end)``, lowest first."""
        return list(zip(self._bs, self._be, strict=True))

    def _touch(self, start: int) -> None:
        rec = self._recent
        if start in rec:
            rec.remove(start)
        rec.insert(0, start)
        del rec[4:]

    def add(self, start: int, data: bytes) -> None:
        """Keep ``data`` (any bytes-like) found at ``start``; overlaps with what is held keep
        the bytes already there (they are the same bytes in a correct stream)."""
        size = len(data)
        if not size:
            return
        end = start + size
        bs, be = self._bs, self._be
        i = bisect_left(be, start)     # first block ending at or after start (adjacent too)
        j = bisect_right(bs, end, i)   # blocks [i, j) touch [start, end]
        if i == j:
            bs.insert(i, start)
            be.insert(i, end)
            self._insert_piece(start, data, 0, size)
            self._touch(start)
            return
        ns = min(start, bs[i])
        ne = max(end, be[j - 1])
        cur = start
        for k in range(i, j):
            s = bs[k]
            if s > cur:
                self._insert_piece(cur, data, cur - start, s - start)
            e = be[k]
            if e > cur:
                cur = e
        if cur < end:
            self._insert_piece(cur, data, cur - start, size)
        bs[i:j] = (ns,)
        be[i:j] = (ne,)
        self._touch(ns)

    def _insert_piece(self, seq: int, data: bytes, lo: int, hi: int) -> None:
        if lo == 0 and hi == len(data) and type(data) is bytes:
            piece = data
        else:
            piece = bytes(memoryview(data)[lo:hi])
        k = bisect_left(self._ps, seq)
        self._ps.insert(k, seq)
        self._pd.insert(k, piece)
        self.nbytes += hi - lo

    def read(self, a: int, b: int) -> bytes:
        """The held bytes in ``[a, b)``, which must lie inside one block."""
        ps, pd = self._ps, self._pd
        k = max(0, bisect_right(ps, a) - 1)
        out = []
        while k < len(ps) and ps[k] < b:
            s, d = ps[k], pd[k]
            e = s + len(d)
            if e > a:
                out.append(d[max(0, a - s) : min(len(d), b - s)])
            k += 1
        return b"".join(out)

    def pop_ready(self, rcv_nxt: int) -> bytes:
        """Remove and return the bytes that now continue the stream at ``rcv_nxt``; blocks
        wholly below ``rcv_nxt`` are dropped."""
        bs = self._bs
        if not bs or bs[0] > rcv_nxt:
            return b""
        k = bisect_right(bs, rcv_nxt)  # blocks [0, k) start at or below rcv_nxt
        top = self._be[k - 1]
        edge = max(top, rcv_nxt)
        ps, pd = self._ps, self._pd
        m = bisect_left(ps, edge)      # pieces [0, m) lie below the last such block's end
        out = []
        dropped = 0
        for q in range(m):
            s, d = ps[q], pd[q]
            dropped += len(d)
            e = s + len(d)
            if e > rcv_nxt:
                out.append(d if s >= rcv_nxt else d[rcv_nxt - s :])
        del ps[:m], pd[:m], bs[:k], self._be[:k]
        self.nbytes -= dropped
        self._recent = [s for s in self._recent if s >= edge]
        return b"".join(out)

    def sack_blocks(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` (start, end) ranges: the block of the latest arrival first, then
        the other recently changed blocks latest first (RFC 2018 4, as Linux), then the rest
        lowest first."""
        out: list[tuple[int, int]] = []
        if limit <= 0:
            return out
        bs, be = self._bs, self._be
        n = len(bs)
        for s in self._recent:
            i = bisect_left(bs, s)
            if i < n and bs[i] == s:
                out.append((s, be[i]))
                if len(out) >= limit:
                    return out
        k = 0
        while len(out) < limit and k < n:
            r = (bs[k], be[k])
            if r not in out:
                out.append(r)
            k += 1
        return out

    def prune(self, limit: int) -> int:
        """Drop whole pieces from the highest sequence numbers down until ``cost <= limit``
        (Linux tcp_prune_ofo_queue). Returns the number of bytes dropped."""
        ps, pd, bs, be = self._ps, self._pd, self._bs, self._be
        dropped = 0
        cost = self.cost
        while ps and cost > limit:
            s = ps.pop()
            n = len(pd.pop())
            dropped += n
            cost -= n + PIECE_OVERHEAD
            if s == bs[-1]:
                bs.pop()
                be.pop()
            else:
                be[-1] = s
        self.nbytes -= dropped
        if dropped:
            self._recent = [s for s in self._recent if bs and s <= bs[-1]]
        return dropped

    def clear(self) -> None:
        self._bs.clear()
        self._be.clear()
        self._ps.clear()
        self._pd.clear()
        self._recent.clear()
        self.nbytes = 0
