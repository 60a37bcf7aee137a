"""Receive-buffer autotuning (rawtcp/core/buftune.py), as Linux's dynamic right-sizing
(tcp_rcv_space_adjust, net.ipv4.tcp_moderate_rcvbuf; Fisk and Feng, "Dynamic Right-Sizing
in TCP"): once per receiver RTT the buffer becomes twice what the application read in that
RTT plus 16 segments, plus twice the growth, up to rmem_max; never when it was set by the
user or the switch is off; and the receiver's RTT comes from the echoed timestamps
(RFC 7323 4.3 gives the TSecr its meaning) or, without them, from the time one window takes.
"""

from __future__ import annotations

from core_harness import ISS, MSS, PISS, RTT, Harness, from_peer, plain_config, to_peer

from rawtcp.core.config import MS
from rawtcp.core.segment import Options
from rawtcp.core.tcb import State

SMALL = 16_000
CAP = 64_000          # below 65,535: the window field needs no scale in these tests
T = 20 * MS


def opened(**cfg) -> Harness:
    """A passive open (as Harness.passive_open) with a SMALL buffer that may grow to CAP."""
    h = Harness(plain_config(rcvbuf=SMALL, rmem_max=CAP, delayed_ack=0, **cfg))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS)), at=0)
    h.recv([to_peer(seq=ISS, flags="SA", win=SMALL, opts=Options(mss=MSS))])
    h.send(from_peer(), at=RTT)
    h.tcb = h.listener.accept()
    assert h.tcb.state is State.ESTABLISHED
    return h


def stream(h: Harness, rounds: int, at: int, read: int = 1 << 30) -> tuple[int, list[int]]:
    """Each RTT the peer fills the window it was offered, in MSS-sized segments; right after,
    the application reads up to ``read`` bytes. Returns the time after the last round and the
    bytes the peer could send in each round."""
    t = h.tcb
    sent = []
    for _ in range(rounds):
        win = t.rcv_adv - t.rcv_nxt
        sent.append(win)
        seq = t.rcv_nxt
        while win > 0:
            n = min(MSS, win)
            h.send(from_peer(seq=seq, payload=bytes(n)), at=at)
            seq += n
            win -= n
        h.take(at=at)
        t.recv(read, at + 1)
        at += RTT
    return at, sent


def test_the_buffer_grows_to_what_the_application_reads_per_rtt() -> None:
    """An application that reads everything at once makes each RTT's amount exceed the last
    one's (the first measure's base is 10 segments): the buffer grows, capped at rmem_max,
    and the window update after the read offers the new size at once."""
    h = opened()
    at, sent = stream(h, 3, T)
    assert sent == [SMALL, SMALL, SMALL]
    info = h.tcb.info()
    assert info["rcv_rtt"] == RTT                 # no timestamps: the time one window took
    assert info["rcvbuf"] == h.tcb.options.rcvbuf == CAP
    assert info["rcv_space"] == SMALL
    grown = [e for e in h.events if e["ev"] == "rcvbuf"]
    assert [(e["bytes"], e["copied"], e["rtt"]) for e in grown] == [(CAP, SMALL, RTT)]
    assert h.tcb.rcv_adv - h.tcb.rcv_nxt == CAP   # offered in the read's window update
    _, sent = stream(h, 2, at)
    assert sent == [CAP, CAP]                     # the peer may now send 4x as much per RTT
    assert h.tcb.options.rcvbuf == CAP            # and never beyond rmem_max


def test_the_window_update_after_the_growing_read_carries_the_new_window() -> None:
    h = opened()
    at, _ = stream(h, 2, T)                      # the measure starts at the second read
    t = h.tcb
    seq = t.rcv_nxt
    for i in range(0, SMALL, MSS):
        h.send(from_peer(seq=seq + i, payload=bytes(min(MSS, SMALL - i))), at=at)
    h.take(at=at)
    t.recv(1 << 30, at + 1)
    h.recv([to_peer(ack=seq + SMALL, win=CAP)], at=at + 1)


def test_no_growth_when_switched_off() -> None:
    """Config.moderate_rcvbuf = False (net.ipv4.tcp_moderate_rcvbuf = 0): a fixed buffer."""
    h = opened(moderate_rcvbuf=False)
    _, sent = stream(h, 6, T)
    assert sent == [SMALL] * 6 and h.tcb.options.rcvbuf == SMALL


def test_no_growth_when_the_user_set_the_buffer() -> None:
    """SO_RCVBUF locks the size, as Linux's SOCK_RCVBUF_LOCK (the socket layer sets
    rcvbuf_locked)."""
    h = opened()
    h.tcb.options.rcvbuf_locked = True
    _, sent = stream(h, 6, T)
    assert sent == [SMALL] * 6 and h.tcb.options.rcvbuf == SMALL


def test_a_slow_reader_does_not_grow_the_buffer() -> None:
    """Only what the application takes counts: a peer that fills the window cannot make the
    buffer grow while the application reads little (2,000 bytes per RTT)."""
    h = opened()
    stream(h, 8, T, read=2000)
    assert h.tcb.options.rcvbuf == SMALL


# ------------------------------------------------------------------ the receiver's RTT
TS_PEER = 777


def ts_open() -> Harness:
    """An active open with timestamps (our clock: 1 tick per ms, tcb_output._tsval)."""
    h = Harness(plain_config(timestamps=True, rcvbuf=SMALL, rmem_max=CAP, delayed_ack=0))
    h.connect()
    syn = h.take()[0]
    ours = syn.options.timestamps[0]
    h.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA",
                     opts=Options(mss=MSS, timestamps=(TS_PEER, ours))), at=RTT)
    h.take()
    assert h.tcb.state is State.ESTABLISHED and h.tcb.ts_ok
    return h


def data_with_tsecr(h: Harness, at: int, tsecr: int, n: int = MSS) -> None:
    h.send(from_peer(seq=h.tcb.rcv_nxt, payload=bytes(n),
                     opts=Options(timestamps=(TS_PEER + at // MS, tsecr))), at=at)
    h.take()


def test_receiver_rtt_from_echoed_timestamps() -> None:
    """Each full-sized in-order segment whose TSecr is new gives a sample (now - TSecr, in
    our 1 ms ticks); a smaller one replaces the estimate, a larger one moves it by 1/8; a
    TSecr seen before and a small segment give none."""
    h = ts_open()
    data_with_tsecr(h, 100 * MS, 75)              # echoes our clock of 75 ms: 25 ms
    assert h.tcb.info()["rcv_rtt"] == 25 * MS
    data_with_tsecr(h, 110 * MS, 75)              # the same TSecr again: no sample
    assert h.tcb.info()["rcv_rtt"] == 25 * MS
    data_with_tsecr(h, 135 * MS, 100)             # 35 ms: 25 + (35 - 25) / 8
    assert h.tcb.info()["rcv_rtt"] == 25 * MS + (10 * MS >> 3)
    data_with_tsecr(h, 140 * MS, 139, n=100)      # 1 ms, but a small segment: none
    assert h.tcb.info()["rcv_rtt"] == 25 * MS + (10 * MS >> 3)
    data_with_tsecr(h, 150 * MS, 145)             # 5 ms: smaller, replaces it
    assert h.tcb.info()["rcv_rtt"] == 5 * MS
    data_with_tsecr(h, 151 * MS, 151)             # the same tick: at least one tick
    assert h.tcb.info()["rcv_rtt"] == 1 * MS


# ------------------------------------------------------------------ the send buffer
def test_the_send_buffer_grows_to_twice_cwnd_once_the_application_fills_it() -> None:
    """Linux tcp_new_space / tcp_sndbuf_expand: the application found the buffer full, an
    ACK frees room and cwnd is not filled (the buffer held the sender back): the buffer
    becomes twice max(10, cwnd, reordering + 1) segments."""
    h = Harness(plain_config(sndbuf=SMALL, delayed_ack=0))
    t = h.active_open()
    data = bytes(400_000)
    off = t.send(data, T)
    assert off == SMALL and t.snd_nospace
    assert sum(len(s.payload) for s in h.take(at=T)) == 10 * MSS   # the initial cwnd
    h.send(from_peer(ack=ISS + 1 + 10 * MSS), at=T + RTT)
    cwnd = t.recovery.cc.cwnd
    assert t.options.sndbuf == 2 * max(10, -(-cwnd // MSS)) * MSS > SMALL
    assert t.info()["sndbuf"] == t.options.sndbuf and not t.snd_nospace
    assert [(e["bytes"], e["cwnd"]) for e in h.events if e["ev"] == "sndbuf"] == [
        (t.options.sndbuf, cwnd)]
    off += t.send(data[off:], T + RTT + 1)
    assert off == t.options.sndbuf + 10 * MSS     # the room it made (10 segments acked)


def test_the_send_buffer_does_not_grow_without_need_or_when_set() -> None:
    """No growth when the application never filled the buffer, when SO_SNDBUF set it
    (sndbuf_locked), or beyond sndbuf_max."""
    def run(**kw) -> int:
        locked = kw.pop("locked", False)
        h = Harness(plain_config(sndbuf=SMALL, delayed_ack=0, **kw))
        t = h.active_open()
        t.options.sndbuf_locked = locked
        t.send(bytes(400_000), T)
        h.take(at=T)
        h.send(from_peer(ack=t.snd_nxt), at=T + RTT)
        return t.options.sndbuf

    assert run() > SMALL                             # the control: it grows
    assert run(locked=True) == SMALL
    assert run(sndbuf_max=SMALL) == SMALL
    h = Harness(plain_config(sndbuf=SMALL, delayed_ack=0))
    t = h.active_open()
    t.send(bytes(8000), T)                           # fits: the buffer never held it back
    h.take(at=T)
    h.send(from_peer(ack=ISS + 1 + 8000), at=T + RTT)
    assert t.options.sndbuf == SMALL


def test_a_long_fat_path_needs_both_buffers_to_grow() -> None:
    """Simulator, 50 ms RTT at 200 Mbit/s (a 1.25 MB bandwidth-delay product, five times the
    256 KiB default buffers): 8 MB each way finish in less than 0.6 of the time with both
    buffers autotuned than with both fixed, and the buffers did grow."""
    from rawtcp.sim import Sim, transfer

    def run(cfg) -> tuple[int, dict]:
        sim = Sim(seed=3, delay_us=25 * MS, bandwidth_bps=200_000_000, config=cfg)
        r = transfer(sim, 8_000_000)
        assert r.ok
        return r.time_us, r.info["client"]

    fixed, _ = run(plain_config(timestamps=True, window_scaling=True, sack=True,
                                rcvbuf=256 * 1024, sndbuf=256 * 1024, rmem_max=6 << 20,
                                moderate_rcvbuf=False, sndbuf_max=256 * 1024, msl=MS))
    tuned, info = run(plain_config(timestamps=True, window_scaling=True, sack=True,
                                   rcvbuf=256 * 1024, sndbuf=256 * 1024, rmem_max=6 << 20,
                                   msl=MS))
    assert info["rcvbuf"] > 256 * 1024 and info["sndbuf"] > 256 * 1024
    assert tuned < 0.6 * fixed
