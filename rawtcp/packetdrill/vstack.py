"""A rawtcp stack on a virtual clock that :class:`rawtcp.socket.Socket` runs on unchanged.

The packetdrill runner drives it: it injects the script's inbound segments, advances the
clock when the script says so, and collects the segments the core sends (with the virtual
time each was sent at). Nothing here reads a clock, sleeps or touches a network.

Socket calls go through the same socket layer users get (errnos, blocking, options). A
socket call that blocks (``accept`` waiting for a connection, a ``read`` waiting for data)
runs in a worker thread (:meth:`VirtualStack.start`); it parks in :meth:`wait_for` until the
core's state changes. The hand-off is deterministic: after every change (a packet injected,
a timer fired, a call into the core) the main thread waits in :meth:`settle` until every
worker has either finished or re-evaluated its predicate against the new state and parked
again. Only one thread touches the core at a time, and virtual time moves only in
:meth:`advance_to`, called by the runner.

The interface the socket layer uses (as ``rawtcp.runtime.Stack`` offers it): ``lock``,
``call(fn)`` (``fn(now)``), ``wait_for(predicate, timeout)``, ``check_alive()``, ``core``,
``config``, ``addresses``, ``default_address(family)``, ``error``, ``closed``,
``add_watcher``/``remove_watcher`` and ``socket()``.
"""

from __future__ import annotations

import errno
import random
import socket as _socket
import threading
from collections.abc import Callable
from typing import Any

from rawtcp.core.config import Config
from rawtcp.core.segment import Packet
from rawtcp.core.stack import Stack as CoreStack

#: the fixed ISN base: connections opened at virtual time t get ISN_BASE + t/4 (the RFC 6528
#: clock, without the keyed hash): deterministic, and increasing for a reused 4-tuple
ISN_BASE = 1_000_000

#: real seconds a worker may compute without parking or finishing before the runner gives up
#: (a bug, not a timing: virtual time does not move meanwhile)
SETTLE_LIMIT_S = 20.0


def fixed_isn(laddr: str, lport: int, raddr: str, rport: int, now: int) -> int:
    """Deterministic ISNs for the virtual clock (see :data:`ISN_BASE`)."""
    return (ISN_BASE + now // 4) & 0xFFFFFFFF


class StackStuck(RuntimeError):
    """A worker thread neither parked nor finished within SETTLE_LIMIT_S real seconds."""


class Job:
    """One socket call running in a worker thread."""

    def __init__(self, stack: VirtualStack, fn: Callable[[], Any], name: str) -> None:
        self.stack = stack
        self.fn = fn
        self.name = name
        self.done = False
        self.parked_gen: int | None = None   # the state generation it parked at, or None
        self.deadline: int | None = None     # virtual time its wait times out, or None
        self.result: Any = None
        self.exc: BaseException | None = None
        self.started_at = stack.now
        self.ended_at: int | None = None
        self.thread = threading.Thread(target=self._run, name=f"pd-{name}", daemon=True)

    def _run(self) -> None:
        st = self.stack
        st._local.job = self
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: BLE001 - handed to the runner as the call's result
            self.exc = e
        with st.lock:
            self.done = True
            self.ended_at = st.now
            st._bump()

    @property
    def parked(self) -> bool:
        return not self.done and self.parked_gen is not None


class VirtualStack:
    """A core stack on a virtual clock, with the runtime's interface for sockets."""

    def __init__(self, config: Config | None = None, addresses: list[str] | None = None, *,
                 isn: Callable[[str, int, str, int, int], int] | None = None,
                 tracer: Callable[[dict], None] | None = None, seed: int = 0,
                 start_us: int = 0) -> None:
        self.config = config or Config()
        self.addresses = [str(a) for a in (addresses or [])]
        self.now = start_us
        self.lock = threading.RLock()
        self._cond = threading.Condition(self.lock)
        self.core = CoreStack(self.config, isn=isn or fixed_isn, rng=random.Random(seed),
                              tracer=tracer)
        self.error: BaseException | None = None
        self._closed = False
        self._watchers: set[Callable[[bool], None]] = set()
        self._gen = 0
        self._jobs: list[Job] = []
        self._local = threading.local()
        #: (virtual time, packet) of every segment the core sent, in order; the runner
        #: consumes it
        self.sent: list[tuple[int, Packet]] = []

    # ------------------------------------------------------------------ the socket layer's side
    @property
    def closed(self) -> bool:
        return self._closed

    def socket(self, family: int | None = None, type: int | None = None, proto: int = 0):
        from rawtcp.socket import Socket

        return Socket(self, family, type, proto)

    def check_alive(self) -> None:
        if self.error is not None:
            raise OSError(errno.EIO, f"rawtcp virtual stack failed: {self.error!r}")
        if self._closed:
            raise OSError(errno.EBADF, "the rawtcp stack is closed")

    def add_watcher(self, fn: Callable[[bool], None]) -> None:
        self._watchers.add(fn)

    def remove_watcher(self, fn: Callable[[bool], None]) -> None:
        self._watchers.discard(fn)

    def default_address(self, family: int) -> str:
        for a in self.addresses:
            if (":" in a) == (family == _socket.AF_INET6):
                return a
        fam = "IPv6" if family == _socket.AF_INET6 else "IPv4"
        raise OSError(errno.EADDRNOTAVAIL, f"the virtual stack has no {fam} address")

    def call(self, fn: Callable[[int], Any], answered: bool = False) -> Any:
        """Run ``fn(now)`` against the core under the lock; collect what it sent.
        ``answered`` (runtime.Stack.call's hint about parking the link) means nothing on
        a virtual clock."""
        with self.lock:
            self.check_alive()
            try:
                return fn(self.now)
            finally:
                self._after_change()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Park until ``predicate()`` holds (False once ``timeout`` virtual seconds passed).

        From a worker thread, the main thread moves time and state on meanwhile. From the
        main thread nothing could change the state, so it only tells whether the predicate
        holds now."""
        job: Job | None = getattr(self._local, "job", None)
        with self.lock:
            deadline = None if timeout is None else self.now + int(timeout * 1_000_000)
            try:
                while True:
                    if predicate():
                        return True
                    self.check_alive()
                    if deadline is not None and self.now >= deadline:
                        return False
                    if job is None:
                        raise OSError(errno.EWOULDBLOCK, "the call would block and nothing "
                                                         "runs the clock meanwhile")
                    job.parked_gen = self._gen
                    job.deadline = deadline
                    self._cond.notify_all()
                    while job.parked_gen == self._gen:
                        self._cond.wait()
            finally:
                if job is not None:
                    job.parked_gen = None
                    job.deadline = None

    # ------------------------------------------------------------------ the runner's side
    def _bump(self) -> None:
        """Under the lock: the state changed; parked workers look again."""
        self._gen += 1
        self._cond.notify_all()

    def _after_change(self) -> None:
        pkts = self.core.take_packets()
        if pkts:
            now = self.now
            self.sent.extend((now, p) for p in pkts)
        self.core.notify_changed()
        self._bump()

    def begin(self) -> None:
        """The script starts (virtual time is already 0)."""

    def start(self, fn: Callable[[], Any], name: str = "call", may_block: bool = True) -> Job:
        """Run ``fn`` (a socket call) in a worker thread; return once it finished or parked
        (``may_block`` matters only in real time, see rtstack)."""
        job = Job(self, fn, name)
        with self.lock:
            self._jobs.append(job)
        job.thread.start()
        self.settle()
        return job

    def settle(self) -> None:
        """Wait (really) until every worker finished or parked on the current state."""
        with self.lock:
            ok = self._cond.wait_for(self._quiet, SETTLE_LIMIT_S)
            self._jobs = [j for j in self._jobs if not j.done]
            if not ok:
                busy = ", ".join(j.name for j in self._jobs if not j.parked)
                raise StackStuck(f"socket call(s) {busy} neither blocked nor returned")

    def _quiet(self) -> bool:
        gen = self._gen
        return all(j.done or j.parked_gen == gen for j in self._jobs)

    @property
    def jobs(self) -> list[Job]:
        """Workers still running (parked)."""
        with self.lock:
            return [j for j in self._jobs if not j.done]

    def inject(self, pkts: list[Packet]) -> None:
        """Inbound segments arrive now."""
        with self.lock:
            self.check_alive()
            self.core.on_packets(pkts, self.now)
            self._after_change()
        self.settle()

    def next_event_at(self) -> int | None:
        """The earliest virtual time something happens by itself: a core timer or a worker's
        wait timing out."""
        with self.lock:
            cands = [j.deadline for j in self._jobs if not j.done and j.deadline is not None]
            pa = self.core.poll_at()
            if pa is not None:
                cands.append(pa)
            return min(cands) if cands else None

    def step(self, limit: int) -> bool:
        """Move to the next event at or before ``limit`` and run it; False if there is none
        (the clock is left where it was)."""
        t = self.next_event_at()
        if t is None or t > limit:
            return False
        with self.lock:
            self.now = max(self.now, t)
            pa = self.core.poll_at()
            if pa is not None and pa <= self.now:
                self.core.on_timer(self.now)
            self._after_change()
        self.settle()
        return True

    def advance_to(self, t: int, until: Callable[[], bool] | None = None) -> bool:
        """Run every event up to virtual time ``t``, then set the clock to ``t`` (never
        backwards). With ``until``: stop early (clock at that event) once ``until()`` holds;
        returns True then."""
        while True:
            if until is not None and until():
                return True
            if not self.step(t):
                break
        if until is not None and until():
            return True
        with self.lock:
            if t > self.now:
                self.now = t
                self._bump()
        self.settle()
        return until() if until is not None else False

    def close(self) -> None:
        """Abort what is open and release the workers (their calls fail with EBADF)."""
        with self.lock:
            if self._closed:
                return
            try:
                self.core.close(self.now)
                self._after_change()
            finally:
                self._closed = True
                self._bump()
                for w in list(self._watchers):
                    try:
                        w(True)
                    except Exception:  # noqa: BLE001, S110 - closing: release the rest
                        pass
        for j in list(self._jobs):
            j.thread.join(2.0)

    def __enter__(self) -> VirtualStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
