"""What rawtcp's stream sockets (rawtcp/socket.py) and datagram sockets (rawtcp/udp_socket.py)
share: errors worded as Linux's, the timeout mode of ``socket.socket``, and the readiness
descriptor (rawtcp/notify.py) made by the first ``fileno()`` and refreshed by the stack only
for what changed.

A subclass sets ``_stack``, ``_closed``, ``_timeout`` and ``_notifier`` (None) and provides
``_readiness()`` -> (readable, writable) and ``_watched()``: the core objects (connection,
listener, UDP endpoint) whose ``watcher`` the stack calls when they change.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import operator
import os
import socket as _socket
import sys
from collections.abc import Iterable
from typing import Any

from rawtcp.core.ports import canonical_ip
from rawtcp.notify import Notifier

#: the largest timeout CPython's socket takes: 2**63 ns in seconds (its _PyTime_t)
MAX_TIMEOUT = (2**63 - 1) / 1e9


def sock_err(code: int, what: str) -> OSError:
    """OSError(code) with Linux's text and what was being done."""
    return OSError(code, f"{os.strerror(code)}: {what}")


def resolve_host(host: str, port: int, family: int, socktype: int) -> str:
    """The canonical address of ``host`` (a literal, or a name the kernel resolver answers)
    for a socket of ``family``: EINVAL when it does not resolve, EAFNOSUPPORT when it is of
    the other family."""
    try:
        ip = canonical_ip(host)
    except (ValueError, TypeError):
        if not isinstance(host, str):
            raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}"
                            ) from None
        # a name that does not resolve is the resolver's socket.gaierror, as CPython's
        infos = _socket.getaddrinfo(host, port, family, socktype)
        ip = canonical_ip(infos[0][4][0])
    if (":" in ip) != (family == _socket.AF_INET6):
        raise sock_err(errno.EAFNOSUPPORT, f"{ip} does not match the socket's address family")
    return ip


def no_route(host: str, own: Iterable[str]) -> str | None:
    """Why a TCP connection to ``host`` (canonical) cannot leave a rawtcp stack whose link
    has the addresses ``own``, or None. As Linux (tcp_v4_connect: ENETUNREACH for a
    broadcast or multicast route), a broadcast or multicast address is refused; the
    unspecified, loopback and own addresses would be this host, which Linux reaches over
    its loopback device and rawtcp does not have: refused as well, never put on the link."""
    kind = _address_kind(host)
    if kind == "group":
        return f"{host} is a broadcast or multicast address: TCP cannot connect to it"
    if kind == "host" or host in own:
        return (f"{host} is this host: a rawtcp stack has no loopback, connect to a peer "
                "on its link")
    return None


@functools.lru_cache(maxsize=4096)
def _address_kind(host: str) -> str | None:
    """"group" (broadcast, multicast), "host" (unspecified, loopback) or None; memoized:
    parsing an address costs microseconds, and connect() asks for every connection."""
    ip = ipaddress.ip_address(host)
    if ip.is_multicast or host == "255.255.255.255":
        return "group"
    return "host" if ip.is_unspecified or ip.is_loopback else None


def check_sendfile(file, count: int | None) -> None:
    """socket.sendfile()'s arguments as CPython checks them: a binary file, a positive
    integer count (or None)."""
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")


def writable(buffer, call: str) -> memoryview:
    """``buffer`` as a writable byte view, checked before anything is read (as CPython's
    ``w*`` argument): a read-only buffer is a TypeError and the data stays queued."""
    try:
        mv = memoryview(buffer)
    except TypeError:
        raise TypeError(f"{call}() argument 1 must be read-write bytes-like object, "
                        f"not {type(buffer).__name__}") from None
    if mv.readonly:
        raise TypeError(f"{call}() argument 1 must be read-write bytes-like object, "
                        f"not {type(buffer).__name__}")
    return mv.cast("B")


def writable_all(buffers: Iterable, call: str) -> list[memoryview]:
    """The buffers of a recvmsg_into() as writable byte views, all checked first."""
    try:
        return [writable(b, call) for b in buffers]
    except TypeError:
        raise TypeError(f"{call}() argument 1 must be an iterable of single-segment "
                        "read-write buffers") from None


def scatter(buffers: Iterable, data: bytes) -> None:
    """readv semantics: fill ``buffers`` in order with ``data``."""
    off = 0
    for b in buffers:
        if off >= len(data):
            break
        v = memoryview(b).cast("B")
        k = min(len(v), len(data) - off)
        v[:k] = data[off: off + k]
        off += k


class SocketBase:
    """Timeout mode, context manager and readiness descriptor of a rawtcp socket."""

    _stack: Any
    _closed: bool
    _timeout: float | None
    _notifier: Notifier | None

    def _readiness(self) -> tuple[bool, bool]:
        raise NotImplementedError

    def _watched(self) -> Iterable[Any]:
        return ()

    # ------------------------------------------------------------------ readiness
    def _update_ready(self) -> None:
        """The watcher: called by the stack under its lock when what we watch changed."""
        n = self._notifier
        if n is None or self._closed:
            return
        try:
            r, w = self._readiness()
            n.set(r, w)
        except OSError:
            pass

    def _stack_event(self, closing: bool) -> None:
        """The stack failed (readiness: everything ready, the calls raise) or closed (the
        descriptor goes away)."""
        if closing:
            self._release_notifier()
        else:
            self._update_ready()

    def _watch(self) -> None:
        """Under the lock: have the stack call _update_ready when a watched object changes
        (only once a notifier exists)."""
        if self._notifier is None:
            return
        for obj in self._watched():
            if obj is not None:
                obj.watcher = self._update_ready
        self._update_ready()

    def _release_notifier(self) -> None:
        n, self._notifier = self._notifier, None
        if n is None:
            return
        for obj in self._watched():
            if obj is not None and obj.watcher == self._update_ready:
                obj.watcher = None
        self._stack.remove_watcher(self._stack_event)
        try:
            n.close()
        except OSError:
            pass

    def fileno(self) -> int:
        """A real descriptor whose readiness mirrors the socket (one per polled socket)."""
        if self._closed:
            return -1
        if self._notifier is None:
            with self._stack.lock:
                if self._notifier is None:
                    self._notifier = Notifier()
                    self._stack.add_watcher(self._stack_event)
                    self._watch()
        return self._notifier.fileno()

    # ------------------------------------------------------------------ modes
    def settimeout(self, value: float | None) -> None:
        """As CPython's: a float or an integer of seconds, None (blocking) or 0
        (non-blocking); NaN and negative values are ValueError, values beyond CPython's
        clock range (~292 years) OverflowError, other types TypeError."""
        self._check_open()                 # EBADF once closed, as CPython's
        if value is not None:
            if not isinstance(value, float):
                value = float(operator.index(value))   # an int (or bool), as CPython
            if value != value:
                raise ValueError("Invalid value NaN (not a number)")
            if value < 0:
                raise ValueError("Timeout value out of range")
            if value > MAX_TIMEOUT:
                raise OverflowError("timeout value too large")
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        # as CPython's: an integer (bool included) before 3.12 (setblocking("no") is a
        # TypeError there), any truth value since
        block = flag if sys.version_info >= (3, 12) else operator.index(flag)
        self._timeout = None if block else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    @property
    def timeout(self) -> float | None:
        return self._timeout

    def dup(self):
        """EOPNOTSUPP: a second descriptor of the same socket has nothing to stand on
        (fileno() is only a readiness descriptor)."""
        raise sock_err(errno.EOPNOTSUPP, "rawtcp sockets cannot be duplicated")

    def get_inheritable(self) -> bool:
        return False

    def set_inheritable(self, inheritable: bool) -> None:
        if inheritable:
            raise sock_err(errno.EOPNOTSUPP, "a rawtcp socket cannot be inherited by a "
                                             "child process")

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """socket.sendfile: the file's bytes through sendall (no os.sendfile: the
        descriptor is not the connection); a stream socket's only, as CPython's."""
        check_sendfile(file, count)
        if self.type != _socket.SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if offset:
            file.seek(offset)
        total = 0
        while count is None or total < count:
            data = file.read(1 << 16 if count is None else min(1 << 16, count - total))
            if not data:
                break
            self.sendall(data)
            total += len(data)
        if hasattr(file, "seek"):
            file.seek(offset + total)
        return total

    def detach(self) -> int:
        raise sock_err(errno.EOPNOTSUPP, "rawtcp sockets have no kernel file descriptor to "
                                         "detach")

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repr_state(self) -> str:
        return ""

    def __repr__(self) -> str:
        """As socket.socket's: fd (the readiness descriptor, -1 before fileno()), family,
        type, proto, the addresses (and a stream socket's state)."""
        name = f"rawtcp.{type(self).__name__}"
        if self._closed:
            return (f"<{name} [closed] fd=-1, family={self.family}, type={self.type}, "
                    f"proto={self.proto}>")
        fd = self._notifier.fileno() if self._notifier is not None else -1
        text = (f"<{name} fd={fd}, family={self.family}, type={self.type}, "
                f"proto={self.proto}{self._repr_state()}, laddr={self.getsockname()}")
        try:
            text += f", raddr={self.getpeername()}"
        except OSError:
            pass
        return text + ">"

    def __getattr__(self, name: str):
        """A call of socket.socket that a rawtcp socket (stream or datagram) does not have
        is OSError(EOPNOTSUPP) when made, as Linux answers it (listen() or accept() on a UDP
        socket), never an AttributeError; other names are still AttributeErrors."""
        if name.startswith("__") or name not in _SOCKET_CALLS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def unsupported(*args, **kwargs):
            raise sock_err(errno.EOPNOTSUPP, f"socket.{name}() is not supported by this "
                                             "rawtcp socket")

        return unsupported


_SOCKET_CALLS = frozenset(n for n in dir(_socket.socket)
                          if not n.startswith("_") and callable(getattr(_socket.socket, n)))


__all__ = ["SocketBase", "no_route", "resolve_host", "scatter", "sock_err", "writable",
           "writable_all"]
