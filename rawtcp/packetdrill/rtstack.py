"""``--realtime``: the runner's stack over a real TUN link in a private namespace, real time.

rawtcp runs as usual (:class:`rawtcp.runtime.Stack`, its own event-loop thread) on the TUN
device of a :class:`~rawtcp.lab.tunlab.TunLab`. The script plays a peer at an address that
exists nowhere (10.77.0.3 / fd77::3): its inbound segments are written onto the device with an
AF_PACKET socket inside the namespace (the device hands them to rawtcp), and rawtcp's segments
are read from the device by the same socket. The kernel of the namespace does not forward, so
it never answers for the peer. Time is the monotonic clock; socket calls run in threads, and a
call counts as blocked once it waits in the stack's ``wait_for`` (as packetdrill decides by
looking at whether its syscall thread sleeps). Needs root (namespaces, TUN).
"""

from __future__ import annotations

import socket as _socket
import threading
import time
from collections.abc import Callable
from typing import Any

from rawtcp.core.config import Config
from rawtcp.core.segment import Packet
from rawtcp.packetdrill.vstack import fixed_isn
from rawtcp.wire import ParseError, decode_ip, encode_ip

PEER = {"ipv4": "10.77.0.3", "ipv6": "fd77::3"}
BLOCKED_AFTER_S = 1.0      # a call neither back nor waiting after this long counts as blocked
INJECT_WAIT_S = 1.0        # longest wait for rawtcp's loop to take an injected segment in
LAB_MTU = 65535            # the device takes the script's segments of any size; rawtcp's
#                            own MSS still comes from --mtu
_ETH_P_ALL, _ETH_P_IP, _ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
_PACKET_OUTGOING = 4


class RealJob:
    """A socket call running in its own thread (the runner's view of it as of vstack.Job)."""

    def __init__(self, stack: RealStack, fn: Callable[[], Any], name: str) -> None:
        self.stack = stack
        self.name = name
        self.done = False
        self.parked = False
        self.result: Any = None
        self.exc: BaseException | None = None
        self.ended_at: int | None = None
        self._fn = fn
        self._finished = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"pd-rt-{name}", daemon=True)

    def _run(self) -> None:
        self.stack._local.job = self
        try:
            self.result = self._fn()
        except BaseException as e:  # noqa: BLE001 - handed to the runner as the call's result
            self.exc = e
        self.ended_at = self.stack.now
        self.done = True
        self._finished.set()


class RealStack:
    """Same interface as :class:`~rawtcp.packetdrill.vstack.VirtualStack` for the runner."""

    def __init__(self, config: Config, family: str = "ipv4",
                 tracer: Callable[[dict], None] | None = None) -> None:
        from rawtcp.host.netns import in_netns
        from rawtcp.lab.tunlab import TunLab
        from rawtcp.runtime import Stack

        self.lab = TunLab(family=family, mtu=LAB_MTU)
        self.lab.__enter__()
        self._sock: _socket.socket | None = None
        self.stack: Any = None
        try:
            link = self.lab.open_link()
            self.local_ip = self.lab.rawtcp_addr
            self.remote_ip = PEER[family]
            self._proto = _ETH_P_IPV6 if family == "ipv6" else _ETH_P_IP
            with in_netns(self.lab.netns):
                s = _socket.socket(_socket.AF_PACKET, _socket.SOCK_DGRAM,
                                   _socket.htons(_ETH_P_ALL))
            self._sock = s
            s.bind((self.lab.tun_name, _ETH_P_ALL))
            s.settimeout(0.05)
            self._t0 = time.monotonic_ns()
            self.stack = Stack(link, config, tracer=tracer, isn=fixed_isn,
                               clock_origin=self._t0, name="rawtcp-packetdrill")
        except BaseException:
            self.close()
            raise
        self.sent: list[tuple[int, Packet]] = []
        self.jobs: list[RealJob] = []
        self._local = threading.local()
        self._wait_for = self.stack.wait_for
        self.stack.wait_for = self._parking_wait_for     # this instance only
        self._stop = False
        self._reader = threading.Thread(target=self._sniff, name="pd-rt-sniff", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------------ the runner's side
    @property
    def now(self) -> int:
        return (time.monotonic_ns() - self._t0) // 1000

    @property
    def lock(self) -> Any:
        return self.stack.lock

    @property
    def core(self) -> Any:
        return self.stack.core

    @property
    def config(self) -> Config:
        return self.stack.config

    @config.setter
    def config(self, cfg: Config) -> None:
        self.stack.config = cfg

    def socket(self, family: int | None = None, type: int | None = None, proto: int = 0):
        return self.stack.socket(family, type, proto)

    def _sniff(self) -> None:
        s = self._sock
        assert s is not None
        while not self._stop:
            try:
                data, addr = s.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] == _PACKET_OUTGOING:      # what we injected ourselves
                continue
            try:
                pkt = decode_ip(data)
            except ParseError:
                continue
            if pkt.src == self.local_ip:
                self.sent.append((self.now, pkt))

    def inject(self, pkts: list[Packet]) -> None:
        """Write the segments onto the device, then wait until rawtcp's loop has taken them
        in (as a kernel processes a packet written to a tun device before the write returns),
        so the next event sees their effect."""
        assert self._sock is not None
        counters = self.stack.counters
        target = counters["frames_in"] + len(pkts)
        for p in pkts:
            self._sock.sendto(encode_ip(p), (self.lab.tun_name, self._proto))
        deadline = time.monotonic() + INJECT_WAIT_S
        while counters["frames_in"] < target and time.monotonic() < deadline:
            time.sleep(0.0001)
        with self.stack.lock:      # the loop holds it while it processes the batch
            pass

    def begin(self) -> None:
        """The script starts now (its time 0), as packetdrill takes its start time just
        before the first event."""
        self._t0 = time.monotonic_ns()

    def _parking_wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """The runtime's wait_for, noting when a call really waits (packetdrill looks at
        whether the syscall thread sleeps)."""
        job = getattr(self._local, "job", None)
        if job is None:
            return self._wait_for(predicate, timeout)

        def pred() -> bool:
            ok = predicate()
            job.parked = not ok
            return ok

        try:
            return self._wait_for(pred, timeout)
        finally:
            job.parked = False

    def start(self, fn: Callable[[], Any], name: str = "call",
              may_block: bool = True) -> RealJob:
        """Run the call in a thread; return when it finished or waits in the stack (or has
        computed for a second without either)."""
        job = RealJob(self, fn, name)
        self.jobs.append(job)
        job.thread.start()
        deadline = time.monotonic() + BLOCKED_AFTER_S
        while not job.done and not job.parked and time.monotonic() < deadline:
            time.sleep(0.0001)
        return job

    def settle(self) -> None:
        pass

    def advance_to(self, t: int, until: Callable[[], bool] | None = None) -> bool:
        """Wait (really) until time ``t``, or until ``until()`` holds."""
        while True:
            if until is not None and until():
                return True
            left = t - self.now
            if left <= 0:
                return until() if until is not None else False
            time.sleep(min(left / 1e6, 0.0005))

    def close(self) -> None:
        self._stop = True
        try:
            if self.stack is not None:
                self.stack.close()
        finally:
            try:
                if self._sock is not None:
                    self._sock.close()
            finally:
                self.lab.close()     # also when an interrupt lands in the socket's close
        for j in getattr(self, "jobs", []):
            j.thread.join(2.0)
