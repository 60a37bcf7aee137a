"""``rawtcp.patch(stack)``: the ``socket`` module hands out rawtcp sockets, unchanged programs
talk over rawtcp.

    with rawtcp.Stack(link) as st, rawtcp.patch(st):
        urllib.request.urlopen("http://10.78.0.1:8000/")     # rawtcp's TCP, not the kernel's

While the block runs, ``socket.socket`` (the attribute of the ``socket`` module, which is
what ``socket.create_connection``, ``socket.create_server``, socketserver, http.client,
urllib and asyncio call) is a class whose constructor returns, for ``AF_INET``/``AF_INET6``
with ``SOCK_STREAM``, a :class:`rawtcp.socket.Socket` of ``stack`` (``SOCK_DGRAM``: a
:class:`rawtcp.udp_socket.DatagramSocket` of ``stack``). Everything else (``AF_UNIX``,
``AF_PACKET``, a ``fileno=`` argument, ``socketpair``, ``fromfd``) is the kernel's, as is
``getaddrinfo`` (numeric addresses and every name the system resolver answers).

Why a class and not a function: code checks ``isinstance(x, socket.socket)`` and
subclasses ``socket.socket`` (ssl.SSLSocket). The class is a subclass of the real one (so
subclassing and ``super()`` still reach the real socket) with a metaclass whose
``__instancecheck__`` also says yes for rawtcp sockets. ``__new__`` returns the rawtcp
socket, which is not an instance of the class, so the real ``__init__`` never runs for it.

Patches nest: each ``with`` restores what was there when it began (exits out of order are
handled: the attribute goes back to the innermost patch still active, else the original).
A lock makes entering and leaving atomic between threads; the patch is process-wide (the
``socket`` module is), so threads not meant to use rawtcp should not run meanwhile.

Names bound by ``from socket import socket`` *before* the patch keep the kernel's class;
asyncio, http, urllib and socketserver look the attribute up at call time.
"""

from __future__ import annotations

import errno
import os
import socket as _socket_module
import sys
import threading
import types
from typing import Any

from rawtcp.socket import Socket

try:        # registers Stack.datagram_socket_class: SOCK_DGRAM sockets are UDP over rawtcp
    import rawtcp.udp_socket  # noqa: F401
except ImportError:      # pragma: no cover - a rawtcp without UDP: socket() says so
    pass

_REAL_SOCKET = _socket_module.socket
_INET = (_socket_module.AF_INET, _socket_module.AF_INET6)
_TYPE_FLAGS = int(getattr(_socket_module, "SOCK_NONBLOCK", 0)) | \
    int(getattr(_socket_module, "SOCK_CLOEXEC", 0))
_STREAM = int(_socket_module.SOCK_STREAM)
_DGRAM = int(_socket_module.SOCK_DGRAM)

_lock = threading.RLock()
_active: list[Patch] = []          # innermost last


def _rawtcp_types() -> tuple[type, ...]:
    """The classes whose instances count as ``socket.socket`` while patched."""
    out: list[type] = [Socket]
    mod = sys.modules.get("rawtcp.udp_socket")
    if mod is not None and isinstance(getattr(mod, "DatagramSocket", None), type):
        out.append(mod.DatagramSocket)
    return tuple(out)


class _SocketMeta(type):
    """Only the patched class itself says yes to rawtcp sockets and kernel sockets alike; a
    class derived from it while patched (ssl.SSLSocket, when ssl is first imported inside
    the patch) answers as an ordinary class."""

    def __instancecheck__(cls, obj: object) -> bool:
        if "rawtcp_stack" not in cls.__dict__:
            return type.__instancecheck__(cls, obj)
        return isinstance(obj, _REAL_SOCKET) or isinstance(obj, _rawtcp_types())

    def __subclasscheck__(cls, sub: type) -> bool:
        if "rawtcp_stack" not in cls.__dict__:
            return type.__subclasscheck__(cls, sub)
        return issubclass(sub, _REAL_SOCKET) or issubclass(sub, _rawtcp_types())


def _socket_class(stack) -> type:
    """``socket.socket`` as a patched program sees it, bound to ``stack``."""

    class socket(_REAL_SOCKET, metaclass=_SocketMeta):  # noqa: N801 - the stdlib's name
        __doc__ = _REAL_SOCKET.__doc__
        __module__ = "socket"
        __slots__ = ()
        rawtcp_stack = stack

        def __new__(cls, family: int = -1, type: int = -1, proto: int = -1,  # noqa: A002
                    fileno: int | None = None) -> Any:
            if fileno is None and cls.__dict__.get("rawtcp_stack") is not None:
                fam = _socket_module.AF_INET if family == -1 else family
                kind = _STREAM if type == -1 else int(type)
                base = kind & ~_TYPE_FLAGS
                if fam in _INET and base in (_STREAM, _DGRAM):
                    return _make(stack, fam, base, kind, proto)
            if cls.__dict__.get("rawtcp_stack") is not None:
                # the kernel's socket, as the real class makes it
                return _REAL_SOCKET(family, type, proto, fileno)
            return super().__new__(cls, family, type, proto, fileno)

    socket.__qualname__ = "socket"
    return socket


def _make(stack, family: int, base: int, kind: int, proto: int):
    proto = 0 if proto == -1 else proto
    try:
        s = stack.socket(family, base, proto)
    except OSError as e:
        if base == _DGRAM and e.errno == errno.EPROTONOSUPPORT:
            raise OSError(errno.EPROTONOSUPPORT,
                          f"{os.strerror(errno.EPROTONOSUPPORT)}: UDP (SOCK_DGRAM) sockets "
                          "over rawtcp are not available in this rawtcp yet") from None
        raise
    if kind & int(getattr(_socket_module, "SOCK_NONBLOCK", 0)):
        s.setblocking(False)
    return s


class Patch:
    """The context manager :func:`patch` returns (reusable, not reentrant)."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.socket_class = _socket_class(stack)
        self._saved: Any = None
        self._entered = False

    def __enter__(self) -> Patch:
        with _lock:
            if self._entered:
                raise RuntimeError("this rawtcp.patch is already active; make another one")
            self._entered = True
            self._saved = _socket_module.socket
            _active.append(self)
            _socket_module.socket = self.socket_class
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            if not self._entered:
                return
            self._entered = False
            i = _active.index(self)
            innermost = i == len(_active) - 1
            del _active[i]
            if innermost:
                _socket_module.socket = self._saved
            else:
                # left out of order: the patch entered after this one now restores what
                # this one found
                _active[i]._saved = self._saved

    @property
    def active(self) -> bool:
        return self._entered


def patch(stack) -> Patch:
    """A context manager: inside it, the ``socket`` module makes AF_INET/AF_INET6 stream
    (and datagram) sockets on ``stack``; AF_UNIX and the rest stay the kernel's."""
    if not hasattr(stack, "socket") or not hasattr(stack, "core"):
        raise TypeError(f"rawtcp.patch() takes a rawtcp.Stack, not {type(stack).__name__}")
    return Patch(stack)


def patched_stack():
    """The stack of the innermost active patch, or None."""
    with _lock:
        return _active[-1].stack if _active else None


class _CallableModule(types.ModuleType):
    """``rawtcp.patch`` is both this module and the function: after ``import rawtcp.patch``
    the package attribute is the module, and calling it still works."""

    def __call__(self, stack) -> Patch:
        return patch(stack)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["Patch", "patch", "patched_stack"]
