"""API misuse as Linux and CPython report it (issue 9): nothing is consumed by a call that
fails, option values are read as the kernel reads them."""

from __future__ import annotations

import errno
import socket

import pytest
from socket_helpers import B4, Pair
from test_socket_api import PORT, connected


def test_recv_into_checks_nbytes_before_reading(pair: Pair) -> None:
    """CPython raises ValueError for nbytes > len(buffer) before it reads: the 11 bytes sent
    are all still there afterwards (rawtcp used to consume them, then raise)."""
    c, s, _ = connected(pair)
    c.sendall(b"hello world")
    assert pair.b.wait_for(lambda: s.tcb.readable == 11, 2)
    buf = bytearray(5)
    with pytest.raises(ValueError, match="buffer too small"):
        s.recv_into(buf, 11)
    with pytest.raises(ValueError, match="negative"):
        s.recv_into(buf, -1)
    assert s.tcb.readable == 11
    assert s.recv(100) == b"hello world"


def test_buffer_sizes_are_clamped_not_refused(pair: Pair) -> None:
    """Linux reads SO_RCVBUF/SO_SNDBUF as unsigned, clamps them to net.core.rmem_max /
    wmem_max and to a floor: 2^40, 0 and -1 are all accepted (socket(7))."""
    cfg = pair.a.config
    s = pair.a.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 40)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == cfg.rmem_max
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 40)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == cfg.wmem_max
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2048
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, -1)      # u32: huge, then clamped
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == cfg.wmem_max
    s.close()


def test_short_or_wrongly_typed_option_values(pair: Pair) -> None:
    """A value shorter than the option's C type is EINVAL (as the kernel's optlen check); a
    str is a TypeError (as CPython)."""
    s = pair.a.socket()
    with pytest.raises(OSError) as e:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, b"")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, "4096")
    s.close()


def test_connect_on_a_listening_socket_is_eisconn(pair: Pair) -> None:
    ls = pair.b.socket()
    ls.bind((B4, PORT))
    ls.listen(1)
    assert ls.connect_ex((B4, PORT)) == errno.EISCONN
    ls.close()
