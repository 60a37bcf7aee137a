"""UDP sockets (rawtcp.udp_socket) between two rawtcp stacks on a MemoryLink pair.

RFC 768 (datagrams, checksums incl. IPv6's mandatory one, RFC 8200 8.1), RFC 1122 4.1.3.1
(ICMP port unreachable for a closed port) and 3.2.2 (ICMP errors may be rate limited),
Linux's socket API for SOCK_DGRAM (errno values, ECONNREFUSED on a connected socket)."""

from __future__ import annotations

import errno
import selectors
import socket

import pytest
from socket_helpers import A4, A6, B4, B6, Pair

import rawtcp.udp_socket  # noqa: F401 - registers Stack.datagram_socket_class
from rawtcp.faults import parse_rule
from rawtcp.udp_socket import DatagramSocket

T = 5.0


def udp(stack, family=socket.AF_INET) -> DatagramSocket:
    s = stack.socket(family, socket.SOCK_DGRAM)
    s.settimeout(T)
    return s


@pytest.mark.parametrize("family,a,b", [(socket.AF_INET, A4, B4), (socket.AF_INET6, A6, B6)])
def test_echo_sendto_recvfrom_both_families(pair: Pair, family, a, b) -> None:
    srv, cli = udp(pair.b, family), udp(pair.a, family)
    assert isinstance(srv, DatagramSocket)
    srv.bind(("", 9000))
    assert cli.sendto(b"hello", (b, 9000)) == 5
    port = cli.getsockname()[1]
    assert port != 0                                      # autobound (Linux)
    data, src = srv.recvfrom(100)
    assert data == b"hello" and src[:2] == (a, port)
    srv.sendto(data.upper(), src)
    assert cli.recvfrom(100)[0] == b"HELLO"
    # both directions were UDP on the wire, traced with ports and lengths (RFC 768)
    outs = [e for e in pair.ta.events("udp") if e["dir"] == "out"]
    assert outs[0]["sport"] == port and outs[0]["dport"] == 9000 and outs[0]["len"] == 5
    assert [e["dir"] for e in pair.tb.events("udp")] == ["in", "out"]
    srv.close()
    cli.close()


def test_connected_socket_send_recv_and_peer_filter(pair: Pair) -> None:
    srv = udp(pair.b)
    srv.bind((B4, 9001))
    cli = udp(pair.a)
    with pytest.raises(OSError) as ei:
        cli.send(b"x")
    assert ei.value.errno == errno.EDESTADDRREQ
    with pytest.raises(OSError) as ei:
        cli.getpeername()
    assert ei.value.errno == errno.ENOTCONN
    cli.connect((B4, 9001))
    assert cli.getpeername() == (B4, 9001)
    assert cli.getsockname()[0] == A4                    # a concrete source after connect
    cli.send(b"one")
    data, src = srv.recvfrom(10)
    # a third socket on B sends to cli: filtered out (cli is connected to srv)
    other = udp(pair.b)
    other.sendto(b"stranger", src)
    srv.sendto(b"two", src)
    assert cli.recv(10) == b"two"
    # sendto with an address on a connected socket is allowed (Linux)
    cli.sendto(b"three", (B4, 9001))
    assert srv.recv(10) == b"three"
    for s in (srv, cli, other):
        s.close()


def test_recv_variants_peek_truncation_and_nonblocking(pair: Pair) -> None:
    srv, cli = udp(pair.b), udp(pair.a)
    srv.bind(("", 9002))
    with pytest.raises(BlockingIOError):
        srv.recv(10, socket.MSG_DONTWAIT)
    for p in (b"abcdef", b"ghij", b"k", b"lmno"):
        cli.sendto(p, (B4, 9002))
    assert srv.recv(100, socket.MSG_PEEK) == b"abcdef"
    data, anc, flags, _src = srv.recvmsg(3)
    assert (data, anc, flags) == (b"abc", [], socket.MSG_TRUNC)   # the rest is discarded
    buf = bytearray(10)
    n, src = srv.recvfrom_into(buf)
    assert buf[:n] == b"ghij" and src[0] == A4
    b1, b2 = bytearray(0), bytearray(4)
    n, _anc, flags, _ = srv.recvmsg_into([b1, b2])
    assert (n, bytes(b2[:n]), flags) == (1, b"k", 0)
    assert srv.recv_into(buf, 2) == 2 and buf[:2] == b"lm"
    srv.setblocking(False)
    with pytest.raises(BlockingIOError):
        srv.recv(10)
    srv.settimeout(0.05)
    with pytest.raises(TimeoutError):
        srv.recv(10)
    srv.close()
    cli.close()


def test_fileno_is_readable_when_a_datagram_waits(pair: Pair) -> None:
    srv, cli = udp(pair.b), udp(pair.a)
    srv.bind(("", 9003))
    sel = selectors.DefaultSelector()
    try:
        sel.register(srv.fileno(), selectors.EVENT_READ | selectors.EVENT_WRITE)
        ev = sel.select(0)
        assert ev and ev[0][1] == selectors.EVENT_WRITE      # writable, nothing to read
        sel.modify(srv.fileno(), selectors.EVENT_READ)
        cli.sendto(b"wake", (B4, 9003))
        ready = sel.select(T)
        assert ready and ready[0][1] & selectors.EVENT_READ
        sel.modify(srv.fileno(), selectors.EVENT_READ | selectors.EVENT_WRITE)
        srv.recv(10)
        assert sel.select(0)[0][1] == selectors.EVENT_WRITE  # read: not readable again
    finally:
        sel.close()
        srv.close()
        cli.close()


def test_bounded_receive_queue_counts_drops(pair: Pair) -> None:
    srv, cli = udp(pair.b), udp(pair.a)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1000)
    assert srv.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 4096   # doubled, floor
    srv.bind(("", 9004))
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 500)            # holds 2048 bytes
    for i in range(10):
        cli.sendto(bytes([i]) * 500, (B4, 9004))
    cli.sendto(b"end", (B4, 9004))
    assert pair.b.wait_for(lambda: pair.b.core.counters["udp_in"] == 11, T)
    got = []
    srv.setblocking(False)
    while True:
        try:
            got.append(srv.recv(1000))
        except BlockingIOError:
            break
    # 4 * 500 bytes fit in 2048, a fifth does not; the 3-byte "end" still does
    assert [g[0] for g in got[:4]] == [0, 1, 2, 3] and got[4:] == [b"end"]
    assert srv.endpoint.dropped == 6 == pair.b.core.counters["udp_dropped_rcvbuf"]
    assert len(pair.tb.events("drop")) == 6


def test_emsgsize_beyond_the_mtu(pair: Pair) -> None:
    cli = udp(pair.a)
    cli6 = udp(pair.a, socket.AF_INET6)
    cli.sendto(b"x" * 1472, (B4, 9))
    cli6.sendto(b"x" * 1452, (B6, 9))
    for s, n, dst in ((cli, 1473, B4), (cli6, 1453, B6)):
        with pytest.raises(OSError) as ei:
            s.sendto(b"x" * n, (dst, 9))
        assert ei.value.errno == errno.EMSGSIZE


@pytest.mark.parametrize("family,b", [(socket.AF_INET, B4), (socket.AF_INET6, B6)])
def test_port_unreachable_is_econnrefused_on_a_connected_socket(pair: Pair, family, b) -> None:
    """RFC 1122 4.1.3.1: the closed port's stack answers ICMP port unreachable; Linux
    reports it as ECONNREFUSED on the connected socket's next call, once."""
    cli = udp(pair.a, family)
    cli.connect((b, 9999))
    cli.send(b"anyone?")
    with pytest.raises(ConnectionRefusedError):
        cli.recv(10)
    assert pair.b.core.counters["icmp_out"] == 1
    assert pair.a.core.counters["icmp_udp_error"] == 1
    icmp = pair.ta.events("icmp")
    assert icmp and icmp[0]["kind"] == "port-unreachable" and icmp[0]["qdport"] == 9999
    cli.send(b"again")                                    # reported once
    assert pair.a.wait_for(lambda: cli.endpoint.error is not None, T)
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    # an unconnected socket hears nothing of it (Linux without IP_RECVERR)
    free = udp(pair.a, family)
    free.sendto(b"x", (b, 9999))
    assert pair.a.wait_for(lambda: pair.a.core.counters["icmp_ignored"] == 1, T)
    assert free.endpoint.error is None


def test_port_unreachable_rate_limit_is_counted(pair: Pair) -> None:
    """RFC 1122 3.2.2: ICMP errors may be rate limited (rawtcp: burst 50, then 1/s)."""
    pair.b.core.udp.icmp_burst = 3
    pair.b.core.udp._tokens = 3.0
    cli = udp(pair.a)
    for _ in range(8):
        cli.sendto(b"?", (B4, 9998))
    assert pair.b.wait_for(lambda: pair.b.core.counters["udp_no_port"] == 8, T)
    assert pair.b.core.counters["icmp_out"] == 3
    assert pair.b.core.counters["icmp_ratelimited"] == 5


def test_ipv6_zero_checksum_is_dropped_and_counted(pair: Pair) -> None:
    """RFC 8200 8.1: over IPv6 the UDP checksum is mandatory."""
    from rawtcp.wire.udp import Datagram, encode_datagram

    srv = udp(pair.b, socket.AF_INET6)
    srv.bind(("", 9005))
    raw = bytearray(encode_datagram(Datagram(A6, B6, 1234, 9005, b"bad")))
    raw[46:48] = b"\0\0"
    good = encode_datagram(Datagram(A6, B6, 1234, 9005, b"good"))
    pair.a.link.send(bytes(raw))
    pair.a.link.send(good)
    assert srv.recv(10) == b"good"
    assert pair.b.counters["dropped_malformed"] == 1
    assert [e["reason"] for e in pair.tb.events("drop")] == ["udp-no-checksum"]


def test_fault_rule_proto_udp_drops_only_datagrams(pair_factory) -> None:
    p = pair_factory(faults_a=[parse_rule("drop", "out proto=udp nth=1"),
                               parse_rule("drop", "out flags=S")])   # never a datagram
    srv, cli = udp(p.b), udp(p.a)
    srv.bind(("", 9006))
    cli.sendto(b"lost", (B4, 9006))
    cli.sendto(b"kept", (B4, 9006))
    assert srv.recv(10) == b"kept"
    faults = p.ta.events("fault")
    assert len(faults) == 1 and faults[0]["proto"] == "udp" and faults[0]["len"] == 4


def test_api_misuse_gives_linux_errno(pair: Pair) -> None:
    s = udp(pair.a)
    with pytest.raises(OSError) as ei:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert ei.value.errno == errno.ENOPROTOOPT
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_DGRAM
    with pytest.raises(OSError) as ei:
        s.sendto(b"x", ("255.255.255.255", 9))
    assert ei.value.errno == errno.EACCES                 # needs SO_BROADCAST
    with pytest.raises(OSError) as ei:
        s.shutdown(socket.SHUT_RDWR)
    assert ei.value.errno == errno.ENOTCONN
    assert s.getsockname()[1] != 0          # the sendto autobound it, as Linux
    s = udp(pair.a)
    s.bind(("", 0))
    with pytest.raises(OSError) as ei:
        s.bind(("", 0))
    assert ei.value.errno == errno.EINVAL
    t = udp(pair.a)
    with pytest.raises(OSError) as ei:
        t.bind(("", s.getsockname()[1]))
    assert ei.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as ei:
        s.send(b"x", socket.MSG_OOB)
    assert ei.value.errno == errno.EOPNOTSUPP
    s.close()
    with pytest.raises(OSError) as ei:
        s.sendto(b"x", (B4, 9))
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError) as ei:
        pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_TCP)
    assert ei.value.errno == errno.EPROTONOSUPPORT


def test_so_reuseaddr_lets_two_sockets_share_a_port(pair: Pair) -> None:
    s1, s2 = udp(pair.b), udp(pair.b)
    for s in (s1, s2):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", 9007))
    assert s1.getsockname() == s2.getsockname()
