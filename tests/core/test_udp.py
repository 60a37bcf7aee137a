"""The sans-IO UDP table and ICMP error handling (rawtcp/core/udp.py).

RFC 768 (UDP), RFC 1122 3.2.2 / 4.1.3.1 (ICMP port unreachable for a closed port),
RFC 1122 4.2.3.9 and RFC 5927 4.1-4.2 (ICMP errors for TCP: hard errors abort a connection
attempt, errors are soft in synchronized states, the quoted sequence number is checked)."""

from __future__ import annotations

import errno
import random

import pytest
from core_harness import ISS, LPORT, PEER, RPORT, US, Harness

from rawtcp.core.config import MS, SEC, Config
from rawtcp.core.datagram import Datagram, IcmpError
from rawtcp.core.stack import Stack
from rawtcp.core.tcb import State

A, B = "10.0.0.1", "10.0.0.2"


def stack() -> tuple[Stack, list[dict]]:
    ev: list[dict] = []
    return Stack(Config(), rng=random.Random(3), tracer=ev.append), ev


def test_bind_port_zero_gives_an_ephemeral_port_and_collisions_are_eaddrinuse() -> None:
    st, _ = stack()
    a = st.udp.bind(A, 0)
    cfg = st.config
    assert cfg.ephemeral_low <= a.port <= cfg.ephemeral_high
    with pytest.raises(OSError) as ei:
        st.udp.bind("0.0.0.0", a.port)
    assert ei.value.errno == errno.EADDRINUSE
    # SO_REUSEADDR on both: the port is shared (Linux)
    r1 = st.udp.bind(A, 5000, reuse=True)
    r2 = st.udp.bind(A, 5000, reuse=True)
    assert r1.port == r2.port == 5000
    # UDP ports are not TCP's: a TCP binding of the same number does not collide
    st.bind(A, 6000)
    assert st.udp.bind(A, 6000).port == 6000


def test_send_and_receive_with_source_and_trace_rfc768() -> None:
    st, ev = stack()
    ep = st.udp.bind("0.0.0.0", 7000)
    n = st.udp.send(ep, b"ping", (B, 53), A, now=5)
    assert n == 4
    assert st.take_packets() == [Datagram(A, B, 7000, 53, b"ping")]
    assert {"ev": "udp", "dir": "out", "src": A, "dst": B, "sport": 7000, "dport": 53,
            "len": 4, "t": 5}.items() <= ev[-1].items()
    st.on_datagram(Datagram(B, A, 53, 7000, b"pong"), 6)
    assert ep.recv(peek=True) == (b"pong", (B, 53))
    assert ep.recv() == (b"pong", (B, 53))
    assert ep.recv() is None
    assert st.counters["udp_in"] == st.counters["udp_out"] == 1


def test_connected_endpoint_filters_other_sources_and_needs_no_address() -> None:
    st, _ = stack()
    ep = st.udp.bind("0.0.0.0", 7000)
    with pytest.raises(OSError) as ei:
        st.udp.send(ep, b"x", None, A, 0)
    assert ei.value.errno == errno.EDESTADDRREQ
    st.udp.connect(ep, B, 53, local=A)
    assert ep.local == (A, 7000)
    st.udp.send(ep, b"x", None, None, 0)
    assert st.take_packets() == [Datagram(A, B, 7000, 53, b"x")]
    st.on_datagram(Datagram("10.0.0.9", A, 53, 7000, b"stranger"), 1)
    st.on_datagram(Datagram(B, A, 53, 7000, b"peer"), 2)
    assert [p for p, _ in ep.queue] == [b"peer"]
    # the stranger's datagram met no socket: port unreachable (RFC 1122 4.1.3.1)
    out = st.take_packets()
    assert len(out) == 1 and isinstance(out[0], IcmpError) and out[0].kind == "port-unreachable"
    st.udp.disconnect(ep)
    st.on_datagram(Datagram("10.0.0.9", A, 53, 7000, b"anyone"), 3)
    assert [p for p, _ in ep.queue] == [b"peer", b"anyone"]


def test_receive_queue_is_bounded_by_rcvbuf_and_drops_are_counted() -> None:
    st, ev = stack()
    ep = st.udp.bind(A, 7000, rcvbuf=1000)
    for i in range(5):
        st.on_datagram(Datagram(B, A, 1, 7000, bytes([i]) * 400), i)
    assert [p[0] for p, _ in ep.queue] == [0, 1]       # 800 bytes; a third would pass 1000
    assert ep.queued == 800 <= ep.rcvbuf
    assert ep.dropped == 3 == st.counters["udp_dropped_rcvbuf"]
    assert [e["reason"] for e in ev if e["ev"] == "drop"] == ["udp-rcvbuf-full"] * 3
    ep.recv()
    st.on_datagram(Datagram(B, A, 1, 7000, b"z" * 400), 9)
    assert len(ep.queue) == 2
    # an empty queue takes one datagram even beyond rcvbuf (as Linux)
    big = st.udp.bind(A, 7001, rcvbuf=100)
    st.on_datagram(Datagram(B, A, 1, 7001, b"y" * 500), 10)
    assert len(big.queue) == 1


def test_emsgsize_beyond_the_mtu_no_fragmentation() -> None:
    st, _ = stack()
    st.udp.mtu = 1500
    ep4 = st.udp.bind(A, 1)
    ep6 = st.udp.bind("fd00::1", 1)
    st.udp.send(ep4, b"x" * 1472, (B, 9), None, 0)          # 1500 - 20 - 8
    st.udp.send(ep6, b"x" * 1452, ("fd00::2", 9), None, 0)   # 1500 - 40 - 8
    for ep, n, dst in ((ep4, 1473, B), (ep6, 1453, "fd00::2")):
        with pytest.raises(OSError) as ei:
            st.udp.send(ep, b"x" * n, (dst, 9), None, 0)
        assert ei.value.errno == errno.EMSGSIZE


def test_port_unreachable_is_rate_limited_by_a_token_bucket() -> None:
    """RFC 1122 3.2.2.0 / RFC 1812 4.3.2.8: ICMP errors may be rate limited; rawtcp: a burst
    of 50, then one per second."""
    st, _ = stack()
    for i in range(60):
        st.on_datagram(Datagram(B, A, 1000, 9, b"?"), i)
    assert len(st.take_packets()) == 50
    assert st.counters["icmp_ratelimited"] == 10
    assert st.counters["udp_no_port"] == 60
    st.on_datagram(Datagram(B, A, 1000, 9, b"?"), SEC + 60)
    st.on_datagram(Datagram(B, A, 1000, 9, b"?"), SEC + 61)
    assert len(st.take_packets()) == 1
    # no ICMP error for a broadcast destination (RFC 1122 3.2.2)
    st.on_datagram(Datagram(B, "255.255.255.255", 1000, 9, b"?"), 10 * SEC)
    assert st.take_packets() == []


def _unreach(d: Datagram, type_: int = 3, code: int = 3) -> IcmpError:
    """The error a peer sends about our datagram ``d``."""
    return IcmpError(d.dst, d.src, type_, code, 17, d.src, d.dst, d.sport, d.dport)


def test_port_unreachable_on_a_connected_endpoint_is_its_next_error() -> None:
    """As Linux without IP_RECVERR: only connected sockets hear of hard errors."""
    st, _ = stack()
    free = st.udp.bind(A, 7001)
    st.udp.send(free, b"x", (B, 9), None, 0)
    st.on_icmp(_unreach(st.take_packets()[0]), 1)
    assert free.error is None and st.counters["icmp_ignored"] == 1
    ep = st.udp.bind(A, 7000)
    st.udp.connect(ep, B, 9)
    st.udp.send(ep, b"x", None, None, 0)
    st.on_icmp(_unreach(st.take_packets()[0]), 1)
    assert ep.readable and ep.error == errno.ECONNREFUSED
    with pytest.raises(OSError) as ei:
        st.udp.send(ep, b"again", None, None, 2)
    assert ei.value.errno == errno.ECONNREFUSED
    assert ep.error is None
    st.udp.send(ep, b"again", None, None, 3)               # reported once
    # a soft error (host unreachable) is not reported on UDP
    st.on_icmp(_unreach(st.take_packets()[0], code=1), 4)
    assert ep.error is None


def test_icmp_port_unreachable_aborts_syn_sent_rfc1122_4_2_3_9() -> None:
    h = Harness()
    h.connect()
    h.take()
    tcb = h.tcb
    e = IcmpError(PEER, US, 3, 3, 6, US, PEER, LPORT, RPORT, ISS)
    h.stack.on_icmp(e, 10 * MS)
    assert tcb.state is State.CLOSED and tcb.error == errno.ECONNREFUSED
    assert h.stack.counters["icmp_tcp_aborted"] == 1


def test_icmp_with_a_sequence_number_we_did_not_send_is_ignored_rfc5927_4_1() -> None:
    h = Harness()
    h.connect()
    h.take()
    e = IcmpError(PEER, US, 3, 3, 6, US, PEER, LPORT, RPORT, (ISS + 1000) & 0xFFFFFFFF)
    h.stack.on_icmp(e, 10 * MS)
    assert h.tcb.state is State.SYN_SENT
    assert h.stack.counters["icmp_bad_seq"] == 1


def test_icmp_is_soft_in_established_and_reported_on_timeout_rfc5927_4_2() -> None:
    """RFC 1122 4.2.3.9: port unreachable in a synchronized state does not abort; Linux
    reports the soft error instead of ETIMEDOUT when the retransmissions give up."""
    h = Harness()
    h.passive_open()
    t = h.tcb
    t.send(b"data", h.now)
    h.take()
    e = IcmpError(PEER, US, 3, 1, 6, US, PEER, LPORT, RPORT, t.snd_una & 0xFFFFFFFF)
    h.stack.on_icmp(e, h.now)
    assert t.state is State.ESTABLISHED and t.error is None
    assert h.stack.counters["icmp_tcp_soft"] == 1
    h.take(at=h.now + 3600 * SEC)                    # every retransmission unanswered
    assert t.state is State.CLOSED
    assert t.error == errno.EHOSTUNREACH


def test_timeout_without_icmp_is_still_etimedout() -> None:
    h = Harness()
    h.passive_open()
    t = h.tcb
    t.send(b"data", h.now)
    h.take(at=h.now + 3600 * SEC)
    assert t.error == errno.ETIMEDOUT
