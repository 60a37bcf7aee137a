"""Socket options stay per socket while sockets share their default table (rawtcp.sockopts):
what one socket sets, no other socket sees, as with Linux's sockets (socket(7))."""

from __future__ import annotations

import contextlib
import gc
import socket
import tracemalloc

from socket_helpers import Pair, connected

SOL, TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP


@contextlib.contextmanager
def trio(pair: Pair, **kw):
    """connected()'s client, server side and listener, closed whatever happens."""
    socks = connected(pair, **kw)
    try:
        yield socks
    finally:
        for x in socks:
            x.close()


def test_an_option_set_on_one_socket_changes_no_other(pair: Pair) -> None:
    a, b = pair.a.socket(), pair.a.socket()
    default = b.getsockopt(SOL, socket.SO_RCVBUF)
    a.setsockopt(SOL, socket.SO_RCVBUF, 10_000)
    assert a.getsockopt(SOL, socket.SO_RCVBUF) == 20_000        # doubled, as Linux
    assert b.getsockopt(SOL, socket.SO_RCVBUF) == default
    assert pair.a.socket().getsockopt(SOL, socket.SO_RCVBUF) == default
    b.setsockopt(TCP, socket.TCP_NODELAY, 1)
    assert b.getsockopt(TCP, socket.TCP_NODELAY) == 1
    assert a.getsockopt(TCP, socket.TCP_NODELAY) == 0
    for s in (a, b):
        s.close()


def test_accepted_socket_inherits_then_goes_its_own_way(pair: Pair) -> None:
    """Linux copies a listener's options into the sockets it accepts; a later change on
    either side stays there."""
    def before_listen(ls) -> None:
        ls.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
        ls.setsockopt(SOL, socket.SO_REUSEADDR, 1)

    with trio(pair, before_listen=before_listen) as (c, s, ls):
        assert s.getsockopt(SOL, socket.SO_KEEPALIVE) == 1
        ls.setsockopt(SOL, socket.SO_KEEPALIVE, 0)
        assert s.getsockopt(SOL, socket.SO_KEEPALIVE) == 1
        s.setsockopt(TCP, socket.TCP_NODELAY, 1)
        assert ls.getsockopt(TCP, socket.TCP_NODELAY) == 0
        assert ls.getsockopt(SOL, socket.SO_KEEPALIVE) == 0
        s.sendall(b"still works")
        assert c.recv(100) == b"still works"


def test_a_new_socket_holds_no_option_table_of_its_own(pair: Pair) -> None:
    """Thousands of sockets: one with default options costs a few hundred bytes, not the
    ~1.5 kB a private table of a dozen options took."""
    gc.collect()
    tracemalloc.start()
    try:
        m0 = tracemalloc.get_traced_memory()[0]
        socks = [pair.a.socket() for _ in range(500)]
        per = (tracemalloc.get_traced_memory()[0] - m0) / len(socks)
    finally:
        tracemalloc.stop()
    for s in socks:
        s.close()
    assert per < 800, per


def test_the_buffer_sizes_reported_are_the_autotuned_ones(pair: Pair) -> None:
    """Linux's getsockopt(SO_RCVBUF / SO_SNDBUF) reports the buffers autotuning grew
    (core/buftune.py); setting another option on the live socket leaves them grown;
    SO_RCVBUF / SO_SNDBUF set them again and lock them."""
    with trio(pair) as (c, s, ls):
        t = c._tcb
        for opt, field in ((socket.SO_RCVBUF, "rcvbuf"), (socket.SO_SNDBUF, "sndbuf")):
            default = c.getsockopt(SOL, opt)
            with pair.a.lock:                      # as the core's autotuning does
                setattr(t.options, field, 3 * default)
            assert c.getsockopt(SOL, opt) == 6 * default
            c.setsockopt(TCP, socket.TCP_NODELAY, 1)
            assert getattr(t.options, field) == 3 * default
            assert not getattr(t.options, field + "_locked")
            c.setsockopt(SOL, opt, 50_000)
            assert getattr(t.options, field) == 50_000 and getattr(t.options, field + "_locked")
            assert c.getsockopt(SOL, opt) == 100_000
        s.sendall(b"still works")
        assert c.recv(100) == b"still works"


def test_an_accepted_socket_keeps_its_listeners_buffer_locks(pair: Pair) -> None:
    """SO_RCVBUF / SO_SNDBUF set on a listener lock the accepted connections' buffers too
    (Linux copies sk_userlocks), also after another option is set on the accepted socket."""
    def before_listen(ls) -> None:
        ls.setsockopt(SOL, socket.SO_RCVBUF, 40_000)
        ls.setsockopt(SOL, socket.SO_SNDBUF, 30_000)

    with trio(pair, before_listen=before_listen) as (c, s, ls):
        t = s._tcb
        assert t.options.rcvbuf_locked and t.options.sndbuf_locked
        s.setsockopt(TCP, socket.TCP_NODELAY, 1)
        assert t.options.rcvbuf_locked and t.options.sndbuf_locked
        assert (t.options.rcvbuf, t.options.sndbuf) == (40_000, 30_000)


def test_connections_of_default_sockets_share_a_template_but_not_their_options(
        pair: Pair) -> None:
    """Sockets with the default option table get their connection's options from one
    template (Socket._tcb_options); each connection still owns a copy: an option set on a
    live connection, or on a socket before it connects, reaches that connection only."""
    ls = pair.b.socket()
    ls.bind(("", 5300))
    ls.listen(8)
    ls.settimeout(2)
    c1, c2, c3 = pair.a.socket(), pair.a.socket(), pair.a.socket()
    assert c1._tcb_options() is c2._tcb_options()           # the shared template
    c3.setsockopt(TCP, socket.TCP_NODELAY, 1)               # its own table from here
    assert c3._tcb_options() is not c1._tcb_options()
    accepted = []
    try:
        for c in (c1, c2, c3):
            c.settimeout(2)
            c.connect(("10.1.0.2", 5300))
            accepted.append(ls.accept()[0])
        o1, o2, o3 = (c.tcb.options for c in (c1, c2, c3))
        assert o1 is not o2 and o1 == o2 and not o1.nodelay
        assert o3.nodelay
        c1.setsockopt(TCP, socket.TCP_NODELAY, 1)           # on a live connection
        c1.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
        assert o1.nodelay and o1.keepalive
        assert not o2.nodelay and not o2.keepalive
        c4 = pair.a.socket()
        accepted.append(c4)
        assert not c4._tcb_options().nodelay                # the template is unchanged
    finally:
        for x in (c1, c2, c3, ls, *accepted):
            x.close()
