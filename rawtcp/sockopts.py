"""The TCP socket options a rawtcp socket keeps, their defaults, and how a value given to
``setsockopt`` becomes the stored one (as Linux reads it: socket(7), tcp(7))."""

from __future__ import annotations

import errno
import socket as _socket
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rawtcp.core.cc_option import congestion_from_option
from rawtcp.sockbase import sock_err

SOL_SOCKET = _socket.SOL_SOCKET
IPPROTO_TCP = _socket.IPPROTO_TCP
SO_REUSEADDR = _socket.SO_REUSEADDR
SO_RCVBUF = _socket.SO_RCVBUF
SO_SNDBUF = _socket.SO_SNDBUF
SO_RCVLOWAT = _socket.SO_RCVLOWAT
SO_SNDLOWAT = _socket.SO_SNDLOWAT
SO_LINGER = _socket.SO_LINGER
SO_KEEPALIVE = _socket.SO_KEEPALIVE
SO_OOBINLINE = _socket.SO_OOBINLINE
TCP_NODELAY = _socket.TCP_NODELAY
TCP_MAXSEG = _socket.TCP_MAXSEG
TCP_CONGESTION = getattr(_socket, "TCP_CONGESTION", 13)
IPPROTO_IPV6 = _socket.IPPROTO_IPV6
IPV6_V6ONLY = _socket.IPV6_V6ONLY

Key = tuple[int, int]
_BUFFERS = ((SOL_SOCKET, SO_RCVBUF), (SOL_SOCKET, SO_SNDBUF))
_LOWATS = ((SOL_SOCKET, SO_RCVLOWAT), (SOL_SOCKET, SO_SNDLOWAT))
_BOOLEANS = frozenset({(SOL_SOCKET, SO_REUSEADDR), (SOL_SOCKET, SO_KEEPALIVE),
                       (SOL_SOCKET, SO_OOBINLINE), (IPPROTO_TCP, TCP_NODELAY)})


# read-only option tables shared by the sockets whose defaults are equal (bounded)
_SHARED: dict[tuple, MappingProxyType] = {}


def default_options(config: Any, family: int) -> Mapping[Key, Any]:
    """A new socket's options, as getsockopt reports them, from the stack's Config: a
    read-only table shared by every socket with the same defaults (a socket's own dict
    would be ~600 bytes each); a socket copies it when one of its options is set."""
    # the table is a function of these: found without building it (every socket() asks)
    key = (family, config.rcvbuf, config.sndbuf, config.keepalive, config.nodelay,
           config.mss, config.congestion)
    table = _SHARED.get(key)
    if table is not None:
        return table
    opts: dict[Key, Any] = {
        (SOL_SOCKET, SO_REUSEADDR): 0,
        # as Linux reports them: twice the bytes the buffer holds (see normalize)
        (SOL_SOCKET, SO_RCVBUF): 2 * config.rcvbuf,
        (SOL_SOCKET, SO_SNDBUF): 2 * config.sndbuf,
        (SOL_SOCKET, SO_RCVLOWAT): 1,
        (SOL_SOCKET, SO_SNDLOWAT): 1,
        (SOL_SOCKET, SO_LINGER): (0, 0),
        (SOL_SOCKET, SO_KEEPALIVE): int(config.keepalive),
        (SOL_SOCKET, SO_OOBINLINE): 0,
        (IPPROTO_TCP, TCP_NODELAY): int(config.nodelay),
        (IPPROTO_TCP, TCP_MAXSEG): config.mss,
        (IPPROTO_TCP, TCP_CONGESTION): config.congestion,
    }
    if family == _socket.AF_INET6:   # Linux's default (net.ipv6.bindv6only=0): dual stack
        opts[(IPPROTO_IPV6, IPV6_V6ONLY)] = 0
    table = MappingProxyType(opts)
    if len(_SHARED) < 64:
        _SHARED[key] = table
    return table


def option_values(opts: Mapping[Key, Any], rcvbuf_locked: bool,
                  sndbuf_locked: bool) -> dict[str, Any]:
    """A socket's options as the connection's (rawtcp.core.tcb.TcbOptions fields)."""
    return {
        "rcvbuf": opts[(SOL_SOCKET, SO_RCVBUF)] // 2,
        "sndbuf": opts[(SOL_SOCKET, SO_SNDBUF)] // 2,
        "nodelay": bool(opts[(IPPROTO_TCP, TCP_NODELAY)]),
        "keepalive": bool(opts[(SOL_SOCKET, SO_KEEPALIVE)]),
        "mss": opts[(IPPROTO_TCP, TCP_MAXSEG)],
        "congestion": opts[(IPPROTO_TCP, TCP_CONGESTION)],
        "rcvbuf_locked": rcvbuf_locked,
        "sndbuf_locked": sndbuf_locked,
    }


def own(opts: Mapping[Key, Any]) -> dict[Key, Any]:
    """A socket's option table it may change: a shared one copied, else itself."""
    return opts if type(opts) is dict else dict(opts)


def shared(opts: Mapping[Key, Any]) -> Mapping[Key, Any]:
    """The table read-only, to share with an accepted socket (both copy it on a change)."""
    return opts if type(opts) is not dict else MappingProxyType(opts)


def normalize(key: Key, value: Any, known: dict[Key, Any], config: Any) -> Any:
    """The value ``setsockopt(*key, value)`` stores, or OSError with Linux's errno (ENOPROTOOPT
    for an option rawtcp does not keep, EINVAL for a bad value, ENOENT for an unknown
    congestion control)."""
    level, optname = key
    if isinstance(value, str):
        raise TypeError("a bytes-like object or an integer is required, not 'str'")
    if key == (SOL_SOCKET, SO_LINGER):
        if isinstance(value, (bytes, bytearray, memoryview)):
            if len(value) < 8:
                raise sock_err(errno.EINVAL, "SO_LINGER takes a struct linger (8 bytes)")
            onoff, linger = struct.unpack("ii", bytes(value)[:8])
        else:
            try:
                onoff, linger = value
            except (TypeError, ValueError):
                raise sock_err(errno.EINVAL, "SO_LINGER takes (onoff, linger)") from None
        if linger < 0:
            raise sock_err(errno.EINVAL, "l_linger must be >= 0")
        return (int(onoff), int(linger))
    if key == (IPPROTO_TCP, TCP_CONGESTION):   # a name; ENOENT if unknown (as Linux)
        return congestion_from_option(value)
    if not isinstance(value, (bytes, bytearray, memoryview)) and (
            not isinstance(value, int) or not -0x80000000 <= value <= 0x7FFFFFFF):
        # CPython's setsockopt takes an int that fits a C int, else a buffer: a float or a
        # larger int is a TypeError before the kernel is asked
        raise TypeError(f"a bytes-like object is required, not '{type(value).__name__}'")
    if key not in known:
        raise sock_err(errno.ENOPROTOOPT, f"option ({level}, {optname}) is not supported by rawtcp")
    if isinstance(value, (bytes, bytearray, memoryview)):
        if len(value) < 4:
            raise sock_err(errno.EINVAL, f"option ({level}, {optname}) takes an int (4 bytes)")
        value = struct.unpack("i", bytes(value)[:4])[0]
    value = int(value)
    if key in _BUFFERS:
        # As Linux (socket(7)): the value is read as unsigned, clamped to
        # net.core.rmem_max / wmem_max (Config.rmem_max / wmem_max) and doubled, with a
        # floor; never EINVAL. getsockopt reports the doubled value; as on Linux about
        # half of it holds data (Linux keeps the rest for bookkeeping): rawtcp's
        # buffer is exactly the value asked for.
        top = config.rmem_max if optname == SO_RCVBUF else config.wmem_max
        if value < 0:
            value &= 0xFFFFFFFF
        value = max(min(value, top) * 2, 2 * 2048)
    if key in _BOOLEANS:
        return int(bool(value))         # Linux keeps a flag: getsockopt reads 1, not -1 or 2
    if key == (IPPROTO_TCP, TCP_MAXSEG):
        # as Linux's do_tcp_setsockopt: 0 is "no user MSS" (the default), else 88..32767
        if value == 0:
            return config.mss
        if not 88 <= value <= 32767:
            raise sock_err(errno.EINVAL, "TCP_MAXSEG must be 0 or between 88 and 32767")
    if key in _LOWATS:
        value = max(1, value)
    return value
