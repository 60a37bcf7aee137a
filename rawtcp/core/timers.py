"""Timers: a connection's few named deadlines, and the stack's one queue of them.

Each connection keeps its named one-shot deadlines (absolute microseconds) in
:class:`Timers`. The stack finds the next deadline of all its connections in
:class:`TimerQueue`, a heap, without scanning the connections: an idle connection costs
nothing per event.

The heap uses lazy deletion. A connection has an entry for its earliest deadline as the
queue last knew it (``queued_at``). Setting a deadline *earlier* than that pushes a new entry;
setting one later, or cancelling, pushes nothing: the old entry fires early, the stack finds
nothing due for that connection, and re-queues its real next deadline. So the retransmission
timer, restarted on every ACK, costs no heap operation at all.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

TIMER_NAMES = ("rtx", "persist", "delack", "keepalive", "time_wait", "fin_wait_2")


class TimerQueue:
    """Earliest-deadline-first queue of connections (see the module docstring)."""

    __slots__ = ("_heap", "_count")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Any]] = []
        self._count = 0

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, owner: Any, at: int) -> None:
        """``owner`` (anything with a ``queued_at`` attribute) has a deadline at ``at``."""
        q = owner.queued_at
        if q is None or at < q:
            owner.queued_at = at
            self._count += 1
            heapq.heappush(self._heap, (at, self._count, owner))

    def earlier_than(self, at: int) -> bool:
        """Is any real deadline earlier than ``at``? Exact, and no heap work when not: an
        entry is never later than its owner's real deadline, so a top entry at or after
        ``at`` means no."""
        h = self._heap
        if not h or h[0][0] >= at:
            return False
        d = self.next_at()
        return d is not None and d < at

    def next_at(self) -> int | None:
        """The earliest real deadline. Superseded or moved entries at the top are dropped
        (and moved ones re-queued), so the answer is exact: no spurious wake-ups."""
        h = self._heap
        while h:
            at, _, owner = h[0]
            if owner.queued_at == at:
                d = owner.poll_at()
                if d == at:
                    return at
                heapq.heappop(h)
                owner.queued_at = None        # moved later or cancelled
                if d is not None:
                    self.schedule(owner, d)
            else:
                heapq.heappop(h)              # superseded by an earlier entry
        return None

    def pop_due(self, now: int) -> list[Any]:
        """Owners whose queued deadline is due, each once, earliest first. Their
        ``queued_at`` is cleared: the caller fires what is due and re-schedules the rest."""
        h = self._heap
        out = []
        while h and h[0][0] <= now:
            at, _, owner = heapq.heappop(h)
            if owner.queued_at == at:
                owner.queued_at = None
                out.append(owner)
        return out

    def rebuild(self, owners: Iterable[Any]) -> None:
        """Drop superseded entries: one entry per owner that has a deadline."""
        self._heap = []
        for o in owners:
            o.queued_at = None
            d = o.poll_at()
            if d is not None:
                self.schedule(o, d)


class Timers:
    """A few named deadlines of one connection. ``trace(name, action, at, now)`` is called on
    set/cancel/fired when given; ``queue``/``owner`` tell the stack's TimerQueue."""

    __slots__ = ("deadlines", "_trace", "_queue", "_owner")

    def __init__(self, trace: Callable[[str, str, int, int], None] | None = None,
                 queue: TimerQueue | None = None, owner: Any = None) -> None:
        self.deadlines: dict[str, int] = {}
        self._trace = trace
        self._queue = queue
        self._owner = owner

    def set(self, name: str, at: int, now: int) -> None:
        self.deadlines[name] = at
        q = self._queue
        if q is not None:
            qa = self._owner.queued_at
            if qa is None or at < qa:     # else the queued entry comes first (schedule)
                q.schedule(self._owner, at)
        if self._trace is not None:
            self._trace(name, "set", at, now)

    def cancel(self, name: str, now: int) -> None:
        at = self.deadlines.pop(name, None)
        if at is not None and self._trace is not None:
            self._trace(name, "cancel", at, now)

    def cancel_all(self, now: int) -> None:
        for name in list(self.deadlines):
            self.cancel(name, now)

    def next_deadline(self) -> int | None:
        d = self.deadlines
        return min(d.values()) if d else None

    def pop_expired(self, now: int) -> list[str]:
        """Remove and return the timers due at ``now``, earliest first (traced as fired)."""
        due = sorted((at, n) for n, at in self.deadlines.items() if at <= now)
        for at, name in due:
            del self.deadlines[name]
            if self._trace is not None:
                self._trace(name, "fired", at, now)
        return [n for _, n in due]
