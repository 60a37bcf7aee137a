"""Real time and a real link: the only place in rawtcp that reads the clock and blocks.

One event-loop thread per :class:`Stack`. It waits (selectors) on the link's fd and a
wake-up pipe, and sleeps until the earliest of the core's ``poll_at()``, the next packet and
the next packet held back by a fault rule. User calls come from other threads: every call
into the core takes the stack lock, then the output is flushed to the link and waiters are
woken through one condition variable.

Pipeline (both directions go through the fault engine, when there is one)::

    link.recv_batch -> decode -> pcap(in) -> faults("in") -> core.on_packet
    core.take_packets -> faults("out") -> encode (+corrupt) -> pcap(out) -> link.send
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

from rawtcp.core.config import Config
from rawtcp.core.segment import Packet
from rawtcp.core.stack import Stack as CoreStack

log = logging.getLogger("rawtcp")

Event = dict[str, Any]


def _wire():
    from rawtcp import wire

    return wire


class StackError(OSError):
    """The event loop failed; every socket of the stack reports it."""


class Stack:
    """A rawtcp stack running on a link in its own event-loop thread.

    >>> with Stack(link) as st:                       # doctest: +SKIP
    ...     s = st.socket()
    ...     s.connect(("10.0.0.1", 7))
    """

    def __init__(
        self,
        link,
        config: Config | None = None,
        *,
        faults=None,
        tracer: Callable[[Event], None] | None = None,
        trace=None,
        pcap=None,
        isn=None,
        rng=None,
        name: str | None = None,
        start: bool = True,
        clock_origin: int | None = None,
    ) -> None:
        self.link = link
        self.config = config or Config()
        self.name = name or f"rawtcp-{getattr(link, 'name', 'link')}"
        # The core's clock: microseconds since clock_origin (a time.monotonic_ns() value;
        # default: now). Stacks of one experiment share an origin so their traces line up.
        self._t0 = time.monotonic_ns() if clock_origin is None else clock_origin
        # pcap timestamps are wall-clock time: the wall time at the origin plus the core's time.
        self._wall0_us = (time.time_ns() - (time.monotonic_ns() - self._t0)) // 1000
        self._own_tracer = None
        if trace is not None and tracer is None:
            # contracts.md spells it trace=: a JSON-lines path (owned) or a callable
            if isinstance(trace, (str, os.PathLike)):
                from rawtcp.trace import Tracer

                self._own_tracer = tracer = Tracer(os.fspath(trace))
            else:
                tracer = trace
        self._tracer = tracer
        self._pcap = None
        self._own_pcap = False
        if pcap is not None:
            if isinstance(pcap, (str, os.PathLike)):
                from rawtcp.trace import PcapRecorder

                self._pcap = PcapRecorder(os.fspath(pcap))
                self._own_pcap = True
            else:
                self._pcap = pcap
        self.faults = None
        if faults:
            from rawtcp.faults import FaultEngine

            if isinstance(faults, FaultEngine):
                self.faults = faults
                if faults.tracer is None:
                    faults.tracer = self._trace
                if faults.state_of is None:
                    faults.state_of = self._state_of
            else:
                self.faults = FaultEngine(list(faults), tracer=self._trace, state_of=self._state_of)
        self.core = CoreStack(self.config, isn=isn, rng=rng, tracer=self._trace if tracer else None)
        self.counters: dict[str, int] = {
            "frames_in": 0,
            "frames_out": 0,
            "dropped_malformed": 0,
            "dropped_not_ours": 0,
            "dropped_corrupt": 0,
            "send_errors": 0,
        }
        self.addresses = [str(a) for a in getattr(link, "addresses", [])]
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.error: BaseException | None = None
        # packets a delay rule holds back, per direction (rawtcp.faults.ReleaseQueue)
        self._delayed: dict[str, Any] = {}
        if self.faults is not None:
            from rawtcp.faults import ReleaseQueue

            self._delayed = {"in": ReleaseQueue(), "out": ReleaseQueue()}
        self._sockets: set[Any] = set()
        self._stopping = False
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(link.fileno(), selectors.EVENT_READ, "link")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------------ clock and tracing
    def now(self) -> int:
        """Microseconds since the stack started (the core's clock)."""
        return (time.monotonic_ns() - self._t0) // 1000

    def _trace(self, ev: Event) -> None:
        if self._tracer is not None:
            self._tracer(ev)

    def _state_of(self, pkt: Packet, direction: str) -> str | None:
        s = pkt.segment
        if direction == "in":
            tcb = self.core.lookup(pkt.dst, s.dst_port, pkt.src, s.src_port)
        else:
            tcb = self.core.lookup(pkt.src, s.src_port, pkt.dst, s.dst_port)
        return tcb.state.name if tcb is not None else None

    # ------------------------------------------------------------------ user side
    def socket(self, family: int | None = None, type: int | None = None, proto: int = 0):
        """A BSD-like socket on this stack (``AF_INET``/``AF_INET6``, ``SOCK_STREAM``)."""
        from rawtcp.socket import Socket

        return Socket(self, family, type, proto)

    def call(self, fn: Callable[[int], Any]) -> Any:
        """Run ``fn(now)`` against the core under the lock, then flush and wake everyone."""
        with self.lock:
            self._check_alive()
            now = self.now()
            try:
                return fn(now)
            finally:
                self._flush(now)
                self.cond.notify_all()
                self._notify_sockets()
                self._wake()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``predicate()`` (evaluated under the lock) holds; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while True:
                if predicate():
                    return True
                if self.error is not None:
                    raise StackError(errno.EIO, f"rawtcp event loop failed: {self.error!r}")
                if self._closed:
                    raise OSError(errno.EBADF, "the rawtcp stack is closed")
                if deadline is None:
                    self.cond.wait(1.0)
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self.cond.wait(min(left, 1.0))

    def _check_alive(self) -> None:
        if self.error is not None:
            raise StackError(errno.EIO, f"rawtcp event loop failed: {self.error!r}")
        if self._closed:
            raise OSError(errno.EBADF, "the rawtcp stack is closed")

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _notify_sockets(self) -> None:
        for s in list(self._sockets):
            s._update_ready()

    def default_address(self, family: int) -> str:
        import socket as _s

        for a in self.addresses:
            if (":" in a) == (family == _s.AF_INET6):
                return a
        fam = "IPv6" if family == _s.AF_INET6 else "IPv4"
        raise OSError(errno.EADDRNOTAVAIL, f"the link {self.link.name} has no {fam} address")

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        try:
            while not self._stopping:
                with self.lock:
                    deadline = self.core.poll_at()
                    for q in self._delayed.values():
                        h = q.next_at()
                        if h is not None:
                            deadline = h if deadline is None else min(deadline, h)
                    pr = self._fault_release_at()
                    if pr is not None:
                        deadline = pr if deadline is None else min(deadline, pr)
                now = self.now()
                if deadline is None:
                    timeout = 1.0
                else:
                    timeout = min(max(0.0, (deadline - now) / 1e6), 1.0)
                ready = self._sel.select(timeout)
                frames: list[bytes] = []
                for key, _ in ready:
                    if key.data == "link":
                        frames.extend(self._recv_link())
                    else:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                if self._stopping:
                    break
                with self.lock:
                    now = self.now()
                    for raw in frames:
                        self._input(raw, now)
                    self._release_held(now)
                    pa = self.core.poll_at()
                    if pa is not None and pa <= now:
                        self.core.on_timer(now)
                    self._flush(now)
                    self.cond.notify_all()
                    self._notify_sockets()
        except BaseException as exc:  # never silent: logged, traced, and sockets see it
            log.exception("rawtcp event loop failed")
            with self.lock:
                self.error = exc
                self._trace({"t": self.now(), "ev": "error", "errno": errno.EIO,
                             "message": f"event loop failed: {exc!r}"})
                self.cond.notify_all()
                self._notify_sockets()

    def _recv_link(self) -> list[bytes]:
        """The link's waiting packets. A link error (interface down, device gone for a
        moment) is not the end of the stack: it is counted and traced, and TCP's timers
        recover as they would from any loss. A short pause keeps a persistent error from
        spinning the loop."""
        try:
            return self.link.recv_batch()
        except OSError as e:
            if getattr(self.link, "closed", False):
                raise
            self.counters["link_errors"] = self.counters.get("link_errors", 0) + 1
            with self.lock:
                self._trace({"t": self.now(), "ev": "error", "errno": e.errno,
                             "message": f"link {getattr(self.link, 'name', '?')}: {e}"})
            time.sleep(0.05)
            return []

    def _input(self, raw: bytes, now: int) -> None:
        wire = _wire()
        self.counters["frames_in"] += 1
        try:
            pkt = wire.decode_ip(raw)
        except wire.ParseError as e:
            reason = getattr(e, "reason", "malformed")
            if reason == "not-tcp":
                return
            self.counters["dropped_malformed"] += 1
            self._trace({"t": now, "ev": "drop", "dir": "in", "reason": reason})
            if self._pcap is not None:
                self._pcap.record(raw, self._wall0_us + now)
            return
        if self.addresses and pkt.dst not in self.addresses:
            self.counters["dropped_not_ours"] += 1
            return
        if self._pcap is not None:
            self._pcap.record(raw, self._wall0_us + now)
        if self.faults is None:
            self.core.on_packet(pkt, now)
            return
        for when, p, corrupt in self.faults.process("in", pkt, now):
            self._deliver_in(when, p, corrupt, now)

    def _fault_release_at(self) -> int | None:
        return self.faults.pending_release_at() if self.faults is not None else None

    def _deliver_in(self, when: int, pkt: Packet, corrupt: bool, now: int) -> None:
        if when > now:
            self._delayed["in"].push([(when, pkt, corrupt)])
            return
        if corrupt:
            # What the core would see after a checksum check: nothing. Count it as such.
            self.counters["dropped_corrupt"] += 1
            self._trace({"t": now, "ev": "drop", "dir": "in", "reason": "bad-checksum"})
            return
        self.core.on_packet(pkt, now)

    def _release_held(self, now: int) -> None:
        if self.faults is not None:
            for when, p, corrupt in self.faults.release_due(now, "in"):
                self._deliver_in(when, p, corrupt, now)
            for _when, p, corrupt in self.faults.release_due(now, "out"):
                self._transmit(p, corrupt, now)
        if self._delayed:
            for _when, p, corrupt in self._delayed["in"].pop_due(now):
                self._deliver_in(now, p, corrupt, now)
            for _when, p, corrupt in self._delayed["out"].pop_due(now):
                self._transmit(p, corrupt, now)

    def _flush(self, now: int) -> None:
        for pkt in self.core.take_packets():
            if self.faults is None:
                self._transmit(pkt, False, now)
                continue
            for when, p, corrupt in self.faults.process("out", pkt, now):
                if when > now:
                    self._delayed["out"].push([(when, p, corrupt)])
                else:
                    self._transmit(p, corrupt, now)

    def _transmit(self, pkt: Packet, corrupt: bool, now: int) -> None:
        wire = _wire()
        raw = wire.encode_ip(pkt)
        if corrupt:
            raw = wire.corrupt_checksum(raw)
        if self._pcap is not None:
            self._pcap.record(raw, self._wall0_us + now)
        try:
            self.link.send(raw)
            self.counters["frames_out"] += 1
        except OSError as e:
            # A full device queue or a vanished route is packet loss, not a crash; TCP recovers.
            self.counters["send_errors"] += 1
            self._trace({"t": now, "ev": "error", "errno": e.errno, "message": f"send: {e}"})

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Abort every connection still open (RST, like an exiting process with SO_LINGER 0),
        stop the loop and release the link, fds, pcap and trace resources. Idempotent."""
        if self._closed:
            return
        if self.error is None and not self._stopping:
            try:
                with self.lock:
                    now = self.now()
                    self.core.close(now)
                    self._flush(now)
            except Exception:  # noqa: BLE001 - closing must release resources regardless
                log.exception("rawtcp: aborting connections on close failed")
        self._stopping = True
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)
        with self.lock:
            self._closed = True
            self.cond.notify_all()
        try:
            self._sel.close()
        finally:
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            for s in list(self._sockets):
                s._release_notifier()
            try:
                self.link.close()
            finally:
                if self._pcap is not None and self._own_pcap:
                    self._pcap.close()
                if self._own_tracer is not None:
                    self._own_tracer.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<rawtcp.Stack {self.name} on {self.link!r}>"
