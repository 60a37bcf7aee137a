"""Explicit Congestion Notification (RFC 3168), segment by segment: negotiation (6.1.1),
ECT(0) on new data (6.1.2, 6.1.5), CE answered with ECE until CWR (6.1.3), ECE answered
with one reduction per window and CWR (6.1.2). Config.ecn as Linux's tcp_ecn: 0 off,
1 ask and accept, 2 accept only (the default)."""

from __future__ import annotations

import pytest
from core_harness import ISS, MSS, PISS, RCVBUF, RTT, Harness, from_peer, plain_config, to_peer

from rawtcp.core.config import MS
from rawtcp.core.segment import CE, ECT0, Options

T = 20 * MS


def _passive(ecn: int, peer_flags: str = "SEC") -> Harness:
    h = Harness(plain_config(nodelay=True, ecn=ecn, congestion="reno"))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags=peer_flags, opts=Options(mss=MSS)), at=0)
    return h


@pytest.mark.parametrize("ecn, agreed", [(0, False), (1, True), (2, True)])
def test_ecn_setup_syn_is_accepted_unless_ecn_is_off(ecn: int, agreed: bool) -> None:
    """RFC 3168 6.1.1: a SYN with ECE and CWR asks; the SYN-ACK answers with ECE alone."""
    h = _passive(ecn)
    flags = "SAE" if agreed else "SA"
    h.recv([to_peer(seq=ISS, flags=flags, win=min(RCVBUF, 65535), opts=Options(mss=MSS))])
    h.send(from_peer(), at=RTT)
    t = h.listener.accept()
    assert t.info()["ecn"] is agreed and bool(t.info()["options"] & 8) is agreed


def test_a_syn_without_both_bits_is_no_ecn_setup() -> None:
    h = _passive(2, peer_flags="SE")
    h.recv([to_peer(seq=ISS, flags="SA", win=min(RCVBUF, 65535), opts=Options(mss=MSS))])


@pytest.mark.parametrize("ecn, asks", [(1, True), (2, False), (0, False)])
def test_outgoing_syn_asks_only_with_ecn_1(ecn: int, asks: bool) -> None:
    """Linux's tcp_ecn=2 (the default) never asks on outgoing connections; 1 does, and the
    retransmitted SYN no longer does (RFC 3168 6.1.1.1)."""
    h = Harness(plain_config(ecn=ecn))
    h.connect()
    syn = h.take()[0]
    assert bool(syn.flags & 0xC0 == 0xC0) is asks
    again = h.take(at=1_000_000)[0]               # rto_initial 1 s
    assert not again.flags & 0xC0
    if asks:
        h2 = Harness(plain_config(ecn=1))
        h2.connect()
        h2.take()
        h2.send(from_peer(seq=PISS, ack=ISS + 1, flags="SAE", opts=Options(mss=MSS)), at=RTT)
        assert h2.tcb.info()["ecn"]


def _ecn_established() -> Harness:
    h = _passive(2)
    h.take()
    h.send(from_peer(), at=RTT)
    h.tcb = h.listener.accept()
    return h


def test_new_data_is_ect0_pure_acks_and_retransmissions_are_not() -> None:
    """RFC 3168 6.1.2 / 6.1.5 (as Linux): data segments carry ECT(0); a retransmission
    and a pure ACK carry Not-ECT."""
    h = _ecn_established()
    h.tcb.send(bytes(MSS), T)
    [seg] = h.take(at=T)
    assert seg.ecn == ECT0
    [again] = h.take(at=T + h.tcb.rtt.rto)
    assert again.seq == seg.seq and again.ecn == 0
    h.send(from_peer(seq=PISS + 1, payload=b"x"), at=T + 500 * MS)
    acks = [s for s in h.take(at=T + 500 * MS + 200 * MS) if not s.payload]
    assert acks and all(a.ecn == 0 for a in acks)


def test_ce_is_echoed_until_cwr() -> None:
    """RFC 3168 6.1.3: after a CE-marked segment every ACK carries ECE (the first at once)
    until a segment with CWR arrives."""
    h = _ecn_established()
    h.send(from_peer(seq=PISS + 1, payload=b"a")._replace(ecn=CE), at=T)
    [ack] = h.take()
    assert ack.flags & 0x40 and ack.ack == PISS + 2
    h.send(from_peer(seq=PISS + 2, payload=b"b"), at=T + 1 * MS)
    h.send(from_peer(seq=PISS + 3, payload=b"c"), at=T + 2 * MS)
    got = h.take(at=T + 300 * MS)
    assert got and all(g.flags & 0x40 for g in got)
    h.send(from_peer(seq=PISS + 4, flags="AC", payload=b"d"), at=T + 301 * MS)
    got = h.take(at=T + 600 * MS)
    assert got and not any(g.flags & 0x40 for g in got)
    assert h.tcb.info()["delivered_ce"] == 1 and h.tcb.info()["ecn_seen"]


def test_ect_without_ce_is_seen_and_not_echoed() -> None:
    """RFC 3168 6.1.3 echoes only CE; an ECT(0) packet still counts as ECN seen, as Linux
    sets TCPI_OPT_ECN_SEEN for any ECT or CE arrival (tcp_ecn_check_ce)."""
    h = _ecn_established()
    assert not h.tcb.info()["ecn_seen"]
    h.send(from_peer(seq=PISS + 1, payload=b"a")._replace(ecn=ECT0), at=T)
    got = h.take(at=T + 300 * MS)
    assert got and not any(g.flags & 0x40 for g in got)
    assert h.tcb.info()["ecn_seen"] and h.tcb.info()["delivered_ce"] == 0


def test_ece_halves_cwnd_once_per_window_and_sends_cwr() -> None:
    """RFC 3168 6.1.2: ECE on an ACK reduces cwnd as a loss would (NewReno: half), once
    per window of data; the next new data segment carries CWR; the state is cwr."""
    h = _ecn_established()
    h.tcb.send(bytes(30 * MSS), T)
    assert len(h.take(at=T)) == 10
    h.send(from_peer(ack=ISS + 1 + MSS, flags="AE"), at=T + RTT)
    assert h.tcb.cc.cwnd == 5 * MSS and h.tcb.info()["ca"] == "cwr"
    h.send(from_peer(ack=ISS + 1 + 2 * MSS, flags="AE"), at=T + RTT + 100)
    assert h.tcb.cc.cwnd == 5 * MSS              # same window: no second reduction
    h.send(from_peer(ack=ISS + 1 + 7 * MSS), at=T + RTT + 200)    # room for new data
    got = h.take()
    assert len(got) >= 2 and got[0].seq == ISS + 1 + 10 * MSS
    assert got and got[0].flags & 0x80 and all(not g.flags & 0x80 for g in got[1:])


def test_ecn_off_ignores_ece_and_ce() -> None:
    h = _passive(0)
    h.take()
    h.send(from_peer(), at=RTT)
    h.tcb = h.listener.accept()
    h.tcb.send(bytes(3 * MSS), T)
    assert all(s.ecn == 0 for s in h.take(at=T))
    cwnd = h.tcb.cc.cwnd
    h.send(from_peer(ack=ISS + 1 + MSS, flags="AE"), at=T + RTT)
    assert h.tcb.cc.cwnd > cwnd
