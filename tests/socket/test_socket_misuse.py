"""API misuse as Linux and CPython report it (issue 9): nothing is consumed by a call that
fails, option values are read as the kernel reads them."""

from __future__ import annotations

import contextlib
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


def test_read_only_buffers_are_refused_before_reading(pair: Pair) -> None:
    """recv_into / recvfrom_into / recvmsg_into into a read-only buffer (bytes, a read-only
    memoryview, one read-only buffer among writable ones) is CPython's TypeError, raised
    before the read: the data stays queued (rawtcp used to read it, then fail to store it,
    and the bytes were lost)."""
    c, s, _ = connected(pair)
    c.sendall(b"hello")
    assert pair.b.wait_for(lambda: s.tcb.readable == 5, 2)
    for call in (lambda: s.recv_into(b"\0" * 5),
                 lambda: s.recvfrom_into(memoryview(b"\0" * 5)),
                 lambda: s.recvmsg_into([bytearray(2), b"\0" * 3])):
        with pytest.raises(TypeError, match="read-write"):
            call()
        assert s.tcb.readable == 5
    buf = bytearray(5)
    assert s.recv_into(buf) == 5 and bytes(buf) == b"hello"


def test_buffer_sizes_are_clamped_not_refused(pair: Pair) -> None:
    """Linux reads SO_RCVBUF/SO_SNDBUF as unsigned, clamps them to net.core.rmem_max /
    wmem_max, doubles them and applies a floor: 2^31 - 1 (the largest C int CPython passes
    on), 0 and -1 are all accepted, and getsockopt reports the doubled value (socket(7))."""
    cfg = pair.a.config
    s = pair.a.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, (1 << 31) - 1)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * cfg.rmem_max
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, (1 << 31) - 1)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * cfg.wmem_max
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 2048
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, -1)      # u32: huge, then clamped
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * cfg.wmem_max
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 100_000)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 200_000
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


def test_option_values_that_are_not_a_c_int_are_type_errors_as_cpython(pair: Pair) -> None:
    """Beside a kernel socket: setsockopt takes an int that fits a C int or a buffer; a
    float, None or an int past 2**31 - 1 is a TypeError (CPython refuses it before the
    kernel sees it), also for an option rawtcp does not keep; -1 and True are ints. rawtcp
    took 1.5 as 1 and 2**32 as a huge buffer."""
    sol = socket.SOL_SOCKET

    def probe(s) -> list:
        out = []
        for opt in (socket.SO_RCVBUF, socket.SO_KEEPALIVE, socket.SO_PRIORITY):
            for value in (1.5, None, 2**31, 2**32, -2**31 - 1, -1, True, 2**31 - 1):
                out.append(_outcome(lambda s=s, o=opt, v=value: s.setsockopt(sol, o, v)))
        return out

    with socket.socket() as k:
        want = probe(k)
    s = pair.a.socket()
    got = probe(s)
    s.close()
    assert got[:8] == want[:8] == [TypeError] * 5 + ["ok"] * 3
    assert got[8:16] == want[8:16]
    # SO_PRIORITY: kept by Linux, not by rawtcp (ENOPROTOOPT, an OSError): only the type
    # checks must agree
    assert got[16:21] == want[16:21] == [TypeError] * 5


def test_connect_on_a_listening_socket_is_eisconn(pair: Pair) -> None:
    ls = pair.b.socket()
    ls.bind((B4, PORT))
    ls.listen(1)
    assert ls.connect_ex((B4, PORT)) == errno.EISCONN
    ls.close()


def test_syn_flood_does_not_keep_a_client_out(pair: Pair) -> None:
    """RFC 4987 3.6 / Linux tcp_syncookies=1: 5,000 SYNs from random ports (a source that
    never answers) fill the listener's SYN queue; from then on every SYN gets a cookie and
    no state, so a real client connects at once and exchanges data, and the listener holds
    no more than its backlog."""
    import random

    from rawtcp.core.segment import Flags, Options, Packet, Segment
    from rawtcp.wire import encode_ip

    ls = pair.b.socket()
    ls.bind((B4, PORT))
    ls.listen(128)
    ls.settimeout(5)
    rng = random.Random(9)
    flooder = "10.1.0.99"                         # nobody: our SYN-ACKs go unanswered
    ports = rng.sample(range(1024, 65536), 5000)   # 5,000 distinct half-open attempts
    for port in ports:
        syn = Segment(port, PORT, rng.getrandbits(32), 0, Flags.SYN, 64240, Options(mss=1460))
        pair.a.link.send(encode_ip(Packet(flooder, B4, syn)))
    c = pair.a.socket()
    c.settimeout(5)
    c.connect((B4, PORT))
    s, _ = ls.accept()
    c.sendall(b"through the flood")
    s.settimeout(5)
    assert s.recv(100) == b"through the flood"
    core = pair.b.core
    assert pair.b.wait_for(lambda: core.counters["syncookies_sent"] >= 5000 - 128, 10), \
        dict(core.counters)
    assert len(core.connections()) <= 128 + 1
    assert len(core.listeners()[0].syn_queue) <= 128


def test_urgent_data_through_the_socket_api(pair: Pair) -> None:
    """RFC 9293 3.8.5 between two rawtcp stacks, as Linux does it: send(MSG_OOB) makes the
    last byte urgent; the receiver reads up to the mark, sockatmark() says so, recv(MSG_OOB)
    gives the byte, the rest follows in line; with SO_OOBINLINE the byte stays in line."""
    c, s, _ = connected(pair)
    c.sendall(b"ABCDEFG")
    c.send(b"H", socket.MSG_OOB)
    c.sendall(b"IJKL")
    assert pair.b.wait_for(lambda: s.tcb.readable == 11, 2)
    assert s.recv(100) == b"ABCDEFG" and s.sockatmark()
    assert s.recv(1, socket.MSG_OOB) == b"H"
    with pytest.raises(OSError) as e:
        s.recv(1, socket.MSG_OOB)
    assert e.value.errno == errno.EINVAL
    assert s.recv(100) == b"IJKL" and not s.sockatmark()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    c.send(b"xy!", socket.MSG_OOB)
    assert pair.b.wait_for(lambda: s.tcb.readable == 3, 2)
    assert s.recv(100) == b"xy" and s.sockatmark()
    assert s.recv(100) == b"!"


def _outcome(call) -> object:
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return type(e)
    return "ok"


def test_timeout_values_are_checked_as_cpython_checks_them(pair: Pair) -> None:
    """settimeout() and setblocking() take and refuse what CPython's socket does (a kernel
    socket beside the rawtcp ones, both kinds): NaN and negative timeouts are ValueError,
    beyond CPython's clock OverflowError, a str TypeError, and setblocking() wants an
    integer (before Python 3.12). rawtcp used to take NaN, inf and "1", then fail in a
    later recv()."""
    timeouts = (float("nan"), float("inf"), 1e300, "1", -1, -0.5, 2**70, True, 1e9, 0, 2.5,
                None)
    flags = ("no", None, 0.5, 2, 0, True)
    with socket.socket() as k:
        want_t = [_outcome(lambda v=v: k.settimeout(v)) for v in timeouts]
        want_b = [_outcome(lambda v=v: k.setblocking(v)) for v in flags]
    assert want_t.count("ok") == 5 and "ok" in want_b  # both kinds (setblocking takes any
    #                                                    truth value since Python 3.12)
    for s in (pair.a.socket(), pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)):
        assert [_outcome(lambda v=v, s=s: s.settimeout(v)) for v in timeouts] == want_t
        assert [_outcome(lambda v=v, s=s: s.setblocking(v)) for v in flags] == want_b
        s.settimeout(2.5)
        assert s.gettimeout() == 2.5
        s.close()


def test_stream_calls_on_a_udp_socket_are_eopnotsupp(pair: Pair) -> None:
    """listen() and accept() on a SOCK_DGRAM socket: EOPNOTSUPP, as Linux (docs/run.md: a
    socket.socket call rawtcp lacks is never an AttributeError); unknown names still are."""
    u = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for call in (lambda: u.listen(1), lambda: u.accept()):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EOPNOTSUPP
    with pytest.raises(AttributeError):
        u.no_such_call  # noqa: B018
    u.close()


def _retry_codes(connect_ex, closed: int, open_: int, nonblocking: bool, writable) -> list:
    """connect_ex to a closed port, then to a listening one three times (waiting for each
    non-blocking attempt to finish)."""
    out = []
    for port in (closed, open_, open_, open_):
        out.append(connect_ex(port))
        if nonblocking and out[-1] == errno.EINPROGRESS:
            writable()
    return out


def test_connect_again_after_a_refused_connect_as_linux(pair: Pair) -> None:
    """A refused connect leaves the socket unconnected (Linux inet_stream_connect): the next
    connect() starts over, in each timeout mode exactly as a kernel socket on loopback does
    through CPython (blocking: it connects; with a timeout: ECONNABORTED once, CPython's wait
    having taken the error; non-blocking: the error, then a new attempt), with or without
    bind(). rawtcp used to answer EISCONN for ever."""
    import select
    import time

    ls = pair.b.socket()
    ls.bind(("", PORT))
    ls.listen(8)
    with socket.socket() as kl, socket.socket() as kc:
        kl.bind(("127.0.0.1", 0))
        kl.listen(8)
        kc.bind(("127.0.0.1", 0))         # a port nobody listens on (closed at once)
        k_closed = kc.getsockname()[1]
        kc.close()
        k_open = kl.getsockname()[1]
        for mode in (None, 2.0, 0.0):
            for bound in (False, True):
                with socket.socket() as k:
                    k.settimeout(mode)
                    if bound:
                        k.bind(("127.0.0.1", 0))
                    want = _retry_codes(lambda p, k=k: k.connect_ex(("127.0.0.1", p)),
                                        k_closed, k_open, mode == 0.0,
                                        lambda k=k: select.select([], [k], [], 2))
                s = pair.a.socket()
                s.settimeout(mode)
                if bound:
                    s.bind(("", 0))
                    port = s.getsockname()[1]

                def settled(s=s) -> None:        # the non-blocking attempt has finished
                    deadline = time.monotonic() + 2
                    while s.tcb is not None and s.tcb.state.name == "SYN_SENT":
                        assert time.monotonic() < deadline
                        time.sleep(0.005)

                got = _retry_codes(lambda p, s=s: s.connect_ex((B4, p)), PORT + 1, PORT,
                                   mode == 0.0, settled)
                assert got == want, (mode, bound, got, want)
                assert errno.ECONNREFUSED in got and 0 in got
                if bound:
                    assert s.getsockname()[1] == port    # bind()'s port is kept
                s.close()
    ls.close()


def test_shutdown_of_a_listener_stops_it_and_wakes_accept(pair: Pair) -> None:
    """Linux's inet_shutdown on a listening socket (a usual way to stop a server thread):
    SHUT_WR changes nothing; SHUT_RD wakes a blocked accept() with EINVAL, resets the
    connections not yet accepted and leaves the socket bound (listen() works again on its
    port). rawtcp raised ENOTCONN and the accept() stayed blocked."""
    import threading

    ls = pair.b.socket()
    ls.bind(("", PORT))
    ls.listen(8)
    ls.shutdown(socket.SHUT_WR)                      # a listener: nothing happens
    c1 = pair.a.socket()
    c1.settimeout(2)
    c1.connect((B4, PORT))
    ls.settimeout(5)
    s1, _ = ls.accept()                              # still listening
    outcome: list = []

    def accept() -> None:
        try:
            ls.accept()
            outcome.append("accepted")
        except OSError as e:
            outcome.append(e.errno)

    th = threading.Thread(target=accept)             # blocks: nothing is queued
    th.start()
    th.join(0.2)
    assert th.is_alive() and not outcome
    assert ls.shutdown(socket.SHUT_RD) is None
    th.join(2)
    assert outcome == [errno.EINVAL]
    with pytest.raises(OSError) as e:
        ls.accept()
    assert e.value.errno == errno.EINVAL
    refused = pair.a.socket()
    refused.settimeout(2)
    assert refused.connect_ex((B4, PORT)) == errno.ECONNREFUSED   # no longer listening
    ls.listen(8)                                     # bind()'s port was kept
    c2 = pair.a.socket()
    c2.settimeout(2)
    assert c2.connect_ex((B4, PORT)) == 0
    assert pair.b.wait_for(lambda: ls._listener.pending == 1, 2)
    ls.shutdown(socket.SHUT_RDWR)                    # c2 was never accepted: reset
    with pytest.raises(ConnectionResetError):
        c2.recv(1)
    for s in (c1, s1, refused, c2, ls):
        s.close()


def test_connect_to_broadcast_multicast_or_this_host_is_enetunreach(pair: Pair) -> None:
    """Linux refuses a TCP connect to a broadcast or multicast address with ENETUNREACH
    (tcp_v4_connect) and puts nothing on the wire; the unspecified, loopback and own
    addresses are this host, which Linux reaches over its loopback device and a rawtcp
    stack does not have: ENETUNREACH too. rawtcp sent SYNs there until it timed out."""
    from socket_helpers import A4

    segs_before = len(pair.ta.events("seg"))
    for host in ("255.255.255.255", "224.0.0.1", "239.1.2.3", "0.0.0.0", "127.0.0.1", A4):
        s = pair.a.socket()
        s.settimeout(2)
        with pytest.raises(OSError) as e:
            s.connect((host, PORT))
        assert e.value.errno == errno.ENETUNREACH, host
        assert s.connect_ex((host, PORT)) == errno.ENETUNREACH
        s.close()
    s6 = pair.a.socket(socket.AF_INET6)
    assert s6.connect_ex(("ff02::1", PORT)) == errno.ENETUNREACH
    s6.close()
    assert len(pair.ta.events("seg")) == segs_before        # not one SYN


def test_option_values_and_levels_read_back_as_linux(pair: Pair) -> None:
    """Beside a kernel socket: boolean options read back 1 whatever non-zero value set them
    (Linux keeps flags), TCP_MAXSEG takes 0 (no user MSS) and 88..32767 and refuses the
    rest with EINVAL, SO_ACCEPTCONN says whether the socket listens, an unknown option
    level is EOPNOTSUPP for getsockopt, and getsockname()/settimeout() on a closed socket
    are EBADF. rawtcp read back 2 or -1, refused 0 and took 65495, and raised ENOPROTOOPT
    for the others."""
    sol, tcp = socket.SOL_SOCKET, socket.IPPROTO_TCP

    def probe(s, local: str) -> list:
        out = []
        for key, value in (((sol, socket.SO_REUSEADDR), 2), ((sol, socket.SO_KEEPALIVE), 7),
                           ((sol, socket.SO_OOBINLINE), -3), ((tcp, socket.TCP_NODELAY), -1)):
            s.setsockopt(*key, value)
            out.append(s.getsockopt(*key))
        for mss in (0, 87, 88, 32767, 32768):
            out.append(_outcome(lambda s=s, m=mss: s.setsockopt(tcp, socket.TCP_MAXSEG, m)))
        out.append(s.getsockopt(sol, socket.SO_ACCEPTCONN))
        out.append(_errno(lambda s=s: s.getsockopt(9999, 1)))
        s.bind((local, 0))
        s.listen(1)
        out.append(s.getsockopt(sol, socket.SO_ACCEPTCONN))
        s.close()
        out.append(_errno(s.getsockname))
        out.append(_errno(lambda s=s: s.settimeout(1)))
        return out

    with socket.socket() as k:
        want = probe(k, "127.0.0.1")
    got = probe(pair.a.socket(), "")
    assert got == want
    assert want[:4] == [1, 1, 1, 1] and want[-2:] == [errno.EBADF, errno.EBADF]


def _errno(call) -> int | None:
    try:
        call()
    except OSError as e:
        return e.errno
    return None


def test_argument_types_and_unresolvable_names_as_cpython(pair: Pair, monkeypatch) -> None:
    """recv() of a float or str size, listen() beyond a C int, bind((None, 0)) are the
    TypeError / OverflowError CPython's socket raises (a kernel socket beside it); a name
    that does not resolve is the resolver's socket.gaierror from connect() and connect_ex()
    alike, as CPython's (rawtcp answered EINVAL, and connect_ex returned it). The resolver
    is replaced here: no query leaves the machine."""
    def probe(s) -> list:
        return [_outcome(lambda: s.recv(1.5)), _outcome(lambda: s.recv("a")),
                _outcome(lambda: s.listen(2**31)), _outcome(lambda: s.bind((None, 0)))]

    with socket.socket() as k:
        want = probe(k)
    s = pair.a.socket()
    assert probe(s) == want == [TypeError, TypeError, OverflowError, TypeError]
    s.close()

    def no_name(host, *args, **kw):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_name)
    s = pair.a.socket()
    for call in (s.connect, s.connect_ex):
        with pytest.raises(socket.gaierror) as e:
            call(("no-such-host.invalid", 80))
        assert e.value.errno == socket.EAI_NONAME
    s.close()


def test_socket_types_as_linux(pair: Pair) -> None:
    """socket(): SOCK_NONBLOCK / SOCK_CLOEXEC in the type are flags (a non-blocking stream
    socket of type SOCK_STREAM); a type rawtcp does not have is ESOCKTNOSUPPORT, SOCK_RAW
    without a protocol and SOCK_STREAM with another protocol EPROTONOSUPPORT, as Linux's
    inet_create (a kernel socket beside it). rawtcp refused the flags and said
    EPROTONOSUPPORT for every type."""
    flags = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    with socket.socket(socket.AF_INET, flags) as k:
        want = (k.type, k.gettimeout())
    s = pair.a.socket(socket.AF_INET, flags)
    assert (s.type, s.gettimeout()) == want == (socket.SOCK_STREAM, 0.0)
    s.close()
    for kind, proto in ((socket.SOCK_SEQPACKET, 0), (socket.SOCK_STREAM, socket.IPPROTO_UDP),
                        (socket.SOCK_RAW, 0)):
        with pytest.raises(OSError) as k_err:
            socket.socket(socket.AF_INET, kind, proto)
        with pytest.raises(OSError) as r_err:
            pair.a.socket(socket.AF_INET, kind, proto)
        assert r_err.value.errno == k_err.value.errno, (kind, proto)


def test_sendfile_arguments_and_urgent_recv_unconnected_as_linux(pair: Pair, tmp_path) -> None:
    """sendfile() refuses a count that is not a positive integer (ValueError / TypeError,
    as CPython's) before sending anything; recv(MSG_OOB) on a socket never connected is
    EINVAL, as Linux's tcp_recv_urg (rawtcp said ENOTCONN), while a listener's stays
    ENOTCONN (a kernel socket beside it)."""
    f = tmp_path / "data"
    f.write_bytes(b"x" * 100)

    def probe(s, listener) -> list:
        with f.open("rb") as fh:
            out = [_outcome(lambda: s.sendfile(fh, 0, 0)), _outcome(lambda: s.sendfile(fh, 0, -1)),
                   _outcome(lambda: s.sendfile(fh, 0, 1.5))]
        out.append(_errno(lambda: s.recv(1, socket.MSG_OOB)))
        out.append(_errno(lambda: listener.recv(1, socket.MSG_OOB)))
        return out

    with socket.socket() as k, socket.socket() as kl:
        kl.bind(("127.0.0.1", 0))
        kl.listen(1)
        want = probe(k, kl)
    s, ls = pair.a.socket(), pair.a.socket()
    ls.bind(("", 0))
    ls.listen(1)
    assert probe(s, ls) == want == [ValueError, ValueError, TypeError, errno.EINVAL,
                                    errno.ENOTCONN]
    s.close()
    ls.close()


def test_flags_linux_ignores_are_accepted(pair: Pair) -> None:
    """send() with MSG_EOR, MSG_CONFIRM, MSG_DONTROUTE or MSG_WAITALL and recv() with
    MSG_NOSIGNAL, MSG_DONTROUTE or MSG_CMSG_CLOEXEC work as without them (Linux's TCP takes
    and ignores them; rawtcp said EOPNOTSUPP); a flag rawtcp has no meaning for
    (MSG_ERRQUEUE on recv) stays EOPNOTSUPP."""
    c, s, _ = connected(pair)
    sent = b""
    for name in ("MSG_EOR", "MSG_CONFIRM", "MSG_DONTROUTE", "MSG_WAITALL"):
        piece = name.encode()
        assert c.send(piece, getattr(socket, name)) == len(piece)
        sent += piece
    got = b""
    for name in ("MSG_NOSIGNAL", "MSG_DONTROUTE", "MSG_CMSG_CLOEXEC"):
        got += s.recv(8, getattr(socket, name))
    while len(got) < len(sent):
        got += s.recv(100)
    assert got == sent
    with pytest.raises(OSError) as e:
        s.recv(1, socket.MSG_ERRQUEUE)
    assert e.value.errno == errno.EOPNOTSUPP
    c.close()
    s.close()


def test_reset_after_the_peers_fin_is_epipe_and_reads_end_at_the_fin(pair: Pair) -> None:
    """The peer closes (we are in CLOSE_WAIT), we send, its closed socket answers RST: as
    Linux (tcp_reset: EPIPE in CLOSE-WAIT; a read ends at the FIN before any error), recv()
    gives b"" and the next send() BrokenPipeError (EPIPE), as a kernel socket on loopback
    does beside it. rawtcp raised ECONNRESET from both."""
    import time

    def probe(c, s) -> list:
        s.close()
        time.sleep(0.2)                        # the peer's FIN: CLOSE_WAIT
        c.send(b"a")
        time.sleep(0.3)                        # its RST
        out = [c.recv(10)]
        try:
            c.send(b"a")
            out.append(None)
        except OSError as e:
            out.append(e.errno)
        c.close()
        return out

    with _kernel_connection() as (kc, ks):
        want = probe(kc, ks)
    c, s, _ = connected(pair)
    assert probe(c, s) == want == [b"", errno.EPIPE]


def test_writable_once_a_third_of_the_send_buffer_is_free(pair: Pair) -> None:
    """A non-blocking writer driven by a selector is woken as by Linux's
    sk_stream_is_writeable: when the free room is at least half of what is queued, not for
    every few bytes acknowledged (rawtcp said writable with one byte free, and the writer
    made sends of a few hundred bytes). The reader holds a small buffer and does not read,
    so what the writer queued stays queued."""
    import selectors

    ls = pair.b.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)    # before the handshake
    ls.bind(("", PORT))
    ls.listen(1)
    c = pair.a.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)    # 64 KiB, not autotuned
    c.settimeout(2)
    c.connect((B4, PORT))
    ls.settimeout(2)
    s, _ = ls.accept()
    ls.close()
    c.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(c, selectors.EVENT_WRITE)
    try:
        assert c.send(b"z" * 60_000) == 60_000  # the reader takes a few KiB, the rest waits
        t = c.tcb
        assert pair.a.wait_for(lambda: t.snd_wnd == 0 and len(t.send_buffer) > 40_000, 2)
        room, queued = t.send_space, len(t.send_buffer)
        assert 0 < room < queued // 2           # some room, less than half the queue
        assert sel.select(0.1) == []            # not writable (was: writable)
        got = 0
        while got < 60_000:
            got += len(s.recv(65536))
        assert pair.a.wait_for(lambda: len(t.send_buffer) == 0, 2)
        assert sel.select(1)                    # all room: writable
    finally:
        sel.close()
        c.close()
        s.close()


def test_shutdown_once_the_connection_is_over_is_enotconn(pair: Pair) -> None:
    """Our SHUT_WR, then the peer's FIN: the connection is in TIME-WAIT, over for the socket
    (Linux's socket is CLOSE there): shutdown() is ENOTCONN, as on a kernel socket beside
    it (rawtcp returned None)."""
    def probe(c, s) -> list:
        c.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""
        s.close()
        assert c.recv(10) == b""               # the peer's FIN: TIME-WAIT
        return [_errno(lambda: c.shutdown(socket.SHUT_RD)),
                _errno(lambda: c.shutdown(socket.SHUT_WR))]

    with _kernel_connection() as (kc, ks):
        want = probe(kc, ks)
    c, s, _ = connected(pair)
    assert probe(c, s) == want == [errno.ENOTCONN, errno.ENOTCONN]
    c.close()


@contextlib.contextmanager
def _kernel_connection():
    """A connected pair of kernel sockets on loopback: (client, accepted), 2 s timeouts."""
    with socket.socket() as kl, socket.socket() as kc:
        kl.bind(("127.0.0.1", 0))
        kl.listen(1)
        kc.settimeout(2)
        kc.connect(kl.getsockname())
        ks, _ = kl.accept()
        ks.settimeout(2)
        with ks:
            yield kc, ks


def test_connect_to_port_0_is_refused_by_the_peer_as_linux(pair: Pair) -> None:
    """Linux sends the SYN to port 0 like to any port, and the peer's RST makes it
    ECONNREFUSED (a kernel socket on loopback, in every timeout mode); rawtcp said EINVAL
    without sending anything. The SYN and the RST are on the wire."""
    import select
    import time

    for mode in (None, 2.0, 0.0):
        with socket.socket() as k:
            k.settimeout(mode)
            got_k = k.connect_ex(("127.0.0.1", 0))
            if got_k == errno.EINPROGRESS:
                select.select([], [k], [], 2)
                got_k = k.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        s = pair.a.socket()
        s.settimeout(mode)
        got = s.connect_ex(("10.1.0.2", 0))
        if got == errno.EINPROGRESS:
            deadline = time.monotonic() + 2
            while s.tcb.state.name != "CLOSED" and time.monotonic() < deadline:
                time.sleep(0.005)
            got = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        assert got == got_k == errno.ECONNREFUSED, (mode, got, got_k)
        s.close()
    outs = [e for e in pair.ta.events("seg") if e["dir"] == "out" and e["dport"] == 0]
    ins = [e for e in pair.ta.events("seg") if e["dir"] == "in" and e["sport"] == 0]
    assert outs and all(e["flags"] == "S" for e in outs)
    assert ins and all("R" in e["flags"] for e in ins)
