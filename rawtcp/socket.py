"""BSD-like sockets over a running rawtcp :class:`~rawtcp.runtime.Stack`.

A :class:`Socket` behaves like ``socket.socket`` for ``SOCK_STREAM``: the same calls, the
same options and the same errno values, but the TCP underneath is rawtcp's own.

``fileno()`` is a real file descriptor (one AF_UNIX datagram socket, see
:mod:`rawtcp.notify`) whose readiness mirrors the rawtcp socket: readable when data, EOF, an
error or a pending connection is waiting; writable when there is room in the send buffer or
the connect finished. So it works with ``selectors``, ``select`` and ``asyncio``'s
reader/writer callbacks. The descriptor is made the first time ``fileno()`` is called: a
socket nobody polls holds no descriptor at all, and its readiness costs nothing. The
runtime refreshes a polled socket's readiness only when its connection changed
(``tcb.watcher``).
"""

from __future__ import annotations

import errno
import operator
import os
import socket as _socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

from rawtcp import sockbase
from rawtcp.core.states import FIN_UNACKED, OPENING, PEER_FINISHED, SEND_OPEN, State
from rawtcp.core.tcb import TcbOptions
from rawtcp.notify import Notifier
from rawtcp.runtime import Stack
from rawtcp.sockbase import SocketBase, resolve_host, scatter, sock_err
from rawtcp.sockopt_calls import OptionCalls
from rawtcp.sockopts import (  # the option names, as socket.socket's module has them
    IPPROTO_IPV6,
    IPV6_V6ONLY,
    SO_LINGER,
    SO_RCVLOWAT,
    SO_REUSEADDR,
    SO_SNDLOWAT,
    SOL_SOCKET,
    default_options,
    option_values,
    shared,
)

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
SOCK_STREAM = _socket.SOCK_STREAM
SHUT_RD, SHUT_WR, SHUT_RDWR = _socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR

_SYNCHRONIZED_OPEN = SEND_OPEN
_PEER_FINISHED = PEER_FINISHED
MSG_PEEK = int(_socket.MSG_PEEK)          # plain ints: an IntFlag test costs a Python call
MSG_DONTWAIT = int(_socket.MSG_DONTWAIT)
MSG_WAITALL = int(_socket.MSG_WAITALL)
MSG_OOB = int(_socket.MSG_OOB)
SO_OOBINLINE = _socket.SO_OOBINLINE
# flags Linux's TCP takes and ignores (send: all but these two mean nothing to it; recv)
_IGNORED = sum(int(getattr(_socket, n, 0)) for n in ("MSG_NOSIGNAL", "MSG_DONTROUTE",
                                                     "MSG_EOR", "MSG_CONFIRM"))
_SEND_FLAGS = (MSG_DONTWAIT | MSG_OOB | _IGNORED | MSG_PEEK | MSG_WAITALL
               | sum(int(getattr(_socket, n, 0)) for n in ("MSG_MORE", "MSG_TRUNC",
                                                          "MSG_ERRQUEUE")))
_RECV_FLAGS = (MSG_PEEK | MSG_DONTWAIT | MSG_WAITALL | MSG_OOB | _IGNORED
               | int(getattr(_socket, "MSG_CMSG_CLOEXEC", 0)))
_CLOSING = FIN_UNACKED   # close() with a positive SO_LINGER waits through these


_err = sock_err


_FAMILIES = {AF_INET: _socket.AddressFamily.AF_INET, AF_INET6: _socket.AddressFamily.AF_INET6}
_STREAM = _socket.SocketKind.SOCK_STREAM
# the connection options of sockets with the shared default option table, by the table's id:
# (table, Config, TcbOptions), bounded (see Socket._tcb_options)
_TEMPLATES: dict[int, tuple[Any, Any, TcbOptions]] = {}
_SOCK_NONBLOCK = getattr(_socket, "SOCK_NONBLOCK", 0)

class Socket(OptionCalls, SocketBase):
    """A TCP socket of a rawtcp stack. Create it with ``stack.socket(AF_INET, SOCK_STREAM)``."""


    def __init__(self, stack, family: int | None = None, type: int | None = None, proto: int = 0,
                 *, _tcb=None, _binding=None) -> None:
        family = AF_INET if family is None else family
        type = SOCK_STREAM if type is None else type
        if family not in (AF_INET, AF_INET6):
            raise _err(errno.EAFNOSUPPORT, "rawtcp sockets are AF_INET or AF_INET6")
        kind = type & 0xF                    # without SOCK_NONBLOCK / SOCK_CLOEXEC
        if kind != SOCK_STREAM:              # Linux's inet_create: no such type of socket
            raise _err(errno.EPROTONOSUPPORT if kind == _socket.SOCK_RAW
                       else errno.ESOCKTNOSUPPORT, "rawtcp does TCP (SOCK_STREAM) and UDP")
        if proto not in (0, _socket.IPPROTO_TCP):
            raise _err(errno.EPROTONOSUPPORT, "a SOCK_STREAM socket is TCP")
        self._stack = stack
        self.family = _FAMILIES[family]      # the enum members (a lookup, not a call)
        self.type = _STREAM
        self.proto = proto
        self._io_refs = 0            # makefile() streams open on it (socket.SocketIO)
        self._close_wanted = False   # close() came while streams were open
        self._listener4 = None       # the IPv4 half of a dual-stack AF_INET6 listener
        self._mapped = False         # an IPv4 connection seen through an AF_INET6 socket
        self._timeout: float | None = (0.0 if type & _SOCK_NONBLOCK
                                       else _socket.getdefaulttimeout())
        self._binding = _binding
        self._tcb = _tcb
        self._listener = None
        self._closed = False
        self._shut_rd = False
        self._shut_wr = False
        self._connecting = False
        self._pending_error: int | None = None
        self._reported_error = False
        # shared read-only defaults until an option is set (sockopts.own)
        self._opts: Mapping[tuple[int, int], Any] = default_options(stack.config, family)
        self._notifier: Notifier | None = None   # made by the first fileno()
        self._rcvbuf_locked = False              # SO_RCVBUF was set (Linux's lock)
        self._sndbuf_locked = False              # SO_SNDBUF was set

    # ------------------------------------------------------------------ helpers
    @property
    def tcb(self):
        """The core connection (for inspection), or None."""
        return self._tcb

    def _call(self, fn, answered: bool = False):
        # Parking the link after a call the peer answers (Stack.call) pays off when this
        # thread calls again and reads the answer itself: a blocking socket. A non-blocking
        # one, or one handed to a selector (fileno() made its notifier), waits for the loop
        # to take the answer in: no parking then.
        return self._stack.call(fn, answered and self._notifier is None
                                and self._timeout != 0.0)

    def _check_open(self) -> None:
        if self._closed:
            raise _err(errno.EBADF, "the socket is closed")
        self._stack.check_alive()    # EBADF once the stack is closed, EIO if its loop failed

    def _wait(self, predicate, what: str, nonblock: bool = False, locked: bool = False) -> None:
        """Block per the socket's timeout mode (or not at all: nonblock, MSG_DONTWAIT) until
        predicate() holds.

        The predicates here only become false again by this socket's own calls (a state
        reached, data or space that only its reads and writes take), so one that holds
        without the lock holds: the common case (the answer arrived during the call that
        sent the request) returns without taking the lock. What follows takes the lock for
        its work, as it would after a wait. ``locked``: a predicate that changes something
        (accept's takes a connection from the queue) is only ever run under the lock."""
        if not locked and predicate():
            return
        if self._timeout == 0.0 or nonblock:
            with self._stack.lock:
                if predicate():
                    return
            raise BlockingIOError(errno.EAGAIN, f"{os.strerror(errno.EAGAIN)}: {what}")
        if not self._stack.wait_for(predicate, self._timeout):
            raise TimeoutError(errno.ETIMEDOUT, f"timed out: {what}")

    def _resolve(self, address) -> tuple[str, int]:
        if not isinstance(address, tuple) or len(address) < 2:
            raise _err(errno.EINVAL, f"address must be (host, port), got {address!r}")
        host, port = address[0], address[1]
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535.")
        if host == "":
            return "", port
        return resolve_host(host, port, self.family, SOCK_STREAM), port

    def _apply_options(self, tcb, now: int) -> None:
        """Options set on a live connection take effect at once (buffers, Nagle, keepalive,
        SO_OOBINLINE)."""
        values = option_values(self._opts, self._rcvbuf_locked, self._sndbuf_locked)
        if not self._rcvbuf_locked:   # a buffer the user never set is autotuning's
            del values["rcvbuf"]      # (core/buftune.py): the connection keeps its own
        if not self._sndbuf_locked:
            del values["sndbuf"]
        for k, v in values.items():
            setattr(tcb.options, k, v)
        tcb.urgent.inline = bool(self._opts[(SOL_SOCKET, SO_OOBINLINE)])
        tcb.options_changed(now)

    def _tcb_options(self) -> TcbOptions:
        """Options for a connection about to be created (connect, listen), not to be
        changed: the connection copies them (Tcb.__init__). A socket whose options are the
        shared defaults (none set: sockopts.default_options) gets the template made once
        for that table and Config."""
        opts, config = self._opts, self._stack.config
        shared = type(opts) is not dict and not (self._rcvbuf_locked or self._sndbuf_locked)
        if shared:
            t = _TEMPLATES.get(id(opts))
            if t is not None and t[0] is opts and t[1] is config:
                return t[2]
        o = TcbOptions.from_config(config)
        for k, v in option_values(opts, self._rcvbuf_locked, self._sndbuf_locked).items():
            setattr(o, k, v)
        if shared:
            if len(_TEMPLATES) >= 64:
                _TEMPLATES.clear()
            _TEMPLATES[id(opts)] = (opts, config, o)   # both held: their ids stay theirs
        return o

    def _readiness(self) -> tuple[bool, bool]:
        if self._closed:
            return False, False
        if self._stack.error is not None:
            return True, True
        if self._listener is not None:
            l4 = self._listener4
            return self._listener.pending > 0 or (l4 is not None and l4.pending > 0), False
        t = self._tcb
        if t is None:
            return False, False
        if t.error is not None:
            return True, True
        if t.state in OPENING:
            return False, False
        lowat = self._opts[(SOL_SOCKET, SO_RCVLOWAT)]
        readable = (t.readable >= lowat or t.eof or self._shut_rd
                    or (t.readable > 0 and t.state in _PEER_FINISHED))
        # writable as Linux's sk_stream_is_writeable: the free room at least half of what
        # is queued (a third of the buffer once it is full), so a selector's writer is not
        # woken for every few bytes acknowledged; SO_SNDLOWAT can ask for more
        writable = (t.send_space >= max(self._opts[(SOL_SOCKET, SO_SNDLOWAT)],
                                        len(t.send_buffer) >> 1)
                    or t.state not in _SYNCHRONIZED_OPEN)
        return readable, writable

    def sockatmark(self) -> bool:
        """sockatmark(3): the next byte to read is where the peer's urgent byte was (the
        last read stopped there). Python's socket module has no such call; this is rawtcp's."""
        self._check_open()
        t = self._tcb
        with self._stack.lock:
            return t is not None and t.urgent.at_mark

    def _watched(self):
        return (self._tcb, self._listener, self._listener4)

    # ------------------------------------------------------------------ naming
    def bind(self, address) -> None:
        """Bind to (addr, port). As on Linux, addr '' (or 0.0.0.0 / ::) is the wildcard: a
        listener takes connections to any address of the link of its family, a connection
        uses the link's first address of its family. Port 0 picks an ephemeral port."""
        self._check_open()
        if self._binding is not None or self._tcb is not None:
            raise _err(errno.EINVAL, "the socket is already bound")
        host, port = self._resolve(address)
        if host in ("", "0.0.0.0", "::"):
            # as Linux, the wildcard binds even when the link has no address of the
            # family (a listener there just never gets a connection)
            host = "::" if self.family == AF_INET6 else "0.0.0.0"
        elif self._stack.addresses and host not in self._stack.addresses:
            raise _err(errno.EADDRNOTAVAIL, f"{host} is not an address of this rawtcp link "
                                            f"(it has {', '.join(self._stack.addresses)})")
        reuse = bool(self._opts[(SOL_SOCKET, SO_REUSEADDR)])
        self._binding = self._call(lambda now: self._stack.core.bind(host, port, reuse=reuse))

    def getsockname(self):
        self._check_open()
        if self._tcb is not None:
            a, p = self._tcb.local
        elif self._binding is not None:
            a, p = self._binding.addr, self._binding.port
        else:
            a, p = ("0.0.0.0", 0) if self.family == AF_INET else ("::", 0)
        return (a, p) if self.family == AF_INET else (self._v6(a), p, 0, 0)

    def _v6(self, addr: str) -> str:
        """An IPv4 address seen through an AF_INET6 socket is v4-mapped (RFC 4291 2.5.5.2)."""
        return f"::ffff:{addr}" if self._mapped and ":" not in addr else addr

    def getpeername(self):
        self._check_open()
        t = self._tcb
        if t is None or self._listener is not None or not t.was_established \
                and t.state in (State.SYN_SENT, State.CLOSED):
            # never connected (in progress, refused or timed out): as Linux, ENOTCONN
            raise _err(errno.ENOTCONN, "the socket is not connected")
        a, p = t.remote
        return (a, p) if self.family == AF_INET else (self._v6(a), p, 0, 0)

    def _was_connected(self) -> bool:
        t = self._tcb
        return t is not None and t.state not in (State.SYN_SENT, State.CLOSED)

    # ------------------------------------------------------------------ passive open
    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        if self._tcb is not None:
            raise _err(errno.EINVAL, "a connected socket cannot listen")
        if self._listener is not None:
            return
        backlog = operator.index(backlog)
        if not -2**31 <= backlog < 2**31:      # a C int, as CPython's
            raise OverflowError("backlog does not fit a C int")
        if self._binding is None:
            self.bind(("", 0))
        backlog = max(0, min(backlog, 4096))
        opts = self._tcb_options().copy()       # the listener's own (children copy it)
        self._listener = self._call(
            lambda now: self._stack.core.listen(self._binding, backlog, options=opts, now=now))
        if self._dual_stack():
            self._listen4(backlog, opts)
        with self._stack.lock:
            self._watch()

    def _dual_stack(self) -> bool:
        """An AF_INET6 socket on '::' without IPV6_V6ONLY also takes IPv4 connections
        (ipv6(7)), when the link has an IPv4 address."""
        return (self.family == AF_INET6 and self._binding is not None
                and self._binding.addr == "::"
                and not self._opts.get((IPPROTO_IPV6, IPV6_V6ONLY), 1)
                and any(":" not in a for a in self._stack.addresses))

    def _listen4(self, backlog: int, opts: TcbOptions) -> None:
        core, port = self._stack.core, self._binding.port
        reuse = bool(self._opts[(SOL_SOCKET, SO_REUSEADDR)])

        def do(now):
            b = core.bind("0.0.0.0", port, reuse=reuse)
            try:
                return core.listen(b, backlog, options=opts, now=now)
            except OSError:
                b.release()
                raise

        try:
            self._listener4 = self._call(do)
        except OSError as e:
            lst, self._listener = self._listener, None
            self._call(lambda now: lst.close(now))
            raise _err(e.errno or errno.EADDRINUSE,
                       f"0.0.0.0:{port} (the IPv4 half of [::]:{port}) is taken; set "
                       "IPV6_V6ONLY to listen on IPv6 only") from None

    def accept(self):
        """Wait for a connection; returns (Socket, address) like socket.accept()."""
        self._check_open()
        if self._listener is None:
            raise _err(errno.EINVAL, "call listen() before accept()")
        lst, l4 = self._listener, self._listener4
        got: list = []

        def ready() -> bool:
            if not got:
                t = lst.accept()
                if t is None and l4 is not None:
                    t = l4.accept()
                if t is not None:
                    got.append(t)
            return bool(got) or lst.closed      # closed: shutdown() or close() meanwhile

        self._wait(ready, "accept", locked=True)
        if not got:
            if self._closed:
                raise _err(errno.EBADF, "accept: the socket was closed")
            raise _err(errno.EINVAL, "accept: the socket no longer listens (shutdown)")
        tcb = got[0]
        child = Socket(self._stack, self.family, self.type, self.proto, _tcb=tcb)
        child._mapped = self.family == AF_INET6 and ":" not in tcb.local[0]
        child._opts = self._opts = shared(self._opts)   # the listener's, until one changes
        child._rcvbuf_locked = self._rcvbuf_locked        # and its buffer locks (Linux
        child._sndbuf_locked = self._sndbuf_locked        # copies sk_userlocks)
        child._timeout = self._timeout if self._timeout != 0.0 else None
        with self._stack.lock:
            tcb.urgent.inline = bool(self._opts[(SOL_SOCKET, SO_OOBINLINE)])
            self._update_ready()
        return child, child.getpeername()

    # ------------------------------------------------------------------ active open
    def connect(self, address) -> None:
        code = self._connect(address)
        if code:
            raise _err(code, f"connect to {address!r}")

    def connect_ex(self, address) -> int:
        try:
            return self._connect(address)
        except _socket.gaierror:
            raise                     # a name that does not resolve: raised, as CPython's
        except BlockingIOError as e:
            return e.errno or errno.EAGAIN
        except OSError as e:
            return e.errno or errno.EIO

    def _connect(self, address) -> int:
        self._check_open()
        if self._listener is not None:
            return errno.EISCONN          # as Linux (inet_stream_connect on a listener)
        t = self._tcb
        if t is not None and (self._connecting or self._open_failed(t)):
            # Linux's SS_CONNECTING (inet_stream_connect): a non-blocking connect, or one
            # CPython waited for with a timeout, is done only when connect() is called again
            st = t.state
            if (st == State.SYN_SENT or st == State.SYN_RECEIVED) and t.error is None:
                if self._timeout == 0.0:
                    return errno.EALREADY
            elif self._open_failed(t):
                # the error (ECONNABORTED once it was taken: CPython's wait read SO_ERROR);
                # the socket is unconnected again, and the next connect() starts over
                code = errno.ECONNABORTED if self._reported_error else self._take_error()
                self._unconnect()
                return code
            else:
                self._connecting = False
                return 0
        elif t is not None:
            return errno.EISCONN
        if self._tcb is None:
            host, port = self._resolve(address)
            if host == "":
                return errno.EADDRNOTAVAIL
            why = sockbase.no_route(host, self._stack.addresses)
            if why:
                raise _err(errno.ENETUNREACH, why)
            if self._binding is not None and self._binding.addr not in ("0.0.0.0", "::"):
                local = self._binding.addr
            else:
                local = self._stack.default_address(self.family)
            opts = self._tcb_options()

            def do(now):
                return self._stack.core.connect(self._binding, local, host, port, now,
                                                options=opts)

            self._tcb = self._call(do, answered=True)   # SYN: a SYN-ACK comes
            with self._stack.lock:
                self._tcb.urgent.inline = bool(self._opts[(SOL_SOCKET, SO_OOBINLINE)])
                self._watch()
            self._connecting = True
            if self._timeout == 0.0:
                return errno.EINPROGRESS
        t = self._tcb
        try:
            self._wait(lambda: t.state not in (State.SYN_SENT, State.SYN_RECEIVED)
                       or t.error is not None, "connect")
        except TimeoutError:
            return errno.ETIMEDOUT
        except BlockingIOError:
            return errno.EALREADY
        blocking = self._timeout is None
        if self._open_failed(t):
            code = self._take_error()
            if blocking:              # the kernel waited and reported it: unconnected again
                self._unconnect()
            return code
        # Established, even if reset or closed since: like Linux, connect() succeeds and
        # the error comes with the next recv/send. With a timeout CPython waited outside
        # the kernel, whose socket stays connecting: the next connect() gives 0 once more.
        if blocking:
            self._connecting = False
        return 0

    @staticmethod
    def _open_failed(t) -> bool:
        """The connection ended (refused, reset, timed out) before it was established."""
        return not t.was_established and (t.error is not None or t.state == State.CLOSED)

    def _unconnect(self) -> None:
        """After a failed open, the socket is as before connect() (Linux: SS_UNCONNECTED,
        the port kept if bind() chose it, else released)."""
        t, self._tcb = self._tcb, None
        self._connecting = False
        self._reported_error = False
        b = self._binding
        with self._stack.lock:
            if t is not None:
                t.watcher = None
            if b is not None and b.released:     # the connection's end released it
                self._binding = self._stack.core.bind(b.addr, b.port, reuse=b.reuse)
            self._update_ready()

    def _take_error(self) -> int:
        code = self._tcb.error if self._tcb is not None else None
        self._reported_error = True
        return code or errno.ECONNREFUSED

    # ------------------------------------------------------------------ data
    def _need_conn(self, code: int = errno.ENOTCONN) -> Any:
        """The connection, or OSError(code) when there is none (Linux: EPIPE for send,
        ENOTCONN for recv)."""
        self._check_open()
        t = self._tcb
        if t is None or self._listener is not None:
            if code == errno.EPIPE:
                raise BrokenPipeError(code, "send on a socket that is not connected; "
                                            "call connect() first")
            raise _err(code, "the socket is not connected; call connect() or accept() first")
        if t.state in (State.SYN_SENT, State.SYN_RECEIVED) and t.error is None:
            if self._timeout == 0.0:
                raise BlockingIOError(errno.EAGAIN, "connection still in progress")
            self._wait(lambda: t.state not in (State.SYN_SENT, State.SYN_RECEIVED)
                       or t.error is not None, "connect")
        return t

    def send(self, data, flags: int = 0) -> int:
        """Flags: MSG_DONTWAIT (this call does not block); MSG_OOB (the last byte is urgent
        data, RFC 9293 3.8.5); MSG_NOSIGNAL and MSG_MORE are accepted and change nothing
        (rawtcp raises no signals)."""
        if flags & ~_SEND_FLAGS:
            raise _err(errno.EOPNOTSUPP, f"send flags {flags:#x} are not supported by rawtcp "
                                         "(MSG_DONTWAIT, MSG_OOB, MSG_NOSIGNAL, MSG_MORE are)")
        t = self._need_conn(errno.EPIPE)
        data = bytes(data)
        if self._shut_wr:
            raise BrokenPipeError(errno.EPIPE, "send after shutdown(SHUT_WR)")
        if not data:
            return 0
        lowat = self._opts[(SOL_SOCKET, SO_SNDLOWAT)]

        def ready() -> bool:
            return t.error is not None or t.send_space >= min(lowat, len(data)) or \
                t.state not in _SYNCHRONIZED_OPEN

        self._wait(ready, "send", nonblock=bool(flags & MSG_DONTWAIT))
        if t.error is not None:
            if self._reported_error:
                raise BrokenPipeError(errno.EPIPE, "send on a failed connection")
            self._reported_error = True
            raise _err(t.error, "send")
        if t.state not in _SYNCHRONIZED_OPEN:
            raise BrokenPipeError(errno.EPIPE, f"send in state {t.state.name}")
        # The segments are built now (each send() pushes as Linux's tcp_push does, so
        # TCP_NODELAY and Nagle see the same calls); the loop thread writes them.
        if flags & MSG_OOB:
            return self._call(lambda now: t.send_urgent(data, now))
        return self._call(lambda now: t.send(data, now), answered=True)

    def sendall(self, data, flags: int = 0) -> None:
        view = memoryview(bytes(data))
        timeout = self._timeout
        deadline = None if not timeout else time.monotonic() + timeout
        try:
            while view:
                if deadline is not None:      # the timeout covers the whole call, as CPython
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(errno.ETIMEDOUT, "timed out: sendall")
                    self._timeout = left
                # send() copies what it is given: offer what the buffer can take now
                t = self._tcb
                space = t.send_space if t is not None else 0
                n = self.send(view[:min(1 << 20, max(space, 1 << 16))], flags)
                view = view[n:]
        finally:
            self._timeout = timeout

    def sendto(self, data, flags_or_address, address=None) -> int:
        """sendto(data[, flags], address): on a stream socket Linux ignores the address
        (send(2)): a connected socket sends, an unconnected one raises EPIPE."""
        flags = 0 if address is None else int(flags_or_address)
        return self.send(data, flags)

    def sendmsg(self, buffers: Iterable, ancdata=(), flags: int = 0, address=None) -> int:
        """writev semantics: the buffers go out as one stream, in order. The address is
        ignored, as sendto's."""
        if ancdata:
            raise _err(errno.EINVAL, "rawtcp sockets carry no ancillary data")
        return self.send(b"".join(bytes(b) for b in buffers), flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Flags: MSG_PEEK (leave the data queued), MSG_DONTWAIT (do not block),
        MSG_WAITALL (wait for bufsize bytes unless EOF, an error or the timeout comes)."""
        if operator.index(bufsize) < 0:          # an integer (TypeError else), as CPython
            raise ValueError("negative buffersize in recv")
        if flags & ~_RECV_FLAGS:
            raise _err(errno.EOPNOTSUPP, f"recv flags {flags:#x} are not supported by rawtcp "
                                         "(MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL, MSG_OOB are)")
        if flags & MSG_OOB and self._tcb is None and self._listener is None:
            self._check_open()            # Linux's tcp_recv_urg: no urgent data, EINVAL
            raise _err(errno.EINVAL, "no urgent data: the socket is not connected")
        t = self._need_conn()
        if flags & MSG_OOB:               # never blocks, as Linux's tcp_recv_urg
            with self._stack.lock:
                data = t.recv_urgent(peek=bool(flags & MSG_PEEK))
            return data[:bufsize] if bufsize else b""
        if bufsize == 0:
            return b""
        if flags & MSG_WAITALL and not flags & (MSG_PEEK | MSG_DONTWAIT):
            return self._recv_waitall(bufsize, flags & ~MSG_WAITALL)
        lowat = min(self._opts[(SOL_SOCKET, SO_RCVLOWAT)], bufsize)

        def ready() -> bool:
            return (t.readable >= lowat or t.eof or t.error is not None
                    or t.state == State.CLOSED or self._shut_rd
                    or (t.readable > 0 and t.state in _PEER_FINISHED))

        self._wait(ready, "recv", nonblock=bool(flags & MSG_DONTWAIT))
        if flags & MSG_PEEK:
            with self._stack.lock:
                data = t.rbuf.peek(bufsize)
        else:
            data = self._call(lambda now: t.recv(bufsize, now))
        if data:
            return data
        # after the peer's FIN a read ends there, whatever came next (Linux: SOCK_DONE is
        # tested before the error, which the next send reports)
        if t.error is not None and not self._reported_error and not t.fin_rcvd:
            self._reported_error = True
            raise _err(t.error, "recv")
        return b""

    def _recv_waitall(self, bufsize: int, flags: int) -> bytes:
        """Read in pieces (so the window keeps opening) until bufsize bytes, EOF or an
        error; on a timeout with some data, return what came (as Linux does)."""
        out = bytearray()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        saved = self._timeout
        try:
            while len(out) < bufsize:
                if deadline is not None:
                    self._timeout = max(0.0001, deadline - time.monotonic())
                try:
                    d = self.recv(bufsize - len(out), flags)
                except (TimeoutError, OSError):
                    if out:
                        break
                    raise
                if not d:
                    break
                out += d
        finally:
            self._timeout = saved
        return bytes(out)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0, *,
                  _call: str = "recv_into") -> int:
        # checked before anything is read, as CPython does: a failed call consumes nothing
        mv = sockbase.writable(buffer, _call)
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes > len(mv):
            raise ValueError("buffer too small for requested bytes")
        n = nbytes or len(mv)
        data = self.recv(n, flags)
        mv[: len(data)] = data
        return len(data)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, None]:
        """(data, None): Linux gives a stream socket's recvfrom no address."""
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer, nbytes: int = 0, flags: int = 0) -> tuple[int, None]:
        return self.recv_into(buffer, nbytes, flags, _call="recvfrom_into"), None

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0):
        """(data, [], msg_flags, None): no ancillary data, and no address (as Linux for a
        connected stream socket)."""
        data = self.recv(bufsize, flags)
        return data, [], 0, None

    def recvmsg_into(self, buffers: Iterable, ancbufsize: int = 0, flags: int = 0):
        """readv semantics: fill the buffers in order from one read."""
        views = sockbase.writable_all(buffers, "recvmsg_into")   # all checked before the read
        data = self.recv(sum(v.nbytes for v in views), flags)
        scatter(views, data)
        return len(data), [], 0, None

    def makefile(self, mode: str = "r", buffering: int | None = None, *, encoding=None,
                 errors=None, newline=None):
        """A file object over the socket, exactly socket.socket.makefile (socket.SocketIO
        over recv_into/send): closing the socket while the file is open keeps the
        connection until the file is closed too."""
        self._check_open()
        return _socket.socket.makefile(self, mode, buffering, encoding=encoding,
                                       errors=errors, newline=newline)

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._close_wanted:
            self.close()

    # ------------------------------------------------------------------ closing
    def shutdown(self, how: int) -> None:
        self._check_open()
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise _err(errno.EINVAL, "how must be SHUT_RD, SHUT_WR or SHUT_RDWR")
        if self._listener is not None:
            # Linux (inet_shutdown): SHUT_RD stops listening (a common way to stop a server
            # thread): connections not yet accepted are reset, a blocked accept() fails
            # with EINVAL, the socket is bound but unconnected again; SHUT_WR does nothing
            if how != SHUT_WR:
                lst, l4 = self._listener, self._listener4
                self._listener = self._listener4 = None
                self._call(lambda now: (lst.close(now, keep_binding=True),
                                        l4 is not None and l4.close(now)))
                with self._stack.lock:
                    self._update_ready()
            return
        t = self._tcb
        if (t is None or t.state == State.TIME_WAIT    # over: Linux's socket is CLOSE
                or t.state in (State.CLOSED, State.SYN_SENT) and not self._was_connected()):
            raise _err(errno.ENOTCONN, "the socket is not connected")
        if how in (SHUT_RD, SHUT_RDWR):
            self._shut_rd = True
        if how in (SHUT_WR, SHUT_RDWR):
            self._shut_wr = True
        self._call(lambda now: t.shutdown(how, now), answered=True)

    def close(self) -> None:
        if self._closed:
            return
        if self._io_refs > 0:       # makefile() streams still open: as socket.socket
            self._close_wanted = True
            return
        stack = self._stack
        try:
            if self._listener is not None:
                lst, l4 = self._listener, self._listener4
                self._call(lambda now: lst.close(now))
                if l4 is not None:
                    self._call(lambda now: l4.close(now))
            elif self._tcb is not None:
                t = self._tcb
                onoff, linger = self._opts[(SOL_SOCKET, SO_LINGER)]
                if onoff and linger == 0:
                    self._call(lambda now: t.abort(now))
                else:
                    self._call(lambda now: t.close(now), answered=True)
                    if onoff and linger > 0:
                        stack.wait_for(lambda: t.state not in _CLOSING or t.error is not None,
                                       float(linger))
            elif self._binding is not None:
                b = self._binding
                self._call(lambda now: b.release())
        except OSError:
            if stack.error is None and not stack.closed:
                raise
        finally:
            self._closed = True
            with stack.lock:
                self._release_notifier()

    @property
    def state(self) -> str:
        """The RFC 9293 state name of the connection."""
        return self.tcp_info()["state"] if self._tcb is None else self._tcb.state.name

    def _repr_state(self) -> str:
        return f", state={self.state}"


Stack.socket_class = Socket   # Stack.socket() makes these (the runtime never imports this)
