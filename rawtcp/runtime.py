"""Real time and a real link: the only place in rawtcp that reads the clock and blocks.

One event-loop thread per :class:`Stack` does all protocol work that packets and timers
cause, and all link I/O. It waits (epoll) on the link's fd and a wake-up fd, and sleeps
until the earliest of the core's ``poll_at()`` (a heap: no scan of the connections), the next
packet and the next packet held back by a fault rule.

User calls come from other threads: each takes the stack lock, runs its core call and
passes the segments it produced through the fault rules and the encoder (so the trace and
pcap keep their order) onto a transmit queue. The queue is written with the lock released,
by one writer at a time (whichever thread finds nobody writing drains it), so packets leave
in order and nobody waits for the lock during a link write. A caller that writes also owns
the receive side until it has taken what its write caused (``_take_rx``: the link's fd leaves
the loop's epoll): a kernel peer on a TUN device answers within the write, so a handshake or
a window of data and its ACKs are handled by one thread without waking the loop to contend
for the GIL. The fd stays out of the loop's epoll ("parked") for a while (``PARK_US``, up to
``PARK_MAX_US`` while a caller makes call after call) after the caller gives the receive side
back, so what arrives between one caller's calls waits for its next call instead of waking
the loop; the loop takes the link back when no caller used it for that long. The loop is
woken only when a call moved the next deadline earlier than the one it sleeps until.
Waiters are woken through one condition variable. Readiness of the sockets' file
descriptors is updated only for the connections whose state changed (``core.changed``),
never by a scan.

Pipeline per loop turn (rawtcp.pipeline; both directions go through the fault engine, when
there is one)::

    link.recv_batch -> decode -> pcap(in) -> faults("in") -> core.on_packets(batch)
    core.take_packets -> faults("out") -> encode (+corrupt) -> pcap(out)   [under the lock]
    -> link.send                                                           [lock released]

``on_packets`` takes the whole batch before any connection decides what to send, so a burst
of data gets one ACK (as Linux's GRO does).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from rawtcp.core.config import Config
from rawtcp.core.segment import Packet
from rawtcp.core.stack import Stack as CoreStack
from rawtcp.pipeline import PacketPipeline

# how long the link's fd stays parked after a caller last read it (see Stack.__init__):
# PARK_US at first, doubled up to PARK_MAX_US each time the loop finds that a caller used the
# link again within the window (a caller making call after call), back to PARK_US once the
# loop takes the link back
PARK_US = 2_000
PARK_MAX_US = 16_000
# ... unless the caller read more than this in its turn: data is streaming in (_give_rx)
PARK_BYTES = 2_000

_monotonic_ns = time.monotonic_ns
log = logging.getLogger("rawtcp")

Event = dict[str, Any]


class StackError(OSError):
    """The event loop failed; every socket of the stack reports it."""


class Stack(PacketPipeline):
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
        self.config.validate()      # before any file, fd or thread exists (ValueError)
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
                from rawtcp.report.pcapng import open_capture  # .pcap: classic, else pcapng

                self._pcap = open_capture(os.fspath(pcap))
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
        self.core.udp.mtu = int(getattr(link, "mtu", 1500))   # UDP: EMSGSIZE beyond it
        # Segmentation offload (Config.offload on a link that can: TunLink(offload=True)):
        # the core hands the link segments of up to 64 KB, the kernel splits them.
        self.offload = bool(self.config.offload and getattr(link, "offload", False))
        self._mtu = int(getattr(link, "mtu", 1500))
        # a link that verified every checksum it hands up (TUN offload) spares the decoder
        self._verify_rx = not getattr(link, "rx_verified", False)
        if self.offload:
            self.core.max_payload = int(getattr(link, "max_segment", 65535)) - 40 - 60
            if tracer is not None:   # the trace says so (its segments can exceed the MTU)
                desc = link.describe() if hasattr(link, "describe") else {}
                tracer({"t": 0, "ev": "link", "name": getattr(link, "name", "?"),
                        "mtu": self._mtu, **desc, "offload": True})
        self.counters: dict[str, int] = {
            "frames_in": 0,
            "frames_in_caller": 0,      # of frames_in: read by a calling thread, not the loop
            "frames_out": 0,
            "dropped_malformed": 0,
            "dropped_not_ours": 0,
            "dropped_corrupt": 0,
            "send_errors": 0,
        }
        self.addresses = [str(a) for a in getattr(link, "addresses", [])]
        self._tx: list[bytes] = []       # encoded packets waiting to be written, in order
        self._writing = False            # a thread is writing _tx to the link (lock released)
        self._sleep_until = 0            # the core time the loop sleeps until
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.error: BaseException | None = None
        if self.faults is not None:
            # the engine holds every packet a rule keeps back (delayed, reordered) and hands
            # them out through release_due(); the runtime keeps no queue of its own
            self.faults.hold_delays = True
        # fn(closing) runs on a stack failure (False) or close (True): sockets refresh or
        # release their file descriptors
        self._watchers: set[Callable[[bool], None]] = set()
        self._stopping = False
        self._closed = False
        self._woken = False              # a wake-up is pending in the eventfd
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        # The loop's epoll. The link's fd leaves it while a caller owns the receive side
        # (_take_rx): the loop is then not woken by packets the caller reads itself (a
        # wake-up costs far more than the two epoll_ctl calls: measured).
        self._link_fd = link.fileno()
        self._ep = select.epoll()
        self._ep.register(self._link_fd, select.EPOLLIN)
        self._ep.register(self._wake_fd, select.EPOLLIN)
        # Held from reading a batch off the link until the core has taken it, by the loop or
        # by a caller (_input_inline): batches reach the core in arrival order.
        self._rx_lock = threading.Lock()
        # After a caller gives the receive side back, the link's fd stays out of the loop's
        # epoll ("parked") for the park window (_park_us): a caller that calls again within
        # that time (a client making connection after connection) reads the link itself,
        # and the packets that arrive between its calls do not wake the loop to contend for
        # the GIL. The loop looks at a parked link once per window and takes it back when
        # no caller used it for that long. The window starts at PARK_US and doubles, up to
        # PARK_MAX_US, each time the loop finds the caller still at it (every look costs the
        # caller the GIL: 4 % of a connection's time at 2 ms).
        self._parked = False
        self._given_at = 0               # core time the receive side was last given back
        self._park_us = PARK_US          # the current park window (PARK_US..PARK_MAX_US)
        self._rx_taken = 0               # bytes a caller read since it took the receive side
        self._loop_until = 0             # core time the loop's current sleep ends at latest
        # a caller waiting on the link (_lead) sleeps in this poll: the link and _lead_fd
        self._leading = False
        self._lead_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lead_poll = select.poll()
        self._lead_poll.register(self._link_fd, select.POLLIN)
        self._lead_poll.register(self._lead_fd, select.POLLIN)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------------ clock and tracing
    def now(self) -> int:
        """Microseconds since the stack started (the core's clock)."""
        return (_monotonic_ns() - self._t0) // 1000

    def _trace(self, ev: Event) -> None:
        if self._tracer is not None:
            self._tracer(ev)

    def _state_of(self, pkt: Packet, direction: str) -> str | None:
        return self.core.state_for(pkt, direction)

    # ------------------------------------------------------------------ user side
    #: the class of ``socket()``'s sockets; rawtcp.socket registers rawtcp.socket.Socket
    #: (the socket layer sits above this one, so this module never imports it)
    socket_class: Any = None
    #: the class of ``socket(family, SOCK_DGRAM)``: rawtcp.udp_socket registers
    #: rawtcp.udp_socket.DatagramSocket
    datagram_socket_class: Any = None

    def socket(self, family: int | None = None, type: int | None = None, proto: int = 0):
        """A BSD-like socket on this stack (``AF_INET``/``AF_INET6``; ``SOCK_STREAM``, or
        ``SOCK_DGRAM`` for UDP)."""
        import socket as _s

        if type is not None and type & 0xF == _s.SOCK_DGRAM:
            if Stack.datagram_socket_class is None:
                raise OSError(errno.EPROTONOSUPPORT, "UDP sockets need rawtcp.udp_socket: "
                              "import rawtcp.udp_socket first")
            return Stack.datagram_socket_class(self, family, type, proto)
        if Stack.socket_class is None:
            raise RuntimeError("rawtcp.socket is not loaded (import rawtcp loads it)")
        return Stack.socket_class(self, family, type, proto)

    @property
    def closed(self) -> bool:
        return self._closed

    def check_alive(self) -> None:
        """OSError(EBADF) once the stack is closed, StackError(EIO) if its loop failed."""
        if self.error is not None:
            raise StackError(errno.EIO, f"rawtcp event loop failed: {self.error!r}")
        if self._closed:
            raise OSError(errno.EBADF, "the rawtcp stack is closed")


    def add_watcher(self, fn: Callable[[bool], None]) -> None:
        """``fn(closing)`` runs (under the lock) when the stack fails (False) or closes
        (True)."""
        self._watchers.add(fn)

    def remove_watcher(self, fn: Callable[[bool], None]) -> None:
        self._watchers.discard(fn)

    def call(self, fn: Callable[[int], Any], answered: bool = False) -> Any:
        """Run ``fn(now)`` against the core under the lock; the loop thread sends what it
        queued. Waiters are woken. ``answered``: what the call sends is answered by the peer
        soon (a SYN, a request, a FIN) and the caller will call again: the link then stays
        parked for a while after the call (see ``_give_rx``)."""
        inline = not self.lock._is_owned()   # type: ignore[attr-defined]  # not nested
        with self.lock:
            if self.error is not None or self._closed:
                self.check_alive()
            now = (_monotonic_ns() - self._t0) // 1000       # self.now()
            try:
                result = fn(now)
            except BaseException:
                tx = self._end_turn(now)
                if tx:
                    self._tx[:0] = tx   # fn raised: hand the packets to the loop instead
                    self._writing = False
                    self._wake()
                raise
            tx = self._end_turn(now)
        if tx:
            if inline and self._take_rx():
                # what the peer answers within our write (a kernel peer on TUN does) is read
                # here, by this thread, without waking the loop
                try:
                    self._write_tx(tx, now)
                    self._input_inline()
                finally:
                    self._give_rx(answered)
            else:
                self._write_tx(tx, now)
        return result

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``predicate()`` (evaluated under the lock) holds; False on timeout.

        A caller that finds the receive side free waits on the link itself (:meth:`_lead`)
        and handles what arrives, so the packet it waits for wakes it directly instead of
        waking the loop thread, which would then wake it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        lead = not self.lock._is_owned()   # type: ignore[attr-defined]  # not inside a call
        with self.lock:
            while True:
                if predicate():
                    return True
                self.check_alive()
                wait = 1.0
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = min(left, 1.0)
                if lead and self._lead(predicate, wait):
                    continue
                self.cond.wait(wait)

    def _lead(self, predicate: Callable[[], bool], wait: float) -> bool:
        """Called with the lock held once; returns with it held. Own the receive side, take
        what the link has, else sleep on the link (and on ``_lead_fd``, which any change
        made by another thread writes) for up to ``wait`` seconds. False if the receive side
        was taken: the caller then waits on the condition as before."""
        self.lock.release()
        try:
            if not self._take_rx():
                return False
            try:
                if self._input_inline():
                    return True
                with self.lock:
                    if predicate() or self._stopping or self.error is not None:
                        return True
                    self._leading = True    # from here a change elsewhere writes _lead_fd
                try:
                    self._lead_poll.poll(int(wait * 1000) + 1)
                finally:
                    with self.lock:
                        self._leading = False
                    try:
                        os.eventfd_read(self._lead_fd)
                    except (BlockingIOError, OSError):
                        pass
                return True
            finally:
                self._give_rx()
        finally:
            self.lock.acquire()

    def _take_rx(self) -> bool:
        """Own the receive side (lock not held): False if the loop or another caller has
        it. The link's fd leaves the loop's epoll (is parked) if it was not already."""
        # (acquire(False), not blocking=False: a keyword argument costs a parse per call)
        if self._stopping or not self._rx_lock.acquire(False):
            return False
        if not self._parked:
            try:
                self._ep.modify(self._link_fd, 0)
            except (OSError, ValueError):      # closing: the epoll is gone
                self._rx_lock.release()
                return False
            self._parked = True
        self._rx_taken = 0
        return True

    def _give_rx(self, park: bool = False) -> None:
        """Give the receive side back. With ``park`` (a call whose segments the peer
        answers) and at most PARK_BYTES read, the link stays parked for the park window
        (see __init__); the loop is woken only if it sleeps longer than that (it found the
        receive side taken when it went to sleep). Otherwise (data streaming in, or a
        reader that will work on what it got) the loop takes the link back at once and goes
        on receiving meanwhile."""
        if not park or self._rx_taken > PARK_BYTES:
            self._unpark()
            self._rx_lock.release()
            return
        self._given_at = given = self.now()
        self._rx_lock.release()
        if self._loop_until - given > self._park_us:
            self._wake()

    def _unpark(self) -> None:
        """Receive side owned: the link's fd back in the loop's epoll; the next park window
        starts at PARK_US."""
        try:
            self._ep.modify(self._link_fd, select.EPOLLIN)
        except (OSError, ValueError):
            return
        self._parked = False
        self._park_us = PARK_US

    def _input_inline(self, rounds: int = 64) -> bool:
        """With the receive side owned and the lock not held: a loop turn's input work done
        by the calling thread, round after round while the link has packets (what the
        packets make us send is written, and may be answered at once). True if any."""
        got = False
        recv = self.link.recv_batch
        for _ in range(rounds):
            if self._stopping:
                break
            try:
                frames = recv()               # _recv_link without its call
            except OSError as e:
                frames = self._link_error(e)
            if not frames:
                break
            got = True
            with self.lock:
                now = (_monotonic_ns() - self._t0) // 1000   # self.now()
                self.counters["frames_in_caller"] += len(frames)
                self._rx_taken += sum(map(len, frames))
                self._input(frames, now)
                tx = self._end_turn(now)
            if tx:
                self._write_tx(tx, now)
        return got

    def _wake(self) -> None:
        if not self._woken:
            self._woken = True
            try:
                os.eventfd_write(self._wake_fd, 1)
            except (BlockingIOError, OSError):
                pass

    def _after_change(self) -> None:
        """Under the lock: wake blocked callers; refresh the fd readiness of the sockets
        whose connection changed (and only those)."""
        if self.cond._waiters:    # type: ignore[attr-defined]  # notify_all is Python code
            self.cond.notify_all()
        if self._leading:
            self._wake_leader()
        if self.core.changed:
            self.core.notify_changed()

    def _wake_leader(self) -> None:
        try:
            os.eventfd_write(self._lead_fd, 1)
        except (BlockingIOError, OSError):
            pass

    def _notify_all_watchers(self, closing: bool = False) -> None:
        for w in list(self._watchers):
            try:
                w(closing)
            except Exception:  # noqa: BLE001 - a socket being closed must not stop the others
                log.exception("rawtcp: socket watcher failed")

    def default_address(self, family: int) -> str:
        import socket as _s

        for a in self.addresses:
            if (":" in a) == (family == _s.AF_INET6):
                return a
        fam = "IPv6" if family == _s.AF_INET6 else "IPv4"
        raise OSError(errno.EADDRNOTAVAIL, f"the link {self.link.name} has no {fam} address")

    # ------------------------------------------------------------------ the loop
    def _next_deadline(self) -> int | None:
        deadline = self.core.poll_at()
        pr = self._fault_release_at()
        if pr is not None:
            deadline = pr if deadline is None else min(deadline, pr)
        return deadline

    def _run(self) -> None:
        core = self.core
        link_fd = self._link_fd
        rx_lock = self._rx_lock
        poll = self._ep.poll
        try:
            until = None
            while not self._stopping:
                if until is None:
                    with self.lock:
                        deadline = self._next_deadline()
                        now = self.now()
                        # the loop looks again within a second whatever happens: a caller
                        # must wake it only for a deadline earlier than the one it sleeps
                        # until
                        if deadline is None or deadline - now >= 1_000_000:
                            until = self._sleep_until = now + 1_000_000
                        else:
                            until = self._sleep_until = deadline
                wake_at = until
                # set before looking at the receive side: a caller that gives it back
                # after the look sees a long sleep here and wakes us (_give_rx)
                self._loop_until = until
                if self._parked and (not rx_lock.locked()
                                     or self.now() - self._given_at < self._park_us):
                    # a caller used the link lately: look again when the park is over
                    wake_at = min(until, self._given_at + self._park_us)
                    self._loop_until = wake_at
                ready = poll(max(0.0, (wake_at - self.now()) / 1e6))
                # A wake-up from here on writes the eventfd again (the next select returns at
                # once); one before it is seen by the processing below, which takes the lock.
                self._woken = False
                frames: list[bytes] = []
                rx = woken = False
                for fd, _ in ready:
                    if fd == link_fd:
                        # a caller that owns the receive side reads the link itself (it may
                        # sleep on it for a while): never wait for it, timers are due too
                        rx = rx_lock.acquire(False)
                        if rx:
                            frames = self._recv_link()
                    else:
                        woken = True
                        try:
                            os.eventfd_read(self._wake_fd)
                        except (BlockingIOError, OSError):
                            pass
                if self._parked and not rx and not self._stopping:
                    now = self.now()
                    if (now - self._given_at >= self._park_us
                            and rx_lock.acquire(False)):
                        # no caller read the link for the park window: the loop takes it
                        # back (and the next window starts short again: _unpark)
                        rx = True
                        self._unpark()
                        frames = self._recv_link()
                    elif not woken and now < until:
                        # a caller reads the link, call after call: sleep on (nothing is
                        # due), and look less often while that goes on (each look costs
                        # the caller the GIL)
                        self._park_us = min(2 * self._park_us, PARK_MAX_US)
                        continue
                elif ready and not rx and not woken and self.now() < until:
                    # the link woke us but a caller took the receive side meanwhile (and
                    # reads it): nothing is due, nobody asked; sleep on until the same time
                    continue
                until = None
                if not ready and not rx:
                    # woken for a deadline: what arrived meanwhile goes first, so an ACK
                    # already waiting is seen before a timer (a loss probe, an RTO) fires
                    rx = rx_lock.acquire(False)
                    if rx:
                        frames = self._recv_link()
                try:
                    if self._stopping:
                        break
                    with self.lock:
                        now = self.now()
                        if frames:
                            self._input(frames, now)
                        if self.faults is not None:
                            self._release_held(now)
                        pa = core.poll_at()
                        if pa is not None and pa <= now:
                            core.on_timer(now)
                        self._flush(now)
                        self._after_change()
                        tx = self._take_tx()
                finally:
                    if rx:
                        rx_lock.release()
                if tx:
                    self._write_tx(tx, now)
        except BaseException as exc:  # never silent: logged, traced, and sockets see it
            log.exception("rawtcp event loop failed")
            with self.lock:
                self.error = exc
                self._trace({"t": self.now(), "ev": "error", "errno": errno.EIO,
                             "message": f"event loop failed: {exc!r}"})
                self.cond.notify_all()
                self._wake_leader()
                self._notify_all_watchers()

    def _recv_link(self) -> list[bytes]:
        """The link's waiting packets. A link error (interface down, device gone for a
        moment) is not the end of the stack: it is counted and traced, and TCP's timers
        recover as they would from any loss. A short pause keeps a persistent error from
        spinning the loop."""
        try:
            return self.link.recv_batch()
        except OSError as e:
            return self._link_error(e)

    def _link_error(self, e: OSError) -> list[bytes]:
        """_recv_link's error path (see there): re-raised once the link is closed."""
        if getattr(self.link, "closed", False):
            raise e
        self.counters["link_errors"] = self.counters.get("link_errors", 0) + 1
        with self.lock:
            self._trace({"t": self.now(), "ev": "error", "errno": e.errno,
                         "message": f"link {getattr(self.link, 'name', '?')}: {e}"})
        time.sleep(0.05)
        return []

    def _end_turn(self, now: int) -> list[bytes]:
        """Under the lock, after a caller's turn at the core (a call, or input it read
        itself): the core's output onto the transmit queue (_flush), waiters and readiness
        told (_after_change), the loop woken when a deadline is now earlier than the one it
        sleeps until (or packets are held by fault rules: it looks again), and the packets
        this thread is to write (_take_tx)."""
        self._flush(now)
        self._after_change()
        if self.faults is not None or self.core.timer_queue.earlier_than(self._sleep_until):
            self._wake()              # the loop re-reads poll_at()
        return self._take_tx()

    def _take_tx(self) -> list[bytes]:
        """Under the lock: the queued packets if no other thread is writing (then this one
        becomes the writer), else [] (the writer drains the queue before it stops)."""
        if self._writing or not self._tx:
            return []
        self._writing = True
        tx, self._tx = self._tx, []
        return tx

    def _write_tx(self, tx: list[bytes], now: int) -> None:
        """Write with the lock released; then drain what others queued meanwhile. One
        writer at a time, so packets leave in the order they were queued."""
        send_many = self.link.send_many
        counters = self.counters
        try:
            while True:
                errors = send_many(tx)       # _send_all's work, without its call
                if errors:
                    self._send_errors(errors, now)
                counters["frames_out"] += len(tx) - len(errors)
                with self.lock:
                    tx, self._tx = self._tx, []
                    if not tx:
                        self._writing = False
                        return
        except BaseException:
            with self.lock:
                self._writing = False
                if self._tx:          # an exception left packets: the loop writes them
                    self._wake()
            raise

    def _send_all(self, raws: list[bytes], now: int) -> None:
        """Write to the link (the lock is not held: user threads go on meanwhile)."""
        if not raws:
            return
        errors = self.link.send_many(raws)
        if errors:
            self._send_errors(errors, now)
        self.counters["frames_out"] += len(raws) - len(errors)

    def _send_errors(self, errors: list[OSError], now: int) -> None:
        """Packets the link could not send (lock not held): a full device queue or a
        vanished route is packet loss, not a crash; counted and traced."""
        for e in errors:
            self.counters["send_errors"] += 1
            with self.lock:
                self._trace({"t": now, "ev": "error", "errno": e.errno,
                             "message": f"send: {e}"})

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
                    tx = self._take_tx()
                if tx:
                    self._write_tx(tx, now)
            except Exception:  # noqa: BLE001 - closing must release resources regardless
                log.exception("rawtcp: aborting connections on close failed")
        self._stopping = True
        self._wake()
        self._wake_leader()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)
        # a caller still waiting on the link leaves at once (woken above): after it, the
        # fds it polls can be closed
        rx_free = self._rx_lock.acquire(timeout=2.0)
        with self.lock:
            self._closed = True
            self.cond.notify_all()
            left, self._tx = self._tx, []
        if left and self.error is None:
            # queued while the loop was writing and then stopped (the RSTs of close above)
            self._send_all(left, self.now())
        try:
            self._ep.close()
        finally:
            for fd in (self._wake_fd, self._lead_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            with self.lock:
                self._notify_all_watchers(closing=True)
            try:
                self.link.close()
            finally:
                if rx_free:
                    self._rx_lock.release()
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
