"""The readiness descriptor of a polled rawtcp socket (rawtcp.notify): one file descriptor
per socket that can be readable, writable, both or neither, as poll(2)/epoll(7) see it."""

from __future__ import annotations

import errno
import itertools
import os
import select
import selectors
import socket
import threading

from socket_helpers import Pair

from rawtcp.faults import parse_rule
from rawtcp.notify import Notifier, _hub

STATES = list(itertools.product((False, True), repeat=2))    # (readable, writable)


def _seen(fd: int) -> tuple[bool, bool]:
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLOUT)
    ev = dict(p.poll(0)).get(fd, 0)
    assert not ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL)
    return bool(ev & select.POLLIN), bool(ev & select.POLLOUT)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_every_state_from_every_state() -> None:
    for before, after in itertools.product(STATES, repeat=2):
        n = Notifier()
        try:
            n.set(*before)
            assert _seen(n.fileno()) == before
            n.set(*after)
            assert _seen(n.fileno()) == after, (before, after)
        finally:
            n.close()


def test_a_blocked_epoll_wakes_when_the_socket_becomes_ready() -> None:
    """Level-triggered pollers need a wake-up on each not-ready -> ready change."""
    for mask, target in ((select.EPOLLIN, (True, False)), (select.EPOLLOUT, (False, True)),
                         (select.EPOLLIN | select.EPOLLOUT, (True, True))):
        n = Notifier()
        ep = select.epoll()
        try:
            n.set(False, False)
            ep.register(n.fileno(), mask)
            assert ep.poll(0) == []
            started = threading.Event()
            got: list = []

            def waiter(ep=ep, started=started, got=got) -> None:
                started.set()
                got.extend(ep.poll(10))           # a bound, not a threshold

            t = threading.Thread(target=waiter)
            t.start()
            started.wait(5)
            n.set(*target)
            t.join(15)
            assert got and got[0][0] == n.fileno() and got[0][1] & mask
        finally:
            ep.close()
            n.close()


def test_many_readable_unwritable_marks_share_a_few_blockers() -> None:
    """More sockets readable-but-not-writable at once than one blocker has room for: more
    blockers are made, two descriptors each, and every socket still reads as (R, not W)."""
    hub = _hub()
    blockers_before = len(hub.blockers)
    fds_before = _open_fds()
    count = 1000
    ns = [Notifier() for _ in range(count)]
    try:
        for n in ns:
            n.set(True, False)
        added_blockers = len(hub.blockers) - blockers_before
        assert _open_fds() - fds_before == count + 2 * added_blockers
        assert added_blockers <= count // 100
        assert all(_seen(n.fileno()) == (True, False) for n in ns)
        for n in ns[::2]:
            n.set(False, True)
        for i, n in enumerate(ns):
            assert _seen(n.fileno()) == ((True, False) if i % 2 else (False, True))
    finally:
        for n in ns:
            n.close()
    assert _open_fds() - fds_before == 2 * (len(hub.blockers) - blockers_before)


def test_one_descriptor_per_polled_socket(pair: Pair) -> None:
    """Issue 8: at most one file descriptor per socket (a kernel socket has one)."""
    fds_before = _open_fds()
    blockers_before = len(_hub().blockers)
    socks = [pair.a.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(300)]
    try:
        assert _open_fds() == fds_before                      # nobody polls them yet
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        extra = 1 + 2 * (len(_hub().blockers) - blockers_before)   # the selector's epoll fd
        assert _open_fds() - fds_before == len(socks) + extra
        sel.close()
    finally:
        for s in socks:
            s.close()
    assert _open_fds() - fds_before == 2 * (len(_hub().blockers) - blockers_before)


def test_connect_in_progress_is_neither_readable_nor_writable(pair_factory) -> None:
    """A non-blocking connect whose SYN gets no answer: select sees nothing (as for a kernel
    socket in SYN-SENT); once the peer answers, the socket is writable."""
    p = pair_factory(faults_a=[parse_rule("drop", "out flags=S nth=1")])   # first SYN lost
    ls = p.b.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("10.1.0.2", 0))
    ls.listen(1)
    c = p.a.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setblocking(False)
    try:
        assert c.connect_ex(ls.getsockname()) == errno.EINPROGRESS
        assert _seen(c.fileno()) == (False, False)
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_WRITE)
        assert sel.select(10)                                     # the SYN retransmission
        assert _seen(c.fileno())[1]
        sel.close()
    finally:
        c.close()
        ls.close()
