"""One kernel file descriptor per polled socket, whose readiness rawtcp sets by hand.

A rawtcp socket has no kernel socket, but ``selectors``, ``select`` and asyncio need a file
descriptor that is readable and writable exactly when the rawtcp socket is. Every pair of
(readable, writable) must be expressible, including "neither" (a connect in progress with
nothing to read). An eventfd or a pipe cannot say "neither": it is writable whenever it is
not full, and full means readable. An AF_UNIX datagram socket can (unix(7)), with one
descriptor of its own:

- **readable** while a datagram waits in its receive queue;
- **not writable** while it is connected to a peer whose receive queue is full
  (``net.unix.max_dgram_qlen``); disconnecting (connect to ``AF_UNSPEC``) makes it writable
  again and wakes its pollers.

So each notifier is one unbound-by-name datagram socket (an autobound abstract address).
Writable: it is not connected; a readable mark is a datagram it sends to itself. Not
writable: it is connected to a *blocker*, a datagram socket whose queue a filler socket
keeps full; only that peer may then send to it, so the blocker sends the readable mark.
Blockers are shared by every notifier of the process in the same network namespace (two
descriptors per blocker). A blocker's marks are charged to its send buffer, so one holds a
few hundred marks; more blockers are made only while that many sockets are at once readable
and not writable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket as _socket
import threading

_AF_UNIX = _socket.AF_UNIX
_DGRAM = _socket.SOCK_DGRAM


class _SockaddrUnspec(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_char * 14)]


_UNSPEC = _SockaddrUnspec(_socket.AF_UNSPEC)
_UNSPEC_REF = ctypes.byref(_UNSPEC)
_UNSPEC_LEN = ctypes.sizeof(_UNSPEC)
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_connect = _libc.connect
_connect.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
_connect.restype = ctypes.c_int


def _disconnect(s: _socket.socket) -> None:
    """connect(fd, AF_UNSPEC): the datagram socket has no peer any more (POSIX 1003.1g)."""
    if _connect(s.fileno(), _UNSPEC_REF, _UNSPEC_LEN) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _dgram() -> _socket.socket:
    s = _socket.socket(_AF_UNIX, _DGRAM)
    try:
        s.bind(b"")              # autobind: a unique abstract address, no file to remove
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


class _Blocker:
    """A datagram socket whose receive queue is kept full: a notifier connected to it is
    not writable."""

    def __init__(self) -> None:
        self.sock = _dgram()
        self.filler = None
        try:
            # room for a few hundred marks (the kernel clamps this to wmem_max)
            self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, 1 << 20)
            self.filler = _socket.socket(_AF_UNIX, _DGRAM)
            self.filler.setblocking(False)
            self.filler.connect(self.sock.getsockname())
            for _ in range(100_000):             # max_dgram_qlen + 1 empty datagrams
                self.filler.send(b"")
            raise OSError(errno.ENOBUFS, "a blocker's queue never filled up")
        except BlockingIOError:
            pass
        except OSError:
            self.close()
            raise
        self.addr = self.sock.getsockname()

    def close(self) -> None:
        for s in (self.sock, self.filler):
            if s is not None:
                s.close()


class _Hub:
    """The blockers of one network namespace (abstract addresses are per namespace)."""

    def __init__(self) -> None:
        self.blockers: list[_Blocker] = []
        self.lock = threading.Lock()

    def blocker(self, skip: int = 0) -> tuple[int, _Blocker]:
        """The blocker at index ``skip`` or after it, made when there is none yet."""
        with self.lock:
            if skip >= len(self.blockers):
                self.blockers.append(_Blocker())
                skip = len(self.blockers) - 1
            return skip, self.blockers[skip]


_hubs: dict[int, _Hub] = {}
_hubs_lock = threading.Lock()


def _hub() -> _Hub:
    try:
        key = os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        key = 0
    with _hubs_lock:
        hub = _hubs.get(key)
        if hub is None:
            hub = _hubs[key] = _Hub()
        return hub


class Notifier:
    """One file descriptor (``fileno()``) readable and writable as :meth:`set` says."""

    __slots__ = ("sock", "addr", "readable", "writable", "_hub", "_blocker")

    def __init__(self) -> None:
        self._hub = _hub()
        self.sock = _dgram()
        self.addr = self.sock.getsockname()
        self.readable = False
        self.writable = True
        self._blocker: tuple[int, _Blocker] | None = None   # connected to it: not writable

    def fileno(self) -> int:
        return self.sock.fileno()

    def set(self, readable: bool, writable: bool) -> None:
        if writable != self.writable:
            if writable:
                _disconnect(self.sock)          # wakes pollers for POLLOUT; drops any mark
                self._blocker = None
                self.readable = False
            else:
                self._connect_blocker(0)
            self.writable = writable
        if readable != self.readable:
            if readable:
                self._mark()
            else:
                self._drain()
            self.readable = readable

    def _connect_blocker(self, skip: int) -> None:
        index, blocker = self._hub.blocker(skip)
        self.sock.connect(blocker.addr)
        self._blocker = (index, blocker)
        if skip:                          # moved from another blocker: the kernel dropped the mark
            self.readable = False

    def _mark(self) -> None:
        if self._blocker is None:
            self.sock.sendto(b"", self.addr)
            return
        for _ in range(10_000):
            try:
                self._blocker[1].sock.sendto(b"", self.addr)
                return
            except BlockingIOError:             # that blocker's send buffer is full of marks
                self._connect_blocker(self._blocker[0] + 1)
        raise OSError(errno.ENOBUFS, "no room for a readiness mark")

    def _drain(self) -> None:
        try:
            for _ in range(16):
                self.sock.recv(1)
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        self.sock.close()
