"""An in-process pair of links for tests: what one side sends, the other receives."""

from __future__ import annotations

import collections
import os
import threading

from rawtcp.link.base import Link
from rawtcp.link.inet import well_formed


class MemoryLink(Link):
    """One end of an in-process pair. Thread-safe; fileno() is an eventfd.

    `queue_limit` bounds the packets waiting on each side; beyond it new packets are dropped
    and counted (`dropped_queue_full`), as a full device queue would.
    """

    def __init__(self, address: str | list[str], name: str = "mem", mtu: int = 1500,
                 queue_limit: int = 10_000) -> None:
        addrs = [address] if isinstance(address, str) else list(address)
        super().__init__(name, mtu, addrs)
        self.queue_limit = queue_limit
        self._queue: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()
        self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.peer: MemoryLink | None = None

    @classmethod
    def pair(cls, addr_a: str | list[str], addr_b: str | list[str], mtu: int = 1500,
             queue_limit: int = 10_000) -> tuple[MemoryLink, MemoryLink]:
        a = cls(addr_a, name="mem-a", mtu=mtu, queue_limit=queue_limit)
        b = cls(addr_b, name="mem-b", mtu=mtu, queue_limit=queue_limit)
        a.peer, b.peer = b, a
        return a, b

    def fileno(self) -> int:
        self._check_open()
        return self._efd

    def _deliver(self, pkt: bytes) -> None:
        with self._lock:
            if self._closed:
                self.counters["dropped_closed"] += 1
                return
            if len(self._queue) >= self.queue_limit:
                self.counters["dropped_queue_full"] += 1
                return
            self._queue.append(pkt)
            os.eventfd_write(self._efd, 1)

    def recv_batch(self) -> list[bytes]:
        self._check_open()
        with self._lock:
            try:
                os.eventfd_read(self._efd)
            except BlockingIOError:
                pass
            out = list(self._queue)
            self._queue.clear()
        good = []
        for p in out:
            if well_formed(p):
                good.append(p)
            else:
                self.counters["dropped_malformed"] += 1
        self.counters["rx_packets"] += len(good)
        return good

    def send(self, ip_packet: bytes) -> None:
        self._check_open()
        self._check_size(ip_packet)
        self.counters["tx_packets"] += 1
        if self.peer is None:
            self.counters["dropped_no_peer"] += 1
            return
        self.peer._deliver(bytes(ip_packet))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._efd)
