"""The stack: RST for segments that meet no connection (RFC 9293 3.10.7.1), listeners with
SYN and accept queues bounded by the backlog, bind conflicts and ephemeral ports, ISNs
(RFC 6528), trace events (docs/contracts.md)."""

from __future__ import annotations

import errno
import random

import pytest
from core_harness import (
    ISS,
    LPORT,
    MSS,
    PEER,
    PISS,
    RCVBUF,
    RTO,
    RTT,
    US,
    Harness,
    from_peer,
    plain_config,
    to_peer,
)

from rawtcp.core.config import MS, SEC
from rawtcp.core.isn import IsnGenerator
from rawtcp.core.segment import Options
from rawtcp.core.stack import Stack
from rawtcp.core.tcb import State


# ------------------------------------------------------------------ CLOSED port
def test_syn_to_closed_port_gets_rst_ack(h: Harness) -> None:
    """RFC 9293 3.10.7.1: no ACK bit -> <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>."""
    h.send(from_peer(seq=PISS, ack=0, flags="S"), at=0)
    h.recv([to_peer(seq=0, ack=PISS + 1, flags="RA", win=0)])
    assert h.stack.counters["dropped_no_listener"] == 1
    assert h.stack.counters["rst_sent"] == 1


def test_ack_to_closed_port_gets_rst(h: Harness) -> None:
    """RFC 9293 3.10.7.1: ACK bit on -> <SEQ=SEG.ACK><CTL=RST>."""
    h.send(from_peer(seq=PISS, ack=777, flags="PA", payload=b"abc"), at=0)
    h.recv([to_peer(seq=777, ack=0, flags="R", win=0)])


def test_data_with_fin_to_closed_port_ack_covers_fin(h: Harness) -> None:
    """RFC 9293 3.10.7.1: SEG.LEN counts SYN and FIN."""
    h.send(from_peer(seq=PISS, ack=0, flags="F", payload=b"12345"), at=0)
    h.recv([to_peer(seq=0, ack=PISS + 6, flags="RA", win=0)])


# ------------------------------------------------------------------ LISTEN
def test_listener_rst_for_ack(h: Harness) -> None:
    """RFC 9293 3.10.7.2 second: an ACK in LISTEN -> <SEQ=SEG.ACK><CTL=RST>."""
    h.listen()
    h.send(from_peer(ack=4242), at=0)
    h.recv([to_peer(seq=4242, ack=0, flags="R", win=0)])


def _syn(port: int):
    return from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS), sport=port)


def _synack(port: int):
    return to_peer(seq=ISS, flags="SA", win=RCVBUF, opts=Options(mss=MSS), dport=port)


def test_backlog_bounds_syn_queue_and_accept_queue() -> None:
    """Listen backlog (RFC 9293 3.10.1, Linux behaviour with tcp_syncookies=0): SYNs beyond
    the backlog are dropped (the client retries), also while the accept queue is full; once
    the user accepts, a SYN is answered again."""
    h = Harness(plain_config(syncookies=0))
    h.listen(backlog=1)
    h.send(_syn(1001), at=0)
    h.recv([_synack(1001)])
    h.send(_syn(1002), at=1)                  # SYN queue full
    h.recv_nothing()
    assert h.stack.counters["dropped_backlog"] == 1
    h.send(from_peer(sport=1001), at=RTT)             # 1001 established -> accept queue
    assert h.listener.pending == 1
    h.send(_syn(1003), at=RTT + 1)            # accept queue full
    h.recv_nothing()
    assert h.stack.counters["dropped_backlog"] == 2
    a = h.listener.accept()
    assert a is not None and a.remote == (PEER, 1001) and a.state is State.ESTABLISHED
    assert h.listener.accept() is None
    h.send(_syn(1003), at=RTT + 2)
    h.recv([_synack(1003)])


def test_full_accept_queue_drops_final_ack(h: Harness) -> None:
    """Linux, instead of RFC 9293 3.10.7.4 fifth (the ACK of our SYN enters ESTABLISHED):
    when the accept queue is full the handshake-completing ACK is dropped; the child stays
    in SYN_RECEIVED and the SYN-ACK is retransmitted later (RFC 6298 5.4)."""
    h.listen(backlog=1)
    h.send(_syn(1001), at=0)
    h.send(from_peer(sport=1001), at=RTT)
    h.take()
    h.listener.backlog = 2
    h.send(_syn(1002), at=RTT + 1)
    h.recv([_synack(1002)])
    h.listener.backlog = 1
    h.send(from_peer(sport=1002), at=RTT + 2)
    assert h.stack.lookup(US, LPORT, PEER, 1002).state is State.SYN_RECEIVED
    assert h.stack.counters["dropped_accept_queue_full"] == 1
    h.recv_nothing(at=RTT + 1 + SEC - 1)
    h.recv([_synack(1002)], at=RTT + 1 + SEC)   # the SYN-ACK's first retransmission (1 s)


def test_listener_close_resets_unaccepted(h: Harness) -> None:
    """Closing a listener aborts connections never accepted (RST, RFC 9293 3.10.5)."""
    h.listen()
    h.send(_syn(1001), at=0)
    h.send(from_peer(sport=1001), at=RTT)
    h.take()
    h.listener.close(RTT + 1)
    h.recv([to_peer(flags="RA", win=0, dport=1001)])
    assert h.stack.connections() == []
    h.send(_syn(1005), at=RTT + 2)
    h.recv([to_peer(seq=0, ack=PISS + 1, flags="RA", win=0, dport=1005)])


# ------------------------------------------------------------------ bind
def test_bind_conflict_is_eaddrinuse() -> None:
    """RFC 9293 3.1 (ports identify connections) / bind(2): EADDRINUSE for the same port
    on the same or the wildcard address."""
    st = Stack(rng=random.Random(1))
    st.bind("10.0.0.1", 80)
    for addr in ("10.0.0.1", "0.0.0.0"):
        with pytest.raises(OSError) as ei:
            st.bind(addr, 80)
        assert ei.value.errno == errno.EADDRINUSE
    st.bind("10.0.0.2", 80)          # another address is fine
    st.bind("::", 80)                # another family is fine


def test_bind_reuse_both_sides() -> None:
    """RFC 9293 3.1 / SO_REUSEADDR (Linux): both bindings reuse and none listens -> shared."""
    st = Stack(rng=random.Random(1))
    b = st.bind("10.0.0.1", 80, reuse=True)
    st.bind("10.0.0.1", 80, reuse=True)
    st.listen(b, 4)
    with pytest.raises(OSError) as ei:
        st.bind("10.0.0.1", 80, reuse=True)
    assert ei.value.errno == errno.EADDRINUSE


def test_bind_after_release_succeeds() -> None:
    """RFC 9293 3.1: a released local port can be bound again."""
    st = Stack(rng=random.Random(1))
    b = st.bind("10.0.0.1", 80)
    b.release()
    st.bind("10.0.0.1", 80)


def test_time_wait_blocks_bind_unless_reuse(time_wait: Harness) -> None:
    """RFC 9293 3.3.2 (TIME-WAIT keeps the connection for 2 MSL): a TIME_WAIT connection
    holds its port: bind -> EADDRINUSE unless SO_REUSEADDR (Linux inet_csk_bind_conflict)."""
    h = time_wait
    h.listener.close(50 * MS)
    with pytest.raises(OSError) as ei:
        h.stack.bind(US, LPORT)
    assert ei.value.errno == errno.EADDRINUSE
    assert "TIME_WAIT" in str(ei.value)
    h.stack.bind(US, LPORT, reuse=True).release()
    h.take(at=61 * SEC)
    assert h.tcb.state is State.CLOSED
    h.stack.bind(US, LPORT)


def test_ephemeral_ports_run_out_eaddrnotavail() -> None:
    """RFC 6056 3.2-3.3 (ephemeral port range and selection) / connect(2): EADDRNOTAVAIL
    when every ephemeral port is taken."""
    st = Stack(plain_config(ephemeral_low=40000, ephemeral_high=40001), rng=random.Random(1))
    a = st.connect(None, US, PEER, 80, 0)
    b = st.connect(None, US, PEER, 80, 0)
    assert {a.local[1], b.local[1]} == {40000, 40001}
    with pytest.raises(OSError) as ei:
        st.connect(None, US, PEER, 80, 0)
    assert ei.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(OSError) as ei:
        st.bind(US, 0)
    assert ei.value.errno == errno.EADDRNOTAVAIL


def test_connect_duplicate_four_tuple() -> None:
    """RFC 9293 3.1: a 4-tuple names one connection; a second connect on it -> EADDRINUSE."""
    st = Stack(rng=random.Random(1))
    b = st.bind(US, 5555)
    st.connect(b, US, PEER, 80, 0)
    with pytest.raises(OSError) as ei:
        st.connect(b, US, PEER, 80, 0)
    assert ei.value.errno == errno.EADDRINUSE


def test_api_misuse_raises_oserror() -> None:
    """RFC 9293 3.9.1 user interface errors: misuse raises OSError with an errno."""
    st = Stack(rng=random.Random(1))
    with pytest.raises(OSError) as ei:
        st.bind("not-an-ip", 80)
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        st.connect(None, "0.0.0.0", PEER, 80, 0)


def test_closed_connection_releases_ephemeral_port() -> None:
    """RFC 6056 2.3 (a port is taken only while a connection uses it): the ephemeral port
    of a CLOSED connection is free again."""
    st = Stack(plain_config(ephemeral_low=40000, ephemeral_high=40000), rng=random.Random(1))
    a = st.connect(None, US, PEER, 80, 0)
    a.abort(1)
    b = st.connect(None, US, PEER, 80, 2)
    assert b.local[1] == 40000


# ------------------------------------------------------------------ ISN
def test_isn_rfc6528_keyed_and_clocked() -> None:
    """RFC 6528 3: ISN = M + F(4-tuple, secret); M ticks every 4 us."""
    g = IsnGenerator(random.Random(1))
    a = g("10.0.0.1", 1, "10.0.0.2", 2, 0)
    assert g("10.0.0.1", 1, "10.0.0.2", 2, 400) == (a + 100) % (1 << 32)
    assert g("10.0.0.1", 1, "10.0.0.2", 3, 0) != a
    assert IsnGenerator(random.Random(2))("10.0.0.1", 1, "10.0.0.2", 2, 0) != a
    assert IsnGenerator(random.Random(1))("10.0.0.1", 1, "10.0.0.2", 2, 0) == a


# ------------------------------------------------------------------ tracing
def test_trace_events_follow_contract(est: Harness) -> None:
    """docs/contracts.md trace events: seg (relative seq/ack), state, timer, rto."""
    h = est
    h.tcb.send(b"hi", 20 * MS)
    h.take(at=20 * MS + 200 * MS)
    kinds = {e["ev"] for e in h.events}
    assert {"seg", "state", "timer", "rto", "retransmit"} <= kinds
    for e in h.events:
        assert isinstance(e["t"], int) and "ev" in e
    segs = [e for e in h.events if e["ev"] == "seg"]
    first_out = next(e for e in segs if e["dir"] == "out")
    assert first_out["flags"] == "SA" and first_out["rseq"] == 0 and first_out["rack"] == 1
    data_out = [e for e in segs if e["dir"] == "out" and e["len"] == 2]
    assert data_out[0]["rseq"] == 1 and data_out[0]["conn"] == "10.0.0.1:80>10.0.0.2:49152"
    assert set(data_out[0]) >= {"src", "dst", "sport", "dport", "seq", "ack", "rseq", "rack",
                                "flags", "win", "len", "opts", "state", "dir", "conn"}
    st = [e for e in h.events if e["ev"] == "state"]
    assert all(set(e) >= {"old", "new", "reason"} for e in st)
    timers = [e for e in h.events if e["ev"] == "timer"]
    assert {e["action"] for e in timers} >= {"set", "fired", "cancel"}
    assert all(e["name"] in ("rtx", "persist", "delack", "keepalive", "time_wait",
                             "fin_wait_2") for e in timers)


def test_stack_without_a_tracer_works_and_emits_nothing() -> None:
    """RFC 9293 3.10 processing with the tracer switched off (Stack.tracer = None): the
    handshake, data, a delayed ACK and a retransmission work, and no component kept the
    old tracer (it never receives an event)."""
    h = Harness()
    h.stack.tracer = None
    h.passive_open()
    h.send(from_peer(flags="PA", payload=b"abc"), at=20 * MS)
    h.recv([to_peer(ack=PISS + 4, win=RCVBUF - 3)], at=20 * MS + 40 * MS)   # delayed ACK
    h.tcb.send(b"hi", 100 * MS)
    h.recv([to_peer(ack=PISS + 4, flags="PA", payload=b"hi", win=RCVBUF - 3)])
    h.recv([to_peer(ack=PISS + 4, flags="PA", payload=b"hi", win=RCVBUF - 3)],
           at=100 * MS + RTO)
    assert h.events == []


def test_trace_every_required_event_kind(est: Harness) -> None:
    """docs/contracts.md (issue 2): state change, timer set + fired, RTO change,
    retransmission and dropped segment each produce an event with the contract's fields."""
    h = est
    h.tcb.send(b"hi", 20 * MS)
    h.take(at=20 * MS + 200 * MS)                       # RTO fires, data retransmitted
    h.send(from_peer(seq=PISS + 1 + 10 * RCVBUF, payload=b"far"), at=300 * MS)   # unacceptable
    h.take()
    ev = h.events
    conn = "10.0.0.1:80>10.0.0.2:49152"
    states = [e for e in ev if e["ev"] == "state" and e.get("conn") == conn]
    assert ("SYN_RECEIVED", "ESTABLISHED") in [(e["old"], e["new"]) for e in states]
    rtx = [e for e in ev if e["ev"] == "timer" and e["name"] == "rtx"]
    assert {"set", "fired"} <= {e["action"] for e in rtx}
    fired = next(e for e in rtx if e["action"] == "fired")
    assert fired["at"] == 220 * MS and fired["t"] == 220 * MS and fired["conn"] == conn
    rto = [e for e in ev if e["ev"] == "rto"]
    assert rto[-1]["rto"] == 400 * MS and {"srtt", "rttvar"} <= set(rto[-1])
    re = [e for e in ev if e["ev"] == "retransmit"]
    assert len(re) == 1 and re[0]["rseq"] == 1 and re[0]["len"] == 2 and re[0]["count"] == 1
    drops = [e for e in ev if e["ev"] == "drop"]
    assert drops and drops[-1]["reason"] == "unacceptable" and drops[-1]["dir"] == "in"
    assert drops[-1]["conn"] == conn and drops[-1]["len"] == 3
    assert drops[-1]["rseq"] == 10 * RCVBUF + 1


def test_trace_drop_for_segment_without_connection(h: Harness) -> None:
    """RFC 9293 3.10.7.1 + docs/contracts.md: a segment for a closed port is traced as a
    drop (reason no-listener, no conn) followed by the RST we send."""
    h.send(from_peer(seq=PISS, ack=0, flags="S"), at=0)
    kinds = [(e["ev"], e.get("dir"), e.get("reason")) for e in h.events]
    assert kinds == [("seg", "in", None), ("drop", "in", "no-listener"), ("seg", "out", None)]
    assert "conn" not in h.events[1] and h.events[2]["flags"] == "RA"


def test_isn_generator_is_injected_and_called_with_the_four_tuple() -> None:
    """RFC 9293 3.4.1 / RFC 6528 3: the ISN comes from the injected generator, called with
    (local addr, local port, remote addr, remote port, now) for active and passive opens;
    without one the Stack uses the RFC 6528 keyed hash plus the 4 us clock."""
    calls: list[tuple] = []

    def isn(*a):
        calls.append(a)
        return 0xFFFFFFF0 + len(calls)   # near the wrap: numbers must stay 32-bit

    h = Harness(plain_config(), isn=isn)
    h.recv_nothing(at=1234)
    t = h.stack.connect(h.stack.bind(US, 4000), US, PEER, 80, h.now)
    h.recv([to_peer(seq=0xFFFFFFF1, ack=0, flags="S", sport=4000, dport=80,
                    opts=Options(mss=MSS))])
    assert calls == [(US, 4000, PEER, 80, 1234)] and t.iss == 0xFFFFFFF1
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", sport=999), at=5678)
    h.recv([to_peer(seq=0xFFFFFFF2, ack=PISS + 1, flags="SA", dport=999,
                    opts=Options(mss=MSS))])
    assert calls[1] == (US, LPORT, PEER, 999, 5678)
    d = Stack(plain_config(), rng=random.Random(1))
    a = d.connect(d.bind(US, 4000), US, PEER, 80, 0)
    b = d.connect(d.bind(US, 4001), US, PEER, 80, 0)
    c = Stack(plain_config(), rng=random.Random(1))
    c2 = c.connect(c.bind(US, 4000), US, PEER, 80, 4000)
    assert a.iss != b.iss and c2.iss == (a.iss + 1000) % (1 << 32)


@pytest.mark.parametrize("flags", ["SF", "SFPU"])
def test_listener_drops_syn_with_fin(h: Harness, flags: str) -> None:
    """RFC 9293 3.10.7.2 leaves SYN+FIN to a listener open; Linux discards it
    (tcp_rcv_state_process, LISTEN): no SYN-ACK, no half-open connection, counted."""
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags=flags, opts=Options(mss=MSS)), at=0)
    h.recv_nothing()
    assert h.stack.connections() == [] and h.listener.syn_queue == []
    assert h.stack.counters["dropped_syn_fin"] == 1
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=1 * MS)
    assert [s.flags for s in h.take()] == [0x12]              # a plain SYN still gets SYN-ACK
