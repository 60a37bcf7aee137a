"""packetdrill's system calls on rawtcp sockets (:mod:`rawtcp.socket`), with Linux's results.

Each call takes the script's arguments and returns the integer a C program would see, or
raises ``OSError`` (the result is then -1 with that errno). The script's file descriptor
numbers map to rawtcp sockets in :class:`Fds`. ``...`` in an address argument means the
addresses packetdrill would fill in (the local address and port 8080 for ``bind``, the remote
address and port 8080 for ``connect``).
"""

from __future__ import annotations

import errno
import os
import select
import socket as _socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rawtcp.packetdrill.script import Array, BitOr, Call, Expr, Str, Struct, Symbol

O_RDWR = os.O_RDWR
O_NONBLOCK = os.O_NONBLOCK
F_GETFL, F_SETFL = 3, 4
_EXTRA_SYMBOLS = {
    "SOL_TCP": 6, "O_RDWR": O_RDWR, "O_NONBLOCK": O_NONBLOCK, "F_GETFL": F_GETFL,
    "F_SETFL": F_SETFL, "O_RDONLY": os.O_RDONLY, "O_WRONLY": os.O_WRONLY, "TCP_INFO": 11,
    "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19, "MSG_MORE": 0x8000, "MSG_NOSIGNAL": 0x4000,
}
_POLL_NAMES = ["POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
               "POLLRDNORM", "POLLRDBAND", "POLLWRNORM", "POLLWRBAND", "POLLRDHUP"]


class Unsupported(Exception):
    """The script needs something rawtcp (or this runner) does not have."""


class ScriptValueError(Exception):
    """The script's arguments make no sense (a runtime error in packetdrill's words)."""


def symbol_value(name: str) -> int:
    if name in _EXTRA_SYMBOLS:
        return _EXTRA_SYMBOLS[name]
    if name == "POLLRDHUP":
        return 0x2000
    for mod in (_socket, select, errno, os):
        v = getattr(mod, name, None)
        if isinstance(v, int):
            return int(v)
    raise Unsupported(f"unknown symbol {name}")


def value(e: Expr) -> Any:
    """An argument as a Python value: ints (symbols resolved), lists, dicts, strings."""
    if e is ...:
        return ...
    if isinstance(e, int):
        return e
    if isinstance(e, Symbol):
        return symbol_value(e.name)
    if isinstance(e, BitOr):
        v = 0
        for x in e.operands:
            v |= int(value(x))
        return v
    if isinstance(e, Array):
        return [value(x) for x in e.items]
    if isinstance(e, Str):
        return e.value
    if isinstance(e, Struct):
        if any(not k for k, _v in e.fields):      # {..., 40}: positional fields
            return [value(v) for _k, v in e.fields]
        return {k: value(v) for k, v in e.fields}
    if isinstance(e, Call):
        args = [value(a) for a in e.args]
        if e.name in ("htons", "htonl", "ntohs", "ntohl") and len(args) == 1:
            return args[0]
        if e.name in ("inet_addr", "inet6_addr") and len(args) == 1:
            return str(args[0])
        raise Unsupported(f"function {e.name}() in a syscall argument")
    raise ScriptValueError(f"cannot evaluate {e!r}")


@dataclass
class Fds:
    """The script's descriptors: fd -> rawtcp socket."""

    socks: dict[int, Any] = field(default_factory=dict)

    def get(self, fd: Any) -> Any:
        if not isinstance(fd, int) or fd not in self.socks:
            raise OSError(errno.EBADF, f"fd {fd!r} is not an open socket of the script")
        return self.socks[fd]

    def add(self, want: Any, sock: Any) -> int:
        fd = want if isinstance(want, int) and want >= 0 and want not in self.socks else \
            max([2, *self.socks]) + 1
        self.socks[fd] = sock
        return fd


@dataclass
class Env:
    """What calls need from the runner."""

    stack: Any
    family: int
    local_ip: str
    remote_ip: str
    bind_port: int = 8080
    connect_port: int = 8080
    fds: Fds = field(default_factory=Fds)
    on_socket: Callable[[int, Any], None] | None = None   # socket() made fd
    on_listen: Callable[[int], None] | None = None
    on_connect: Callable[[int], None] | None = None
    on_accept: Callable[[int, Any], None] | None = None
    on_close: Callable[[int], None] | None = None


def _sockaddr(v: Any, default: tuple[str, int]) -> tuple[str, int]:
    if v is ... or v is None:
        return default
    if isinstance(v, dict):
        port = v.get("sin_port", v.get("sin6_port", default[1]))
        addr = v.get("sin_addr", v.get("sin6_addr", default[0]))
        return (addr if isinstance(addr, str) else default[0]), int(port)
    raise Unsupported(f"address argument {v!r}")


def _length(v: Any) -> int:
    if not isinstance(v, int) or v < 0:
        raise ScriptValueError(f"a length must be a non-negative integer, got {v!r}")
    return v


def _iov_len(v: Any) -> int:
    if v is ...:
        raise ScriptValueError("an iovec array is needed, got ...")
    items = v if isinstance(v, list) else [v]
    total = 0
    for it in items:
        if isinstance(it, dict):
            total += _length(it.get("iov_len", 0))
        elif isinstance(it, list) and len(it) == 2:     # {iov_base, iov_len}
            total += _length(it[1])
        else:
            raise ScriptValueError(f"an iovec must be {{iov_base=..., iov_len=N}}, got {it!r}")
    return total


def _msg_len(v: Any) -> int:
    if not isinstance(v, dict):
        raise ScriptValueError(f"a struct msghdr is needed, got {v!r}")
    for k, x in v.items():
        if k.startswith("msg_iov"):
            return _iov_len(x)
    raise ScriptValueError("struct msghdr without msg_iov")


def _timeouts_are_eagain(fn):
    """A socket timeout (SO_RCVTIMEO/SO_SNDTIMEO) ends a Linux call with EAGAIN."""
    def call(*a: Any) -> int:
        try:
            return fn(*a)
        except TimeoutError:
            raise BlockingIOError(errno.EAGAIN, "timed out (SO_RCVTIMEO/SO_SNDTIMEO)") from None
    return call


@_timeouts_are_eagain
def _write_all(sock: Any, n: int, flags: int = 0) -> int:
    """write(2)/send(2) on a blocking socket queues everything (as Linux does); non-blocking:
    what fits, or EAGAIN."""
    if n == 0:
        return 0
    data = bytes(n)
    if not sock.getblocking() or flags & _socket.MSG_DONTWAIT:
        return sock.send(data, flags)
    sent = 0
    while sent < n:
        try:
            sent += sock.send(data[sent:], flags)
        except OSError:
            if sent:
                return sent
            raise
    return sent


@_timeouts_are_eagain
def _read(sock: Any, n: int, flags: int = 0) -> int:
    return len(sock.recv(n, flags))


def _poll(env: Env, args: list[Any]) -> tuple[int, list[tuple[int, int, int]]]:
    """poll(2): returns the count and (index, expected, actual) revents per pollfd."""
    if len(args) != 3:
        raise ScriptValueError("poll takes (fds, nfds, timeout)")
    fds, _nfds, timeout = args
    entries = fds if isinstance(fds, list) else []
    st = env.stack

    def revents() -> list[int]:
        out = []
        for e in entries:
            sock = env.fds.socks.get(e.get("fd"))
            if sock is None:
                out.append(select.POLLNVAL)
                continue
            r, w = sock._readiness()
            ev = int(e.get("events", 0))
            bits = 0
            if r:
                bits |= ev & (select.POLLIN | select.POLLRDNORM)
            if w:
                bits |= ev & (select.POLLOUT | select.POLLWRNORM)
            t = sock.tcb
            if t is not None and t.error is not None:
                bits |= select.POLLERR
            if t is not None and t.state.name == "CLOSED" and t.was_established:
                bits |= select.POLLHUP
            out.append(bits)
        return out

    def ready() -> bool:
        return any(revents())

    if timeout != 0:
        st.wait_for(ready, None if timeout < 0 else timeout / 1000)
    with st.lock:
        got = revents()
    pairs = [(i, int(e.get("revents", 0)), g) for i, (e, g) in enumerate(zip(entries, got,
                                                                             strict=True))]
    return sum(1 for g in got if g), pairs


def poll_names(bits: int) -> str:
    names = [n for n in _POLL_NAMES if hasattr(select, n) and bits & getattr(select, n)]
    return "|".join(names) or "0"


class Calls:
    """The syscalls; each method takes the evaluated argument list."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.poll_mismatch: str | None = None

    def run(self, name: str, args: list[Any], want: Any) -> int:
        fn = getattr(self, "sys_" + name, None)
        if fn is None:
            raise Unsupported(f"system call {name}() is not supported by the rawtcp runner")
        return fn(args, want)

    def _sock(self, args: list[Any]) -> Any:
        if not args:
            raise ScriptValueError("missing file descriptor")
        return self.env.fds.get(args[0])

    def sys_socket(self, args: list[Any], want: Any) -> int:
        fam = args[0] if args and args[0] is not ... else self.env.family
        typ = args[1] if len(args) > 1 and args[1] is not ... else _socket.SOCK_STREAM
        if typ & ~(_socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC) != _socket.SOCK_STREAM:
            raise Unsupported("only SOCK_STREAM sockets (rawtcp is TCP only)")
        if fam != self.env.family:
            raise Unsupported("a socket of another address family than --ip_version")
        s = self.env.stack.socket(fam, _socket.SOCK_STREAM)
        if typ & _socket.SOCK_NONBLOCK:
            s.setblocking(False)
        fd = self.env.fds.add(want, s)
        if self.env.on_socket:
            self.env.on_socket(fd, s)
        return fd

    def sys_bind(self, args: list[Any], want: Any) -> int:
        s = self._sock(args)
        s.bind(_sockaddr(args[1] if len(args) > 1 else ...,
                         (self.env.local_ip, self.env.bind_port)))
        return 0

    def sys_listen(self, args: list[Any], want: Any) -> int:
        s = self._sock(args)
        s.listen(args[1] if len(args) > 1 and isinstance(args[1], int) else 128)
        if self.env.on_listen:
            self.env.on_listen(args[0])
        return 0

    def sys_accept(self, args: list[Any], want: Any) -> int:
        s = self._sock(args)
        child, _addr = s.accept()
        fd = self.env.fds.add(want, child)
        if self.env.on_accept:
            self.env.on_accept(fd, child)
        return fd

    sys_accept4 = sys_accept

    def sys_connect(self, args: list[Any], want: Any) -> int:
        s = self._sock(args)
        addr = _sockaddr(args[1] if len(args) > 1 else ...,
                         (self.env.remote_ip, self.env.connect_port))
        if self.env.on_connect and s.tcb is None:
            self.env.on_connect(args[0])
        s.connect(addr)
        return 0

    def sys_read(self, args: list[Any], want: Any) -> int:
        return _read(self._sock(args), _length(args[2]))

    def sys_recv(self, args: list[Any], want: Any) -> int:
        return _read(self._sock(args), _length(args[2]), int(args[3]) if len(args) > 3 else 0)

    def sys_recvfrom(self, args: list[Any], want: Any) -> int:
        return self.sys_recv(args, want)

    def sys_readv(self, args: list[Any], want: Any) -> int:
        return _read(self._sock(args), _iov_len(args[1]))

    def sys_recvmsg(self, args: list[Any], want: Any) -> int:
        return _read(self._sock(args), _msg_len(args[1]), int(args[2]) if len(args) > 2 else 0)

    def sys_write(self, args: list[Any], want: Any) -> int:
        return _write_all(self._sock(args), _length(args[2]))

    def sys_send(self, args: list[Any], want: Any) -> int:
        return _write_all(self._sock(args), _length(args[2]),
                          int(args[3]) if len(args) > 3 else 0)

    def sys_sendto(self, args: list[Any], want: Any) -> int:
        return self.sys_send(args, want)

    def sys_writev(self, args: list[Any], want: Any) -> int:
        return _write_all(self._sock(args), _iov_len(args[1]))

    def sys_sendmsg(self, args: list[Any], want: Any) -> int:
        return _write_all(self._sock(args), _msg_len(args[1]),
                          int(args[2]) if len(args) > 2 else 0)

    def sys_close(self, args: list[Any], want: Any) -> int:
        s = self._sock(args)
        del self.env.fds.socks[args[0]]
        s.close()
        if self.env.on_close:
            self.env.on_close(args[0])
        return 0

    def sys_shutdown(self, args: list[Any], want: Any) -> int:
        self._sock(args).shutdown(int(args[1]))
        return 0

    def sys_fcntl(self, args: list[Any], want: Any) -> int:
        s = self._sock(args)
        cmd = args[1] if len(args) > 1 else None
        if cmd == F_GETFL:
            return O_RDWR | (0 if s.getblocking() else O_NONBLOCK)
        if cmd == F_SETFL:
            s.setblocking(not int(args[2]) & O_NONBLOCK)
            return 0
        raise Unsupported(f"fcntl command {cmd!r} (F_GETFL and F_SETFL are supported)")

    def sys_setsockopt(self, args: list[Any], want: Any) -> int:
        s = self._sock(args)
        level, opt, val = args[1], args[2], args[3]
        if level == _socket.SOL_SOCKET and opt in (_socket.SO_RCVTIMEO, _socket.SO_SNDTIMEO):
            # a struct timeval: the socket's timeout (virtual seconds); EAGAIN when it expires
            if not isinstance(val, dict):
                raise ScriptValueError("SO_RCVTIMEO/SO_SNDTIMEO take {tv_sec=S, tv_usec=U}")
            secs = int(val.get("tv_sec", 0)) + int(val.get("tv_usec", 0)) / 1e6
            s.settimeout(secs if secs > 0 else None)
            return 0
        if isinstance(val, list):
            val = val[0] if len(val) == 1 else val
        if isinstance(val, dict):
            vals = list(val.values())
            val = (int(vals[0]), int(vals[1])) if len(vals) == 2 else val
        try:
            s.setsockopt(level, opt, val)
        except OSError as e:
            if e.errno == errno.ENOPROTOOPT and want == 0:
                raise Unsupported(f"setsockopt option ({level}, {opt}) is not supported by "
                                  "rawtcp") from None
            raise
        return 0

    def sys_getsockopt(self, args: list[Any], want: Any) -> int:
        s = self._sock(args)
        level, opt = args[1], args[2]
        if opt == _EXTRA_SYMBOLS["TCP_INFO"] and level in (6, _socket.IPPROTO_TCP):
            raise Unsupported("getsockopt(TCP_INFO) with a struct (use %{ }% blocks)")
        expect = args[3] if len(args) > 3 else ...
        if isinstance(expect, list) and len(expect) == 1:
            expect = expect[0]
        # a struct expected ({l_onoff=1, l_linger=0}): read the option's bytes (a struct
        # linger is two ints) and compare field by field
        as_struct = isinstance(expect, dict) and (level, opt) == (_socket.SOL_SOCKET,
                                                                   _socket.SO_LINGER)
        try:
            got = (struct.unpack("ii", s.getsockopt(level, opt, 8)) if as_struct
                   else s.getsockopt(level, opt))
        except OSError as e:
            if e.errno == errno.ENOPROTOOPT and want == 0:
                raise Unsupported(f"getsockopt option ({level}, {opt}) is not supported by "
                                  "rawtcp") from None
            raise
        if as_struct:
            expect = tuple(int(v) for v in expect.values())
        if expect is not ... and expect != got:
            raise OptvalMismatch(f"Bad getsockopt optval: expected: {expect} actual: {got}")
        return 0

    def sys_poll(self, args: list[Any], want: Any) -> int:
        n, pairs = _poll(self.env, args)
        for i, exp, got in pairs:
            if exp != got:
                self.poll_mismatch = (f"Expected revents of {poll_names(exp)} but got "
                                      f"{poll_names(got)} for pollfd {i}")
                break
        return n


class OptvalMismatch(Exception):
    """getsockopt returned another value than the script expects."""
