"""UDP sockets (``SOCK_DGRAM``, RFC 768) over a running rawtcp :class:`~rawtcp.runtime.Stack`.

A :class:`DatagramSocket` behaves like ``socket.socket(AF_INET[6], SOCK_DGRAM)`` on Linux:
the same calls, options and errno values; the UDP underneath is rawtcp's
(:mod:`rawtcp.core.udp`). ``stack.socket(AF_INET, SOCK_DGRAM)`` makes one once this module
is imported (it registers itself as ``Stack.datagram_socket_class``).

Linux behaviour kept: ``sendto`` on an unbound socket binds it to an ephemeral port;
``send`` without a peer is EDESTADDRREQ; ``sendto`` with an address on a connected socket
is allowed; a datagram larger than the link MTU allows is EMSGSIZE (rawtcp never
fragments); a receive returns one datagram, cut to the buffer (the rest is discarded,
``MSG_TRUNC`` in recvmsg's flags); on a connected socket an ICMP port unreachable for an
earlier datagram is ECONNREFUSED on the next call (before any queued datagram, as Linux's
sock_error), and SO_ERROR reads and clears it. ``fileno()`` is readable when a datagram or
an error waits, and always writable (sends never wait).
"""

from __future__ import annotations

import errno
import os
import socket as _socket
import struct
from collections.abc import Iterable
from typing import Any

from rawtcp.core.ports import WILDCARDS
from rawtcp.notify import Notifier
from rawtcp.runtime import Stack
from rawtcp.sockbase import SocketBase, resolve_host, scatter, sock_err, writable, writable_all

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
SOCK_DGRAM = _socket.SOCK_DGRAM
SOL_SOCKET = _socket.SOL_SOCKET
SO_REUSEADDR = _socket.SO_REUSEADDR
SO_RCVBUF = _socket.SO_RCVBUF
SO_SNDBUF = _socket.SO_SNDBUF
SO_BROADCAST = _socket.SO_BROADCAST
SO_ERROR = _socket.SO_ERROR
SO_TYPE = _socket.SO_TYPE
MSG_PEEK = int(_socket.MSG_PEEK)
MSG_DONTWAIT = int(_socket.MSG_DONTWAIT)
MSG_TRUNC = int(_socket.MSG_TRUNC)
_SEND_FLAGS = (MSG_DONTWAIT | int(_socket.MSG_NOSIGNAL) | int(getattr(_socket, "MSG_CONFIRM", 0))
               | int(getattr(_socket, "MSG_MORE", 0)))
_RECV_FLAGS = MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC
_SOCK_NONBLOCK = int(getattr(_socket, "SOCK_NONBLOCK", 0))
_BUFSIZE_MIN = 2048


_err = sock_err


class DatagramSocket(SocketBase):
    """A UDP socket of a rawtcp stack: ``stack.socket(AF_INET, SOCK_DGRAM)``."""

    def __init__(self, stack: Stack, family: int | None = None, type: int | None = None,
                 proto: int = 0) -> None:
        family = AF_INET if family is None else family
        type = SOCK_DGRAM if type is None else type
        if family not in (AF_INET, AF_INET6):
            raise _err(errno.EAFNOSUPPORT, "rawtcp sockets are AF_INET or AF_INET6")
        if type & 0xF != SOCK_DGRAM or proto not in (0, _socket.IPPROTO_UDP):
            raise _err(errno.EPROTONOSUPPORT, "a rawtcp datagram socket is UDP (SOCK_DGRAM)")
        self._stack = stack
        self.family = family
        self.type = SOCK_DGRAM
        self.proto = proto
        self._timeout: float | None = 0.0 if type & _SOCK_NONBLOCK else \
            _socket.getdefaulttimeout()
        self._ep: Any = None             # the core UdpEndpoint once bound
        self._closed = False
        self._shut_rd = False
        self._shut_wr = False
        cfg = stack.config
        self._opts: dict[tuple[int, int], int] = {
            (SOL_SOCKET, SO_REUSEADDR): 0,
            (SOL_SOCKET, SO_RCVBUF): 2 * cfg.rcvbuf,    # reported doubled, as Linux
            (SOL_SOCKET, SO_SNDBUF): 2 * cfg.sndbuf,
            (SOL_SOCKET, SO_BROADCAST): 0,
        }
        self._notifier: Notifier | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def endpoint(self) -> Any:
        """The core UdpEndpoint (for inspection: queue, dropped, error), or None."""
        return self._ep

    def _check_open(self) -> None:
        if self._closed:
            raise _err(errno.EBADF, "the socket is closed")
        self._stack.check_alive()

    def _wildcard(self) -> str:
        return "::" if self.family == AF_INET6 else "0.0.0.0"

    def _resolve(self, address: Any) -> tuple[str, int]:
        if not isinstance(address, tuple) or len(address) < 2:
            raise TypeError(f"address must be a (host, port) tuple, got {address!r}")
        host, port = address[0], address[1]
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535.")
        if host in ("", None):
            return "", port
        if host == "<broadcast>":
            host = "255.255.255.255"
        return resolve_host(host, port, self.family, SOCK_DGRAM), port

    def _addr(self, a: tuple[str, int]) -> tuple:
        return a if self.family == AF_INET else (a[0], a[1], 0, 0)

    def _bind(self, host: str, port: int) -> None:
        reuse = bool(self._opts[(SOL_SOCKET, SO_REUSEADDR)])
        rcvbuf = self._opts[(SOL_SOCKET, SO_RCVBUF)] // 2
        udp = self._stack.core.udp

        def do(now: int) -> None:
            ep = udp.bind(host, port, reuse=reuse, rcvbuf=rcvbuf)
            ep.broadcast = bool(self._opts[(SOL_SOCKET, SO_BROADCAST)])
            self._ep = ep
            self._watch()

        self._stack.call(do)

    def _autobind(self) -> None:
        """As Linux: the first sendto/connect of an unbound socket binds the wildcard
        address and an ephemeral port."""
        if self._ep is None:
            self._stack.default_address(self.family)   # EADDRNOTAVAIL if none of the family
            self._bind(self._wildcard(), 0)

    def _raise_pending(self) -> None:
        """Under the lock: report (and clear) a pending ICMP error."""
        ep = self._ep
        if ep is not None and ep.error is not None:
            code = ep.take_error()
            self._update_ready()
            raise _err(code, "an ICMP error arrived for an earlier datagram of this socket")

    # ------------------------------------------------------------------ readiness
    def _readiness(self) -> tuple[bool, bool]:
        if self._closed:
            return False, False
        if self._stack.error is not None:
            return True, True
        ep = self._ep
        readable = ep is not None and (ep.readable or self._shut_rd)
        return readable, True

    def _watched(self):
        return (self._ep,)

    # ------------------------------------------------------------------ naming
    def bind(self, address: Any) -> None:
        """Bind to (addr, port); '' is the wildcard, port 0 an ephemeral port."""
        self._check_open()
        if self._ep is not None:
            raise _err(errno.EINVAL, "the socket is already bound")
        host, port = self._resolve(address)
        if host in ("", *WILDCARDS):
            self._stack.default_address(self.family)
            host = self._wildcard()
        elif self._stack.addresses and host not in self._stack.addresses:
            raise _err(errno.EADDRNOTAVAIL, f"{host} is not an address of this rawtcp link "
                                            f"(it has {', '.join(self._stack.addresses)})")
        self._bind(host, port)

    def connect(self, address: Any) -> None:
        """Set the default peer: send() goes there, only its datagrams are received."""
        self._check_open()
        host, port = self._resolve(address)
        if host == "":
            host = "::1" if self.family == AF_INET6 else "127.0.0.1"
        if port == 0:
            raise _err(errno.EINVAL, "connect to port 0")
        self._autobind()
        ep = self._ep
        local = self._stack.default_address(self.family) if ep.addr in WILDCARDS else None
        self._stack.call(lambda now: self._stack.core.udp.connect(ep, host, port, local))

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except OSError as e:
            return e.errno or errno.EINVAL
        return 0

    def disconnect(self) -> None:
        """Forget the peer (Linux: connect with AF_UNSPEC); datagrams from anyone again."""
        self._check_open()
        if self._ep is not None:
            ep = self._ep
            self._stack.call(lambda now: self._stack.core.udp.disconnect(ep))

    def getsockname(self) -> tuple:
        if self._ep is None:
            return self._addr((self._wildcard(), 0))
        return self._addr(self._ep.local)

    def getpeername(self) -> tuple:
        self._check_open()
        if self._ep is None or self._ep.peer is None:
            raise _err(errno.ENOTCONN, "the socket is not connected")
        return self._addr(self._ep.peer)

    # ------------------------------------------------------------------ sending
    def _send(self, data: Any, flags: int, address: Any) -> int:
        self._check_open()
        if flags & ~_SEND_FLAGS:
            raise _err(errno.EOPNOTSUPP, f"send flags {flags:#x} are not supported on UDP")
        payload = bytes(data)
        dst = None
        if address is not None:
            dst = self._resolve(address)
            if dst[0] == "":
                dst = ("::1" if self.family == AF_INET6 else "127.0.0.1", dst[1])
        if self._shut_wr:
            raise _err(errno.EPIPE, "the socket was shut down for writing")
        if dst is None and (self._ep is None or self._ep.peer is None):
            raise _err(errno.EDESTADDRREQ, "no destination: connect() first or use sendto()")
        self._autobind()
        ep = self._ep
        src = self._stack.default_address(self.family) if ep.addr in WILDCARDS else None
        udp = self._stack.core.udp

        def do(now: int) -> int:
            self._raise_pending()
            return udp.send(ep, payload, dst, src, now)

        return self._stack.call(do)

    def send(self, data: Any, flags: int = 0) -> int:
        return self._send(data, flags, None)

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``."""
        if address is None:
            return self._send(data, 0, flags_or_address)
        return self._send(data, flags_or_address, address)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._send(data, flags, None)

    def sendmsg(self, buffers: Iterable, ancdata: Iterable = (), flags: int = 0,
                address: Any = None) -> int:
        if list(ancdata):
            raise _err(errno.EOPNOTSUPP, "rawtcp UDP sockets take no ancillary data")
        return self._send(b"".join(bytes(b) for b in buffers), flags, address)

    # ------------------------------------------------------------------ receiving
    def _recv(self, bufsize: int, flags: int) -> tuple[bytes, tuple[str, int], bool]:
        """One datagram: (data cut to bufsize, source, truncated)."""
        self._check_open()
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if flags & ~_RECV_FLAGS:
            raise _err(errno.EOPNOTSUPP, f"recv flags {flags:#x} are not supported on UDP")
        peek = bool(flags & MSG_PEEK)
        nonblock = bool(flags & MSG_DONTWAIT) or self._timeout == 0.0
        stack = self._stack
        while True:
            def ready() -> bool:
                ep = self._ep
                return self._closed or (ep is not None and (ep.readable or self._shut_rd))

            if nonblock:
                with stack.lock:
                    ok = ready()
                if not ok:
                    raise BlockingIOError(errno.EAGAIN,
                                          f"{os.strerror(errno.EAGAIN)}: no datagram waiting")
            elif not stack.wait_for(ready, self._timeout):
                raise TimeoutError(errno.ETIMEDOUT, "timed out: no datagram arrived")
            self._check_open()
            with stack.lock:
                self._raise_pending()
                ep = self._ep
                item = ep.recv(peek) if ep is not None else None
                if item is None and self._shut_rd:
                    return b"", (self._wildcard(), 0), False
                if item is not None:
                    self._update_ready()
                    data, src = item
                    return data[:bufsize], src, len(data) > bufsize

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._recv(bufsize, flags)[0]

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple]:
        data, src, _t = self._recv(bufsize, flags)
        return data, self._addr(src)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return self.recvfrom_into(buffer, nbytes, flags, _call="recv_into")[0]

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, *,
                      _call: str = "recvfrom_into") -> tuple[int, tuple]:
        view = writable(buffer, _call)     # before the read: a failed call consumes nothing
        if nbytes < 0:
            raise ValueError(f"negative buffersize in {_call}")
        n = nbytes or len(view)
        if n > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        data, src, _t = self._recv(n, flags)
        view[:len(data)] = data
        return len(data), self._addr(src)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0):
        data, src, trunc = self._recv(bufsize, flags)
        return data, [], MSG_TRUNC if trunc else 0, self._addr(src)

    def recvmsg_into(self, buffers: Iterable, ancbufsize: int = 0, flags: int = 0):
        views = writable_all(buffers, "recvmsg_into")   # all checked before the read
        data, src, trunc = self._recv(sum(v.nbytes for v in views), flags)
        scatter(views, data)
        return len(data), [], MSG_TRUNC if trunc else 0, self._addr(src)

    # ------------------------------------------------------------------ the rest
    def shutdown(self, how: int) -> None:
        """As Linux: ENOTCONN unless connected; SHUT_RD makes reads return b'' once the
        queue is empty, SHUT_WR makes sends fail with EPIPE."""
        self._check_open()
        if how not in (_socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR):
            raise _err(errno.EINVAL, "shutdown: how must be SHUT_RD, SHUT_WR or SHUT_RDWR")
        if self._ep is None or self._ep.peer is None:
            raise _err(errno.ENOTCONN, "shutdown of an unconnected UDP socket")
        with self._stack.lock:
            if how != _socket.SHUT_WR:
                self._shut_rd = True
            if how != _socket.SHUT_RD:
                self._shut_wr = True
            self._stack.cond.notify_all()
            self._update_ready()

    def close(self) -> None:
        if self._closed:
            return
        stack = self._stack
        try:
            if self._ep is not None:
                ep = self._ep
                stack.call(lambda now: stack.core.udp.close(ep))
        except OSError:
            if stack.error is None and not stack.closed:
                raise
        finally:
            self._closed = True
            with stack.lock:
                self._release_notifier()
                stack.cond.notify_all()

    def setsockopt(self, level: int, optname: int, value: Any) -> None:
        self._check_open()
        key = (level, optname)
        if isinstance(value, str):
            raise TypeError("a bytes-like object or an integer is required, not 'str'")
        if key not in self._opts:
            raise _err(errno.ENOPROTOOPT, f"option ({level}, {optname}) is not supported by "
                                          "rawtcp UDP sockets")
        if isinstance(value, (bytes, bytearray, memoryview)):
            if len(value) < 4:
                raise _err(errno.EINVAL, f"option ({level}, {optname}) takes an int (4 bytes)")
            value = struct.unpack("i", bytes(value)[:4])[0]
        value = int(value)
        if optname in (SO_RCVBUF, SO_SNDBUF):
            # as Linux (socket(7)): unsigned, clamped to rmem_max/wmem_max, doubled, floor
            cfg = self._stack.config
            top = cfg.rmem_max if optname == SO_RCVBUF else cfg.wmem_max
            if value < 0:
                value &= 0xFFFFFFFF
            value = max(min(value, top) * 2, 2 * _BUFSIZE_MIN)
        self._opts[key] = value
        ep = self._ep
        if ep is not None:
            with self._stack.lock:
                if optname == SO_RCVBUF:
                    ep.rcvbuf = value // 2
                elif optname == SO_BROADCAST:
                    ep.broadcast = bool(value)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        self._check_open()
        key = (level, optname)
        if key == (SOL_SOCKET, SO_ERROR):
            with self._stack.lock:
                ep = self._ep
                v = (ep.take_error() or 0) if ep is not None else 0
                self._update_ready()
        elif key == (SOL_SOCKET, SO_TYPE):
            v = SOCK_DGRAM
        elif key in self._opts:
            v = self._opts[key]
        else:
            raise _err(errno.ENOPROTOOPT, f"option ({level}, {optname}) is not supported by "
                                          "rawtcp UDP sockets")
        return struct.pack("i", v) if buflen else v



Stack.datagram_socket_class = DatagramSocket   # the runtime never imports this layer
