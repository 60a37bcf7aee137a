"""The BSD-like socket API over two rawtcp stacks on a MemoryLink pair.

Every call, option and errno of issue 3 ("On the wire"), checked against what Linux's
socket.socket does for SOCK_STREAM. Real threads and real time with short timers
(tests/conftest.py fast_config).
"""

from __future__ import annotations

import errno
import hashlib
import os
import selectors
import socket
import struct
import threading
import time

import pytest
from socket_helpers import A4, A6, B4, B6, Pair
from socket_helpers import connected as _connected

from rawtcp.faults import parse_rule

PORT = 5000


def connected(p: Pair, family: int = socket.AF_INET, port: int = PORT, **kw):
    """(client on a, server side on b, listener on b), all with a timeout."""
    return _connected(p, family, port, **kw)


def listen_on(stack, port: int = PORT, family: int = socket.AF_INET, backlog: int = 8):
    ls = stack.socket(family, socket.SOCK_STREAM)
    ls.bind(("", port))
    ls.listen(backlog)
    return ls


def out_segs(tracer, **match):
    return [e for e in tracer.events("seg")
            if e["dir"] == "out" and all(e.get(k) == v for k, v in match.items())]


def read_until_eof(sock, limit: int = 1 << 26) -> bytes:
    buf = bytearray()
    while len(buf) < limit:
        d = sock.recv(65536)
        if not d:
            break
        buf += d
    return bytes(buf)


# --------------------------------------------------------------------------- open and names
def test_connect_accept_and_names_ipv4(pair: Pair) -> None:
    """RFC 9293 3.5 three-way handshake through connect()/accept()."""
    ls = pair.b.socket()
    ls.bind(("", PORT))
    ls.listen(4)
    assert ls.getsockname() == ("0.0.0.0", PORT)      # '' is the wildcard, as on Linux
    c = pair.a.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(2)
    assert c.connect_ex((B4, PORT)) == 0
    ls.settimeout(2)
    s, addr = ls.accept()
    assert addr == c.getsockname()
    assert c.getpeername() == (B4, PORT)
    assert s.getsockname() == (B4, PORT)
    assert s.getpeername() == addr and addr[0] == A4
    assert c.state == "ESTABLISHED" and s.state == "ESTABLISHED"
    assert 32768 <= addr[1] <= 60999          # Config ephemeral range
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM


def test_bind_concrete_address_and_wildcard_client(pair: Pair) -> None:
    ls = pair.b.socket()
    ls.bind((B4, PORT))
    ls.listen(2)
    ls.settimeout(2)
    assert ls.getsockname() == (B4, PORT)
    c = pair.a.socket()
    c.bind(("0.0.0.0", 0))                     # wildcard + ephemeral, then connect
    port = c.getsockname()[1]
    c.settimeout(2)
    c.connect((B4, PORT))
    assert c.getsockname() == (A4, port)
    s, addr = ls.accept()
    assert addr == (A4, port) and s.getsockname() == (B4, PORT)


def test_ipv6_names_are_4_tuples(pair: Pair) -> None:
    c, s, _ = connected(pair, socket.AF_INET6)
    assert c.getpeername() == (B6, PORT, 0, 0)
    assert s.getpeername()[0] == A6 and len(s.getpeername()) == 4
    c.sendall(b"v6")
    assert s.recv(10) == b"v6"


def test_socket_family_and_type_checked(pair: Pair) -> None:
    with pytest.raises(OSError) as e:
        pair.a.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    assert e.value.errno == errno.EAFNOSUPPORT
    with pytest.raises(OSError) as e:
        pair.a.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_UDP)
    assert e.value.errno == errno.EPROTONOSUPPORT   # (SOCK_DGRAM is UDP: test_udp_socket.py)
    s = pair.a.socket(socket.AF_INET)
    with pytest.raises(OSError) as e:
        s.connect((B6, PORT))
    assert e.value.errno == errno.EAFNOSUPPORT


# --------------------------------------------------------------------------- data
def test_one_megabyte_each_way_sha256(pair: Pair) -> None:
    c, s, _ = connected(pair)
    up = os.urandom(1 << 20)
    down = os.urandom(1 << 20)
    got: dict[str, bytes] = {}

    def server() -> None:
        got["up"] = read_until_eof(s)
        s.sendall(down)
        s.close()

    th = threading.Thread(target=server)
    th.start()
    c.sendall(up)
    c.shutdown(socket.SHUT_WR)
    got["down"] = read_until_eof(c)
    th.join(10)
    assert hashlib.sha256(got["up"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got["down"]).digest() == hashlib.sha256(down).digest()


def test_recv_into_and_vectored_io(pair: Pair) -> None:
    """sendmsg gathers its buffers in order (writev); recvmsg_into scatters (readv)."""
    c, s, _ = connected(pair)
    n = c.sendmsg([b"abc", bytearray(b"defg"), memoryview(b"hij")])
    assert n == 10
    assert pair.b.wait_for(lambda: s.tcb.readable == 10, 2)
    bufs = [bytearray(2), bytearray(5), bytearray(8)]
    k, anc, flags, addr = s.recvmsg_into(bufs)
    assert k == 10 and anc == [] and flags == 0 and addr is None     # as Linux for TCP
    assert bytes(bufs[0]) == b"ab" and bytes(bufs[1]) == b"cdefg" and bytes(bufs[2][:3]) == b"hij"
    c.sendall(b"0123456789")
    buf = bytearray(16)
    got = 0
    while got < 10:
        got += s.recv_into(memoryview(buf)[got:], 10 - got)
    assert bytes(buf[:10]) == b"0123456789"
    c.sendall(b"xyz")
    data, anc, flags, addr = s.recvmsg(100)
    while len(data) < 3:
        data += s.recvmsg(100)[0]
    assert data == b"xyz" and anc == []
    with pytest.raises(OSError) as e:
        c.sendmsg([b"x"], [(0, 0, b"")])
    assert e.value.errno == errno.EINVAL


# --------------------------------------------------------------------------- closing
def test_active_and_passive_close_states(pair: Pair) -> None:
    """RFC 9293 3.6: FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT (2*MSL), CLOSED; the other side
    CLOSE_WAIT, LAST_ACK, CLOSED."""
    c, s, _ = connected(pair)
    cconn, sconn = c.tcb.conn, s.tcb.conn
    c.close()
    assert s.recv(10) == b""                          # EOF at the passive side
    assert s.state == "CLOSE_WAIT"
    s.close()
    t0 = time.monotonic()
    assert pair.a.wait_for(lambda: c.tcb.closed, 3)
    tw = time.monotonic() - t0
    assert pair.states(pair.ta, cconn)[-4:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT",
                                                "CLOSED"]
    assert pair.states(pair.tb, sconn)[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert tw >= 0.25                                 # 2 * msl(150 ms), minus the ACK's trip


def test_shutdown_wr_half_close_peer_keeps_sending(pair: Pair) -> None:
    """RFC 9293 3.6: after our FIN we still receive (FIN_WAIT_2 accepts data)."""
    c, s, _ = connected(pair)
    c.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    with pytest.raises(BrokenPipeError) as e:
        c.send(b"more")
    assert e.value.errno == errno.EPIPE
    payload = os.urandom(200_000)
    s.sendall(payload)
    s.close()
    assert read_until_eof(c) == payload
    assert c.state in ("TIME_WAIT", "CLOSED")


def test_shutdown_rd_and_rdwr(pair: Pair) -> None:
    c, s, _ = connected(pair)
    s.shutdown(socket.SHUT_RD)
    assert s.recv(10) == b""
    s.sendall(b"still sending")                       # SHUT_RD leaves the sending side open
    assert c.recv(100) == b"still sending"
    c.shutdown(socket.SHUT_RDWR)
    assert c.recv(10) == b""
    with pytest.raises(OSError) as e:
        c.send(b"x")
    assert e.value.errno == errno.EPIPE
    with pytest.raises(OSError) as e:
        c.shutdown(7)
    assert e.value.errno == errno.EINVAL


def test_context_manager_and_closed_socket(pair: Pair) -> None:
    with pair.a.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
        assert s.fileno() >= 0
    assert s.fileno() == -1
    with pytest.raises(OSError) as e:
        s.recv(1)
    assert e.value.errno == errno.EBADF
    again = pair.a.socket()                            # close released the port
    again.bind(("", port))


# --------------------------------------------------------------------------- blocking modes
def test_timeout_and_blocking_modes(pair: Pair) -> None:
    c, s, ls = connected(pair)
    assert c.gettimeout() == 2.0 and c.getblocking()
    c.settimeout(0.1)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        c.recv(10)
    assert 0.09 <= time.monotonic() - t0 < 1.0
    c.setblocking(False)
    assert c.gettimeout() == 0.0 and not c.getblocking()
    with pytest.raises(BlockingIOError) as e:
        c.recv(10)
    assert e.value.errno == errno.EAGAIN
    ls.setblocking(False)
    with pytest.raises(BlockingIOError) as e:
        ls.accept()
    assert e.value.errno == errno.EAGAIN
    c.setblocking(True)
    assert c.gettimeout() is None
    with pytest.raises(ValueError):
        c.settimeout(-1)


def test_nonblocking_connect_errnos(pair: Pair) -> None:
    """EINPROGRESS, EALREADY while the handshake runs, 0 once, then EISCONN (as Linux)."""
    ls = listen_on(pair.b)
    c = pair.a.socket()
    c.setblocking(False)
    sel = selectors.DefaultSelector()
    try:
        assert c.connect_ex((B4, PORT)) == errno.EINPROGRESS
        codes = [c.connect_ex((B4, PORT))]          # the handshake may be done already
        sel.register(c, selectors.EVENT_WRITE)
        assert sel.select(2), "connect never became writable"
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        codes.append(c.connect_ex((B4, PORT)))
        codes.append(c.connect_ex((B4, PORT)))
        # EALREADY while it runs, 0 exactly once when it is done, EISCONN after that
        assert codes in ([errno.EALREADY, 0, errno.EISCONN], [0, errno.EISCONN, errno.EISCONN])
        with pytest.raises(OSError) as e:
            c.connect((B4, PORT))
        assert e.value.errno == errno.EISCONN
    finally:
        sel.close()
    ls.close()


def test_nonblocking_connect_ealready(pair_factory) -> None:
    p = pair_factory(faults_b=[parse_rule("delay", "out flags=SA ms=300")])
    listen_on(p.b)
    c = p.a.socket()
    c.setblocking(False)
    with pytest.raises(BlockingIOError) as e:
        c.connect((B4, PORT))
    assert e.value.errno == errno.EINPROGRESS
    assert c.connect_ex((B4, PORT)) == errno.EALREADY
    with pytest.raises(BlockingIOError) as e:
        c.send(b"x")
    assert e.value.errno == errno.EAGAIN
    assert p.a.wait_for(lambda: c.state == "ESTABLISHED", 2)
    assert c.connect_ex((B4, PORT)) == 0
    assert c.connect_ex((B4, PORT)) == errno.EISCONN


# --------------------------------------------------------------------------- selectors
def test_selectors_readiness(pair: Pair) -> None:
    ls = listen_on(pair.b)
    sel = selectors.DefaultSelector()
    try:
        sel.register(ls, selectors.EVENT_READ, "listener")
        assert sel.select(0) == []                    # nothing pending
        c = pair.a.socket()
        c.settimeout(2)
        c.connect((B4, PORT))
        ev = sel.select(2)
        assert [k.data for k, _ in ev] == ["listener"]
        s, _ = ls.accept()
        assert sel.select(0) == []                    # accept queue drained
        sel.unregister(ls)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, "conn")
        ev = sel.select(1)
        assert ev and ev[0][1] == selectors.EVENT_WRITE   # writable, nothing to read
        sel.modify(s, selectors.EVENT_READ, "conn")
        assert sel.select(0) == []
        c.sendall(b"ping")
        ev = sel.select(2)
        assert ev and ev[0][1] & selectors.EVENT_READ
        assert s.recv(10) == b"ping"
        assert sel.select(0) == []                    # drained: not readable any more
        c.shutdown(socket.SHUT_WR)
        assert sel.select(2), "EOF must make the socket readable"
        assert s.recv(10) == b""
    finally:
        sel.close()


def test_selectors_not_writable_when_send_buffer_full(pair: Pair) -> None:
    def small_rcv(sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    c, s, _ = connected(pair, before_listen=small_rcv,
                        before_connect=lambda x: x.setsockopt(socket.SOL_SOCKET,
                                                              socket.SO_SNDBUF, 8192))
    c.setblocking(False)
    sent = 0
    with pytest.raises(BlockingIOError) as e:
        for _ in range(1000):
            sent += c.send(b"x" * 4096)
            pair.a.wait_for(lambda: c.tcb.send_space == 0 or c.tcb.info()["unacked"] == 0,
                            0.2)
    assert e.value.errno == errno.EAGAIN
    assert 8192 <= sent <= 8192 + 4096 + 4096         # send buffer + peer's window
    sel = selectors.DefaultSelector()
    try:
        sel.register(c, selectors.EVENT_WRITE)
        assert sel.select(0.1) == []                  # full: not writable
        got = 0
        while got < sent:
            got += len(s.recv(65536))
        assert sel.select(2), "writable again once the peer read"
    finally:
        sel.close()


# --------------------------------------------------------------------------- options
def test_so_reuseaddr_and_eaddrinuse(pair: Pair) -> None:
    a = pair.b.socket()
    assert a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
    a.bind(("", PORT))
    b = pair.b.socket()
    with pytest.raises(OSError) as e:
        b.bind(("", PORT))
    assert e.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as e:
        a.bind(("", PORT + 1))
    assert e.value.errno == errno.EINVAL              # already bound
    b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert b.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    with pytest.raises(OSError) as e:
        b.bind(("10.9.9.9", PORT))
    assert e.value.errno == errno.EADDRNOTAVAIL      # not an address of this link


def test_eaddrinuse_against_time_wait_unless_reuseaddr(pair_factory) -> None:
    """RFC 9293 3.4.2 / Linux: a server that closed first keeps its port in TIME_WAIT; a
    restarted server gets EADDRINUSE unless it sets SO_REUSEADDR (as the old one did)."""
    from socket_helpers import fast_config

    p = pair_factory(config=fast_config(msl=2000 * 1000))   # TIME_WAIT lasts 4 s here
    ls = p.b.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("", PORT))
    ls.listen(4)
    ls.settimeout(2)
    c = p.a.socket()
    c.settimeout(2)
    c.connect((B4, PORT))
    s, _ = ls.accept()
    s.close()                                        # the server closes first: TIME_WAIT
    assert c.recv(1) == b""
    c.close()
    ls.close()
    assert p.b.wait_for(lambda: s.tcb.state.name == "TIME_WAIT", 2)
    d = p.b.socket()
    with pytest.raises(OSError) as e:
        d.bind(("", PORT))
    assert e.value.errno == errno.EADDRINUSE
    d.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    d.bind(("", PORT))
    d.listen(4)
    assert d.getsockname() == ("0.0.0.0", PORT)


def test_so_rcvbuf_drives_advertised_window(pair: Pair) -> None:
    """RFC 9293 3.8.6: the window we advertise is bounded by the receive buffer."""
    def small(sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    c, s, _ = connected(pair, before_listen=small, before_connect=small)
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 8192   # doubled, as Linux
    assert c.tcb.options.rcvbuf == 4096                                # the bytes it holds
    c.sendall(os.urandom(50_000))
    s.sendall(os.urandom(50_000))
    got = 0
    while got < 50_000:
        got += len(s.recv(65536))
    got = 0
    while got < 50_000:
        got += len(c.recv(65536))
    for tracer, conn in ((pair.ta, c.tcb.conn), (pair.tb, s.tcb.conn)):
        segs = [e for e in tracer.events("seg") if e["dir"] == "out" and e.get("conn") == conn]
        assert segs and max(e["win"] for e in segs) <= 4096, "window above SO_RCVBUF"
        assert all(not e["opts"].get("wscale") for e in segs)   # 4096 needs no scaling
    # ...and the peer never had more than 4096 bytes in flight towards us
    data_in = [e for e in pair.tb.events("seg") if e["dir"] == "in" and e["len"]]
    assert max(e["len"] for e in data_in) <= 4096


def test_so_sndbuf_limits_what_send_accepts(pair: Pair) -> None:
    c, s, _ = connected(pair, before_listen=lambda x: x.setsockopt(
        socket.SOL_SOCKET, socket.SO_RCVBUF, 4096))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)   # after connect: live
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 16384
    c.setblocking(False)
    n = c.send(b"y" * 100_000)
    assert 0 < n <= 16384
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 0)       # Linux: the floor, no EINVAL
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 2048


def test_so_rcvlowat(pair: Pair) -> None:
    c, s, _ = connected(pair)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 100)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 100
    sel = selectors.DefaultSelector()
    try:
        sel.register(s, selectors.EVENT_READ)
        c.sendall(b"a" * 60)
        assert pair.b.wait_for(lambda: s.tcb.readable == 60, 2)
        assert sel.select(0) == []                    # below the low-water mark
        s.settimeout(0.1)
        with pytest.raises(TimeoutError):
            s.recv(1000)
        c.sendall(b"b" * 60)
        assert sel.select(2)
        s.settimeout(2)
        assert s.recv(1000) == b"a" * 60 + b"b" * 60
    finally:
        sel.close()


def test_so_sndlowat_controls_writability(pair: Pair) -> None:
    c, _s, _ = connected(pair)
    sel = selectors.DefaultSelector()
    try:
        sel.register(c, selectors.EVENT_WRITE)
        assert sel.select(1)
        space = c.tcb.send_space
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDLOWAT, space + 1)
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDLOWAT) == space + 1
        assert sel.select(0.05) == []
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDLOWAT, 1)
        assert sel.select(1)
    finally:
        sel.close()


def test_so_linger_zero_aborts_with_rst(pair: Pair) -> None:
    """RFC 9293 3.10.5 ABORT: RST, the peer's next recv fails with ECONNRESET."""
    c, s, _ = connected(pair)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER) == 1       # l_onoff, as Linux
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8) == struct.pack("ii", 1, 0)
    conn = c.tcb.conn
    c.close()
    assert out_segs(pair.ta, conn=conn, flags="R") or out_segs(pair.ta, conn=conn, flags="RA")
    assert "TIME_WAIT" not in pair.states(pair.ta, conn)
    with pytest.raises(ConnectionResetError) as e:
        s.recv(10)
    assert e.value.errno == errno.ECONNRESET
    assert s.recv(10) == b""                          # reported once, then EOF
    with pytest.raises(BrokenPipeError):
        s.send(b"x")


def test_so_linger_positive_waits_for_fin_ack(pair_factory) -> None:
    p = pair_factory(faults_a=[parse_rule("delay", "in state=FIN_WAIT_1 ms=300")])
    c, s, _ = connected(p)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1, 3))
    t0 = time.monotonic()
    c.close()
    took = time.monotonic() - t0
    assert took >= 0.28, f"close returned after {took:.3f}s, before the FIN was acked"
    assert c.tcb.state.name != "FIN_WAIT_1"
    # without linger, close() returns at once with the FIN still unacknowledged
    c2, s2, _ = connected(p, port=PORT + 1)
    t0 = time.monotonic()
    c2.close()
    assert time.monotonic() - t0 < 0.2
    assert c2.tcb.state.name == "FIN_WAIT_1"


def test_so_keepalive_detects_dead_peer(pair_factory) -> None:
    """RFC 1122 4.2.3.6: unanswered keep-alive probes end the connection with ETIMEDOUT."""
    from socket_helpers import fast_config

    cfg = fast_config(keepalive_time=150_000, keepalive_intvl=50_000, keepalive_probes=2)
    p = pair_factory(config=cfg, faults_b=[parse_rule("drop", "in state=ESTABLISHED")])
    c, s, _ = connected(p)
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert p.a.wait_for(lambda: c.tcb.error is not None, 3)
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ETIMEDOUT
    probes = out_segs(p.ta, conn=c.tcb.conn)
    assert len([e for e in probes if e["len"] <= 1 and e["flags"] == "A"]) >= 2
    fired = [e for e in p.ta.events("timer")
             if e["name"] == "keepalive" and e["action"] == "fired"]
    assert len(fired) >= 2


def test_so_error_after_refused_nonblocking_connect(pair: Pair) -> None:
    c = pair.a.socket()
    c.setblocking(False)
    assert c.connect_ex((B4, 6000)) == errno.EINPROGRESS
    sel = selectors.DefaultSelector()
    try:
        sel.register(c, selectors.EVENT_WRITE)
        assert sel.select(2)
    finally:
        sel.close()
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0   # read and cleared


def test_tcp_nodelay_sends_small_segments_at_once(pair_factory) -> None:
    """RFC 1122 4.2.3.4 Nagle: a small segment waits while data is unacknowledged, unless
    TCP_NODELAY. The peer's ACKs are held back 300 ms to make it visible."""
    from socket_helpers import fast_config

    for nodelay, expect in ((0, 1), (1, 2)):
        p = pair_factory(config=fast_config(rto_min=1_000_000),   # no RTO inside the test
                         faults_a=[parse_rule("delay", "in flags=A len=0 ms=300")])
        c, s, _ = connected(p)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)
        assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == nodelay
        c.send(b"a" * 10)
        c.send(b"b" * 10)
        assert p.b.wait_for(lambda s=s: s.tcb.readable >= 10, 1)
        time.sleep(0.1)  # the point is what did NOT go out within 100 ms
        data = [e for e in out_segs(p.ta, conn=c.tcb.conn) if e["len"]]
        assert len(data) == expect, (nodelay, data)


def test_tcp_maxseg(pair: Pair) -> None:
    def mss(sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)

    c, s, _ = connected(pair, before_connect=mss)
    syn = out_segs(pair.ta, flags="S")[0]
    assert syn["opts"]["mss"] == 536
    s.sendall(os.urandom(20_000))
    got = 0
    while got < 20_000:
        got += len(c.recv(65536))
    assert max(e["len"] for e in out_segs(pair.tb, conn=s.tcb.conn)) <= 536
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) <= 536
    with pytest.raises(OSError) as e:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 10)
    assert e.value.errno == errno.EINVAL


def test_unknown_option_enoprotoopt(pair: Pair) -> None:
    s = pair.a.socket()
    with pytest.raises(OSError) as e:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    assert e.value.errno == errno.ENOPROTOOPT


# --------------------------------------------------------------------------- errors
def test_econnrefused(pair: Pair) -> None:
    """RFC 9293 3.10.7.1: a SYN to a closed port is answered by RST; connect() fails."""
    c = pair.a.socket()
    c.settimeout(2)
    with pytest.raises(ConnectionRefusedError) as e:
        c.connect((B4, 6000))
    assert e.value.errno == errno.ECONNREFUSED
    with pytest.raises(OSError) as e2:          # never connected: no peer name (as Linux)
        c.getpeername()
    assert e2.value.errno == errno.ENOTCONN
    c2 = pair.a.socket()
    assert c2.connect_ex((B4, 6000)) == errno.ECONNREFUSED


def test_etimedout_after_syn_retries(pair_factory) -> None:
    """RFC 6298 5.5 backoff; gives up after 1 + syn_retries SYNs (Linux tcp_syn_retries)."""
    p = pair_factory(faults_b=[parse_rule("drop", "in")])
    c = p.a.socket()
    c.settimeout(5)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as e:
        c.connect((B4, PORT))
    took = time.monotonic() - t0
    assert e.value.errno == errno.ETIMEDOUT
    assert len(out_segs(p.ta, flags="S")) == 1 + 2    # fast_config syn_retries=2
    assert 0.2 + 0.4 <= took < 3.0                     # 200 ms then 400 ms, then 800 ms


def test_connect_timeout_by_settimeout(pair_factory) -> None:
    p = pair_factory(faults_b=[parse_rule("drop", "in")])
    c = p.a.socket()
    c.settimeout(0.1)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        c.connect((B4, PORT))
    assert time.monotonic() - t0 < 0.5


def test_enotconn_einval_epipe(pair: Pair) -> None:
    s = pair.a.socket()
    for call in (lambda: s.recv(1), s.getpeername, lambda: s.shutdown(socket.SHUT_WR)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.ENOTCONN
    with pytest.raises(BrokenPipeError) as e:           # Linux: send unconnected -> EPIPE
        s.send(b"x")
    with pytest.raises(OSError) as e:
        s.accept()
    assert e.value.errno == errno.EINVAL
    c, srv, ls = connected(pair)
    with pytest.raises(OSError) as e:
        c.listen(1)
    assert e.value.errno == errno.EINVAL
    assert ls.connect_ex((B4, PORT)) == errno.EISCONN    # Linux: connect() on a listener


def test_econnreset_on_recv_and_send(pair: Pair) -> None:
    c, s, _ = connected(pair)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1, 0))
    s.close()
    assert pair.a.wait_for(lambda: c.tcb.error is not None, 2)
    with pytest.raises(ConnectionResetError):
        c.send(b"x")
    with pytest.raises(BrokenPipeError):                 # the error is reported once
        c.send(b"x")


def test_close_with_unread_data_sends_rst(pair: Pair) -> None:
    """RFC 2525 2.17 / Linux: closing with unread data resets the connection."""
    c, s, _ = connected(pair)
    c.sendall(b"unread")
    assert pair.b.wait_for(lambda: s.tcb.readable == 6, 2)
    s.close()
    with pytest.raises(ConnectionResetError):
        c.recv(10)


def test_eaddrnotavail_when_ephemeral_ports_run_out(pair_factory) -> None:
    from socket_helpers import fast_config

    p = pair_factory(config=fast_config(ephemeral_low=40000, ephemeral_high=40001))
    ls = listen_on(p.b)
    ls.settimeout(2)
    socks = []
    for _ in range(2):
        c = p.a.socket()
        c.settimeout(2)
        c.connect((B4, PORT))
        socks.append(c)
    c = p.a.socket()
    with pytest.raises(OSError) as e:
        c.connect((B4, PORT))
    assert e.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(OSError) as e:
        p.a.socket().bind(("", 0))
    assert e.value.errno == errno.EADDRNOTAVAIL


def test_listen_backlog_bounds_the_accept_queue(pair: Pair) -> None:
    """Linux: with the accept queue full a new SYN is dropped; the client's SYN retry gets
    in once accept() made room."""
    ls = listen_on(pair.b, backlog=1)
    first = pair.a.socket()
    first.settimeout(2)
    first.connect((B4, PORT))
    assert pair.b.wait_for(lambda: ls._listener.pending == 1, 1)
    second = pair.a.socket()
    second.setblocking(False)
    assert second.connect_ex((B4, PORT)) == errno.EINPROGRESS
    time.sleep(0.1)  # the point: it stays unanswered while the queue is full
    assert second.state == "SYN_SENT"
    ls.settimeout(2)
    ls.accept()
    assert pair.a.wait_for(lambda: second.state == "ESTABLISHED", 2)
    assert len(out_segs(pair.ta, conn=second.tcb.conn, flags="S")) >= 2
    assert ls.accept()[0].state == "ESTABLISHED"


# --------------------------------------------------------------------------- tcp_info
def test_tcp_info_counts_retransmissions(pair_factory) -> None:
    """RFC 6298 5.4: a lost segment is retransmitted at the RTO; tcp_info shows it."""
    p = pair_factory(faults_a=[parse_rule("drop", "out len>0 nth=1")])
    c, s, _ = connected(p)
    info = c.tcp_info()
    assert info["state"] == "ESTABLISHED" and info["retransmissions"] == 0
    assert info["rto"] > 0 and info["cwnd"] > 0
    c.sendall(b"lost once")
    assert s.recv(100) == b"lost once"
    info = c.tcp_info()
    assert info["retransmissions"] >= 1
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO)["state"] == "ESTABLISHED"
    assert pair_states_ok(info)


def pair_states_ok(info: dict) -> bool:
    return {"state", "rto", "cwnd", "retransmissions", "srtt"} <= info.keys()


def test_recv_flags_peek_dontwait_waitall(pair: Pair) -> None:
    c, s, _ = connected(pair)
    with pytest.raises(BlockingIOError) as e:
        s.recv(10, socket.MSG_DONTWAIT)                # blocking socket, one non-blocking call
    assert e.value.errno == errno.EAGAIN
    c.sendall(b"peekaboo")
    assert pair.b.wait_for(lambda: s.tcb.readable == 8, 2)
    assert s.recv(4, socket.MSG_PEEK) == b"peek"
    assert s.recv(100, socket.MSG_PEEK) == b"peekaboo"  # still queued
    assert s.recv(100) == b"peekaboo"
    payload = os.urandom(600_000)                       # more than the receive buffer

    def later() -> None:
        for i in range(0, len(payload), 50_000):
            c.sendall(payload[i:i + 50_000])

    th = threading.Thread(target=later)
    th.start()
    assert s.recv(len(payload), socket.MSG_WAITALL) == payload
    th.join(5)
    with pytest.raises(OSError) as e:
        s.recv(10, socket.MSG_OOB)                  # Linux: no urgent data -> EINVAL
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        s.recv(10, socket.MSG_ERRQUEUE)             # a flag rawtcp does not do
    assert e.value.errno == errno.EOPNOTSUPP
    c.send(b"z", socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
    assert s.recv(10) == b"z"


def test_rcvlowat_does_not_block_past_eof(pair: Pair) -> None:
    """Linux: a FIN makes the queued bytes readable even below SO_RCVLOWAT."""
    c, s, _ = connected(pair)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1000)
    c.sendall(b"short")
    c.shutdown(socket.SHUT_WR)
    sel = selectors.DefaultSelector()
    try:
        sel.register(s, selectors.EVENT_READ)
        assert sel.select(2)
    finally:
        sel.close()
    assert s.recv(100) == b"short"
    assert s.recv(100) == b""
