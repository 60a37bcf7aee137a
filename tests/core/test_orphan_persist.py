"""An orphaned connection facing a zero window gives up after ``Config.orphan_retries`` probes.

RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: a sender probing a zero window keeps the connection
open as long as the receiver keeps answering, but an implementation may close connections
that no user owns any more. Linux does so with net.ipv4.tcp_orphan_retries (tcp_probe_timer):
once the orphan's probes pass the limit, RST and ETIMEDOUT. rawtcp counts the persist
expiries since the window was last open; the expiry after ``orphan_retries`` probes aborts.

The harness's RTO is 200 ms (rto_min), so the persist gaps are 200 ms doubling, capped at
persist_max (60 s).
"""

from __future__ import annotations

import errno

import pytest
from core_harness import ISS, MSS, RTO, Harness, from_peer, plain_config, to_peer

from rawtcp.core.config import MS, SEC
from rawtcp.core.tcb import State

CLOSE_AT = 30 * MS
RTT_PEER = 10 * MS  # the peer answers a probe after this long
# Gaps between persist expiries with RTO = 200 ms: doubling, then capped at 60 s.
GAPS = [200 * MS, 400 * MS, 800 * MS, 1600 * MS, 3200 * MS, 6400 * MS, 12800 * MS,
        25600 * MS, 51200 * MS, 60 * SEC, 60 * SEC, 60 * SEC]


def expiries(start: int, n: int) -> list[int]:
    """Times of the first n persist expiries after the persist timer was armed at start."""
    out, t = [], start
    for g in GAPS[:n]:
        t += g
        out.append(t)
    return out


def rst(seq: int) -> object:
    return to_peer(seq=seq, flags="RA", win=0)


def last_events(h: Harness) -> list[tuple]:
    """The error and state events of the connection's end, as (ev, detail)."""
    ends = [e for e in h.events if e["ev"] == "error"
            or (e["ev"] == "state" and e["new"] == "CLOSED")]
    return [(e["ev"], e.get("message") or (e["old"], e["reason"])) for e in ends]


def zero_window_then(h: Harness, data: bytes) -> None:
    """The peer closes its window at 20 ms; the user queues data and closes at CLOSE_AT
    (which arms the persist timer)."""
    h.send(from_peer(win=0), at=20 * MS)
    if data:
        assert h.tcb.send(data, CLOSE_AT) == len(data)
    h.tcb.close(CLOSE_AT)
    assert h.tcb.state is State.FIN_WAIT_1 and h.tcb.orphan
    h.recv_nothing(at=CLOSE_AT)


@pytest.mark.parametrize("data", [b"", b"queued"], ids=["bare-fin", "data-and-fin"])
def test_orphan_aborts_after_orphan_retries_probes(est: Harness, data: bytes) -> None:
    """RFC 1122 4.2.2.17 / RFC 9293 3.8.6.1 (Linux tcp_orphan_retries = 8): the orphan's FIN
    (alone, or after data) waits behind the zero window; it sends exactly 8 probes (SND.UNA-1)
    at the doubling persist times, although the peer answers each one with a zero window,
    and at the 9th expiry it sends RST (seq SND.UNA) and ends CLOSED with ETIMEDOUT."""
    h = est
    assert h.stack.config.orphan_retries == 8  # the default
    zero_window_then(h, data)
    times = expiries(CLOSE_AT, 9)
    assert times[7] == CLOSE_AT + 51 * SEC and times[8] == CLOSE_AT + 102200 * MS
    for t in times[:8]:
        h.recv_nothing(at=t - 1)
        h.recv([to_peer(seq=ISS)], at=t)
        h.send(from_peer(win=0), at=t + RTT_PEER)   # the receiver answers: still zero
        h.recv_nothing()
    assert h.tcb.info()["probes"] == 8
    h.recv_nothing(at=times[8] - 1)
    assert h.tcb.state is State.FIN_WAIT_1
    h.recv([rst(ISS + 1)], at=times[8])
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ETIMEDOUT
    assert last_events(h) == [("error", "ETIMEDOUT: orphan-persist-limit"),
                              ("state", ("FIN_WAIT_1", "orphan-persist-limit"))]
    assert h.stack.poll_at() is None
    h.recv_nothing(at=times[8] + 10 * 60 * SEC)


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_orphan_retries_is_the_exact_probe_count(retries: int) -> None:
    """RFC 1122 4.2.2.17 (orphans may be closed): Config.orphan_retries = n gives n probes,
    then RST at the next persist expiry; n = 0 means no probe at all."""
    h = Harness(plain_config(orphan_retries=retries))
    h.passive_open()
    zero_window_then(h, b"")
    times = expiries(CLOSE_AT, retries + 1)
    for t in times[:-1]:
        h.recv_nothing(at=t - 1)
        h.recv([to_peer(seq=ISS)], at=t)
    h.recv_nothing(at=times[-1] - 1)
    assert h.tcb.state is State.FIN_WAIT_1
    h.recv([rst(ISS + 1)], at=times[-1])
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ETIMEDOUT


def test_orphan_whose_fin_was_sent_before_the_window_closed(fin_wait_1: Harness) -> None:
    """RFC 9293 3.8.6.1, 3.10.7.4 (a zero-window receiver accepts only SEQ = RCV.NXT): the
    FIN went out, the peer closed its window without acknowledging it. The RTO does not
    resend the FIN into the zero window; the persist timer probes (its base is the backed-off
    RTO, 400 ms), and the orphan's RST carries SND.UNA, not the FIN's SND.MAX."""
    h = fin_wait_1                                   # FIN sent at 20 ms
    h.send(from_peer(win=0), at=25 * MS)                     # acknowledges nothing, window zero
    h.recv_nothing(at=20 * MS + RTO)                 # RTO: no FIN into a zero window
    assert h.tcb.info()["rto"] == 2 * RTO
    start = 20 * MS + RTO
    gaps = [400 * MS << k for k in range(8)]         # 400 ms .. 51.2 s
    gaps.append(60 * SEC)                            # capped at persist_max
    t = start
    for g in gaps[:8]:
        t += g
        h.recv_nothing(at=t - 1)
        h.recv([to_peer(seq=ISS)], at=t)
    t += gaps[8]
    h.recv_nothing(at=t - 1)
    h.recv([rst(ISS + 1)], at=t)
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ETIMEDOUT


def test_non_orphan_keeps_probing(est: Harness) -> None:
    """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: a connection its user still owns (FIN queued
    by shutdown(SHUT_WR), not close()) keeps probing past orphan_retries, as long as the
    receiver answers; the FIN goes out when the window opens."""
    h = est
    h.send(from_peer(win=0), at=20 * MS)
    h.tcb.shutdown(1, CLOSE_AT)
    assert h.tcb.state is State.FIN_WAIT_1 and not h.tcb.orphan
    times = expiries(CLOSE_AT, 12)
    for t in times:
        h.recv_nothing(at=t - 1)
        h.recv([to_peer(seq=ISS)], at=t)
        h.send(from_peer(win=0), at=t + RTT_PEER)
        h.recv_nothing()
    assert h.tcb.info()["probes"] == 12 and h.tcb.error is None
    assert h.tcb.state is State.FIN_WAIT_1
    h.send(from_peer(win=1000), at=times[-1] + SEC)
    h.recv([to_peer(flags="FA")])
    h.send(from_peer(ack=ISS + 2), at=times[-1] + SEC + RTT_PEER)
    assert h.tcb.state is State.FIN_WAIT_2


def test_window_update_resets_the_orphan_probe_count(est: Harness) -> None:
    """RFC 9293 3.8.6.1: the count is of probes since the window was last open. An orphan
    probes 5 times, the peer opens its window for one segment and closes it again; the
    orphan then sends 8 more probes (13 > orphan_retries in all) before its RST."""
    h = est
    data = bytes(range(256)) * 12                   # 3072 bytes: more than one segment
    zero_window_then(h, data)
    times = expiries(CLOSE_AT, 5)
    for t in times:
        h.recv_nothing(at=t - 1)
        h.recv([to_peer(seq=ISS)], at=t)
    assert h.tcb.info()["probes"] == 5
    t_open = times[-1] + 1 * SEC
    h.send(from_peer(win=MSS), at=t_open)                   # window update: one full segment
    h.recv([to_peer(payload=data[:MSS])])
    assert h.tcb.info()["probes"] == 0
    t_ack = t_open + RTT_PEER
    h.send(from_peer(ack=ISS + 1 + MSS, win=0), at=t_ack)   # acked, and the window closes again
    h.recv_nothing()
    assert h.tcb.info()["rto"] == RTO               # persist base unchanged: 200 ms
    times = expiries(t_ack, 9)
    for t in times[:8]:
        h.recv_nothing(at=t - 1)
        h.recv([to_peer(seq=ISS + MSS)], at=t)
    h.recv_nothing(at=times[8] - 1)
    assert h.tcb.state is State.FIN_WAIT_1
    h.recv([rst(ISS + 1 + MSS)], at=times[8])
    assert h.tcb.state is State.CLOSED and h.tcb.error == errno.ETIMEDOUT
