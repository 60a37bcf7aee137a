"""The option calls of a rawtcp stream socket (a mixin of rawtcp.socket.Socket):
``setsockopt``, ``getsockopt`` as socket.socket's (an int without a buflen, else the
option's bytes cut to it as Linux cuts them) and ``tcp_info()``. What the options are and how
a value given to setsockopt is stored: rawtcp.sockopts."""

from __future__ import annotations

import errno
import operator
import socket as _socket
import struct
from typing import Any

from rawtcp import tcpinfo
from rawtcp.core.cc_option import congestion_option_value
from rawtcp.sockbase import sock_err as _err
from rawtcp.sockopts import (
    IPPROTO_TCP,
    SO_LINGER,
    SO_RCVBUF,
    SO_SNDBUF,
    SOL_SOCKET,
    TCP_CONGESTION,
    TCP_MAXSEG,
    normalize,
    own,
)

SOCK_STREAM = _socket.SOCK_STREAM
SO_ERROR = _socket.SO_ERROR
SO_TYPE = _socket.SO_TYPE
SO_ACCEPTCONN = _socket.SO_ACCEPTCONN
TCP_INFO = getattr(_socket, "TCP_INFO", 11)
_LEVELS = (SOL_SOCKET, IPPROTO_TCP, _socket.IPPROTO_IP, _socket.IPPROTO_IPV6)
_BUFFER_FIELDS = {(SOL_SOCKET, SO_RCVBUF): "rcvbuf", (SOL_SOCKET, SO_SNDBUF): "sndbuf"}


class OptionCalls:
    """Socket's option calls; the attributes used are the Socket's (``_opts``, ``_tcb``,
    ``_listener``, ``_stack``, ``_pending_error``, ``_reported_error``, the buffer locks,
    ``_check_open``, ``_call``, ``_apply_options``)."""

    _opts: Any
    _tcb: Any
    _listener: Any
    _stack: Any
    _pending_error: int | None
    _reported_error: bool
    _rcvbuf_locked: bool
    _sndbuf_locked: bool

    def setsockopt(self, level: int, optname: int, value) -> None:
        self._check_open()
        key = (level, optname)
        opts = self._opts = own(self._opts)
        opts[key] = normalize(key, value, opts, self._stack.config)
        if key == (SOL_SOCKET, SO_RCVBUF):
            self._rcvbuf_locked = True
        elif key == (SOL_SOCKET, SO_SNDBUF):
            self._sndbuf_locked = True
        if self._tcb is not None and key != (SOL_SOCKET, SO_LINGER):
            t = self._tcb
            self._call(lambda now: self._apply_options(t, now))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None):
        """As socket.socket's: an int without ``buflen`` (or with 0), else the option's bytes
        cut to ``buflen`` (1..1024) as Linux cuts them (SO_LINGER: ``struct linger``, so
        without a buflen only its l_onoff). One rawtcp addition: TCP_INFO without a buflen is
        the connection's info() dict; with one, Linux's struct tcp_info (rawtcp.tcpinfo)."""
        self._check_open()
        if buflen is not None:
            buflen = operator.index(buflen)
            if not 0 <= buflen <= 1024:       # CPython's own check (no errno)
                raise OSError("getsockopt buflen out of range")
        key = (level, optname)
        if key == (SOL_SOCKET, SO_ERROR) or key == (SOL_SOCKET, SO_TYPE) \
                or key == (SOL_SOCKET, SO_ACCEPTCONN):
            v = self._read_only_option(key)
            return struct.pack("i", v)[:buflen] if buflen else v
        if level not in _LEVELS:              # as Linux's ip_getsockopt
            raise _err(errno.EOPNOTSUPP, f"option level {level} is not supported")
        if key == (IPPROTO_TCP, TCP_INFO):
            if not buflen:
                return self.tcp_info()
            return tcpinfo.pack(self._tcp_info_fields(), buflen)
        if key == (SOL_SOCKET, SO_LINGER):
            onoff, linger = self._opts[key]
            return struct.pack("ii", onoff, linger)[:buflen] if buflen else onoff
        if key not in self._opts:
            raise _err(errno.ENOPROTOOPT, f"option ({level}, {optname}) is not supported by rawtcp")
        v = self._opts[key]
        if key == (IPPROTO_TCP, TCP_CONGESTION):
            return congestion_option_value(v, buflen)
        if key == (IPPROTO_TCP, TCP_MAXSEG) and self._tcb is not None:
            v = self._tcb.info().get("mss", v)
        elif key in _BUFFER_FIELDS and self._tcb is not None:
            # the connection's buffer, doubled as Linux reports it (autotuning grows it)
            v = 2 * getattr(self._tcb.options, _BUFFER_FIELDS[key])
        return struct.pack("i", v)[:buflen] if buflen else v

    def _read_only_option(self, key: tuple[int, int]) -> int:
        """SO_ERROR (the pending error, taken: reported once), SO_TYPE, SO_ACCEPTCONN."""
        if key == (SOL_SOCKET, SO_TYPE):
            return SOCK_STREAM
        if key == (SOL_SOCKET, SO_ACCEPTCONN):
            return int(self._listener is not None)
        if self._pending_error is not None:
            code, self._pending_error = self._pending_error, None
            return code
        t = self._tcb
        if t is not None and t.error is not None and not self._reported_error:
            self._reported_error = True
            return t.error
        return 0

    def _tcp_info_fields(self) -> dict:
        """What struct tcp_info is packed from: the connection's info(), or a socket with
        none (Linux: CLOSE, or LISTEN for a listener)."""
        t = self._tcb
        if t is None:
            return {"state": "LISTEN" if self._listener is not None else "CLOSED"}
        with self._stack.lock:
            return t.info()

    def tcp_info(self) -> dict:
        """The connection's TCP state and counters (like Linux TCP_INFO)."""
        t = self._tcb
        if t is None:
            return {"state": "LISTEN" if self._listener is not None else "CLOSED"}
        with self._stack.lock:
            info = dict(t.info())
        info.setdefault("retransmissions", info.get("total_retrans", 0))
        return info


__all__ = ["OptionCalls"]
