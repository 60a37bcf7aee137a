"""SYN cookies (RFC 4987 3.6; Linux net.ipv4.tcp_syncookies): a listener whose SYN queue is
full answers every SYN with a cookie as its ISS and keeps no state; the third segment of
the handshake rebuilds the connection. Config.syncookies: 0 off, 1 when full, 2 always."""

from __future__ import annotations

import random

from core_harness import ISS, MSS, PEER, PISS, RTT, US, Harness, from_peer, plain_config

from rawtcp.core.config import MS, SEC
from rawtcp.core.segment import ACK, SYN, Options
from rawtcp.core.states import State
from rawtcp.core.syncookies import MAX_AGE, MSS_TABLE, PERIOD, SynCookies


def _syn(port: int, seq: int = PISS, opts: Options = Options(mss=MSS)):
    return from_peer(seq=seq, ack=0, flags="S", opts=opts, sport=port)


def _flood(h: Harness, n: int, at: int) -> list:
    """n SYNs from ports 20000.. (nobody answers our SYN-ACKs); the SYN-ACKs sent."""
    for i in range(n):
        h.send(_syn(20000 + i, seq=PISS + 1000 * i), at=at)
    return h.take()


def test_full_syn_queue_answers_with_cookies_and_keeps_no_state() -> None:
    """RFC 4987 3.6: with the SYN queue full (backlog 4), 1,000 more SYNs each get a SYN-ACK
    and the stack keeps nothing for them; a legitimate client then completes its handshake
    with the cookie, is accepted and exchanges data."""
    h = Harness(plain_config(), iss=ISS)
    h.listen(backlog=4)
    out = _flood(h, 1004, at=0)
    assert len(out) == 1004 and all(s.flags == SYN | ACK for s in out)
    assert len(h.listener.syn_queue) == 4 and len(h.stack.connections()) == 4
    assert h.stack.counters["syncookies_sent"] == 1000
    # the legitimate client
    h.send(_syn(40000, seq=777), at=1 * MS)
    (synack,) = h.take()
    assert synack.flags == SYN | ACK and synack.ack == 778 and synack.seq != ISS
    assert synack.options.mss == MSS
    h.send(from_peer(seq=778, ack=synack.seq + 1, sport=40000, flags="PA", payload=b"hi"),
           at=1 * MS + RTT)
    t = h.listener.accept()
    assert t is not None and t.remote == (PEER, 40000) and t.state is State.ESTABLISHED
    assert h.stack.counters["syncookies_recv"] == 1
    assert t.recv(10, 2 * MS) == b"hi"
    t.send(b"ok", 2 * MS)
    (seg,) = h.take()
    assert seg.payload == b"ok" and seg.seq == synack.seq + 1 and seg.ack == 780


def test_forged_or_stale_cookie_gets_rst() -> None:
    """A third segment whose ACK is not a valid cookie is an ACK to a listener: RST
    (RFC 9293 3.10.7.2); a cookie older than MAX_AGE periods is not valid any more."""
    h = Harness(plain_config(syncookies=2))
    h.listen(backlog=4)
    h.send(_syn(40000, seq=777), at=0)
    (synack,) = h.take()
    h.send(from_peer(seq=778, ack=synack.seq + 2, sport=40000), at=RTT)      # off by one
    (rst,) = h.take()
    assert rst.flags == 0x04 and h.stack.counters["syncookies_failed"] == 1
    late = (MAX_AGE + 1) * PERIOD + RTT
    h.send(from_peer(seq=778, ack=synack.seq + 1, sport=40000), at=late)     # too old
    assert h.take()[0].flags == 0x04 and h.stack.counters["syncookies_failed"] == 2
    assert h.stack.connections() == [] and h.listener.accept() is None


def test_syncookies_off_drops_the_syn_when_the_queue_is_full() -> None:
    h = Harness(plain_config(syncookies=0))
    h.listen(backlog=4)
    out = _flood(h, 10, at=0)
    assert len(out) == 4 and h.stack.counters["dropped_backlog"] == 6
    assert h.stack.counters["syncookies_sent"] == 0


def test_cookie_remembers_mss_and_with_timestamps_window_scale_and_sack() -> None:
    """RFC 4987 3.6: the cookie keeps the peer's MSS rounded down to a table entry; window
    scale and SACK-permitted come back in the TSecr of the third segment (RFC 7323)."""
    cfg = plain_config(syncookies=2, window_scaling=True, sack=True, timestamps=True,
                       rcvbuf=256 * 1024)
    h = Harness(cfg)
    h.listen(backlog=4)
    h.send(_syn(40000, seq=777, opts=Options(mss=1400, wscale=7, sack_permitted=True,
                                            timestamps=(5000, 0))), at=10 * SEC)
    (synack,) = h.take()
    o = synack.options
    assert o.wscale == 3 and o.sack_permitted and o.timestamps[1] == 5000   # 256 KB: 3
    assert o.timestamps[0] <= 10 * SEC // 1000                  # never ahead of our clock
    h.send(from_peer(seq=778, ack=synack.seq + 1, sport=40000,
                     opts=Options(timestamps=(5001, o.timestamps[0]))), at=10 * SEC + RTT)
    t = h.listener.accept()
    info = t.info()
    assert info["snd_wscale"] == 7 and info["rcv_wscale"] == 3 and info["sack"]
    assert info["timestamps"] and info["peer_mss"] == 1300 == max(m for m in MSS_TABLE
                                                                  if m <= 1400)


def test_cookie_without_timestamps_offers_neither_window_scale_nor_sack() -> None:
    """Without timestamps nothing can carry them back, so (as Linux) the cookie SYN-ACK
    offers neither and the connection runs without."""
    h = Harness(plain_config(syncookies=2, window_scaling=True, sack=True))
    h.listen(backlog=4)
    h.send(_syn(40000, seq=777, opts=Options(mss=MSS, wscale=7, sack_permitted=True)), at=0)
    (synack,) = h.take()
    assert synack.options.wscale is None and not synack.options.sack_permitted
    h.send(from_peer(seq=778, ack=synack.seq + 1, sport=40000), at=RTT)
    info = h.listener.accept().info()
    assert info["snd_wscale"] == 0 and not info["sack"] and info["peer_mss"] == 1460


def test_cookie_values() -> None:
    c = SynCookies(random.Random(1))
    four = (US, 80, PEER, 40000)
    cookie, mss = c.make(0, four, 1234, 1460)
    assert mss == 1460 and c.check(0, four, 1234, cookie) == 1460
    assert c.check(MAX_AGE * PERIOD, four, 1234, cookie) == 1460
    assert c.check((MAX_AGE + 1) * PERIOD, four, 1234, cookie) is None
    assert c.check(0, four, 1235, cookie) is None                       # another ISN
    assert c.check(0, (US, 80, PEER, 40001), 1234, cookie) is None      # another port
    assert c.make(0, four, 1234, 500)[1] == 536                         # the RFC minimum
