"""Named one-shot timers of one connection (absolute deadlines in us), with tracing."""

from __future__ import annotations

from collections.abc import Callable

TIMER_NAMES = ("rtx", "persist", "delack", "keepalive", "time_wait", "fin_wait_2")


class Timers:
    """A few named deadlines. ``trace(name, action, at)`` is called on set/cancel/fired
    when given (None = no tracing cost)."""

    __slots__ = ("deadlines", "_trace")

    def __init__(self, trace: Callable[[str, str, int], None] | None = None) -> None:
        self.deadlines: dict[str, int] = {}
        self._trace = trace

    def set(self, name: str, at: int) -> None:
        self.deadlines[name] = at
        if self._trace is not None:
            self._trace(name, "set", at)

    def cancel(self, name: str) -> None:
        at = self.deadlines.pop(name, None)
        if at is not None and self._trace is not None:
            self._trace(name, "cancel", at)

    def cancel_all(self) -> None:
        for name in list(self.deadlines):
            self.cancel(name)

    def is_set(self, name: str) -> bool:
        return name in self.deadlines

    def get(self, name: str) -> int | None:
        return self.deadlines.get(name)

    def next_deadline(self) -> int | None:
        d = self.deadlines
        return min(d.values()) if d else None

    def pop_expired(self, now: int) -> list[str]:
        """Remove and return the timers due at ``now``, earliest first (traced as fired)."""
        due = sorted((at, n) for n, at in self.deadlines.items() if at <= now)
        for at, name in due:
            del self.deadlines[name]
            if self._trace is not None:
                self._trace(name, "fired", at)
        return [n for _, n in due]
