"""Deliveries waiting for their release time: a heap, first in first out among equal times."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

from rawtcp.core.segment import Packet

Delivery = tuple[int, Packet, bool]  # (release_time_us, packet, corrupt_checksum)


class ReleaseQueue:
    """Deliveries ordered by release time; equal times keep their push order (so the copies
    of a duplicated segment stay together and in order)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Packet, bool]] = []
        self._n = itertools.count()

    def push(self, items: Iterable[Delivery]) -> None:
        for t, p, c in items:
            heapq.heappush(self._heap, (t, next(self._n), p, c))

    def next_at(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: int) -> list[Delivery]:
        out: list[Delivery] = []
        while self._heap and self._heap[0][0] <= now:
            t, _, p, c = heapq.heappop(self._heap)
            out.append((t, p, c))
        return out

    def pop_all(self) -> list[Delivery]:
        """Everything, in release order, whatever its time."""
        out = [(t, p, c) for t, _, p, c in sorted(self._heap)]   # the counter breaks ties
        self._heap.clear()
        return out

    def __len__(self) -> int:
        return len(self._heap)
