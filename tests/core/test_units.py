"""Unit tests of the pure modules: rtt (RFC 6298), congestion (RFC 5681/6582/6675),
buffers (send buffer, reassembly), timers."""

from __future__ import annotations

import random

from rawtcp.core.buffers import Reassembly, ReceiveBuffer, SendBuffer
from rawtcp.core.config import MS, SEC
from rawtcp.core.congestion import NewReno, Scoreboard
from rawtcp.core.rtt import RttEstimator
from rawtcp.core.timers import TimerQueue, Timers


def test_rtt_initial_and_first_sample() -> None:
    """RFC 6298 2.1/2.2: RTO 1 s before a sample; then SRTT=R, RTTVAR=R/2, RTO=SRTT+4*RTTVAR."""
    r = RttEstimator(1 * SEC, 1 * MS, 60 * SEC)
    assert r.rto == 1 * SEC
    r.sample(100 * MS)
    assert (r.srtt, r.rttvar, r.rto) == (100 * MS, 50 * MS, 300 * MS)


def test_rtt_smoothing() -> None:
    """RFC 6298 2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT-R'|, SRTT = 7/8 SRTT + 1/8 R'."""
    r = RttEstimator(1 * SEC, 1 * MS, 60 * SEC)
    r.sample(100 * MS)
    r.sample(200 * MS)
    assert r.rttvar == (3 * 50 * MS + 100 * MS) // 4
    assert r.srtt == (7 * 100 * MS + 200 * MS) // 8


def test_rto_min_max_and_backoff() -> None:
    """RFC 6298 2.4 (minimum), 2.5 (maximum), 5.5 (back off, capped)."""
    r = RttEstimator(1 * SEC, 200 * MS, 3 * SEC)
    r.sample(1 * MS)
    assert r.rto == 200 * MS
    r.back_off()
    assert r.rto == 400 * MS
    for _ in range(10):
        r.back_off()
    assert r.rto == 3 * SEC
    r.sample(1 * MS)
    assert r.rto == 200 * MS  # a new sample clears the backoff


def test_slow_start_and_congestion_avoidance() -> None:
    """RFC 5681 3.1: slow start grows per ACK, congestion avoidance ~1 SMSS per RTT."""
    cc = NewReno(1000, 2)
    cc.on_ack(1000)
    assert cc.cwnd == 3000
    cc.ssthresh = 3000
    for _ in range(3):
        cc.on_ack(1000)
    assert cc.cwnd == 4000


def test_fast_recovery_newreno() -> None:
    """RFC 5681 3.2 / RFC 6582 3.2: ssthresh = FlightSize/2, cwnd = ssthresh + 3 SMSS, inflate,
    deflate on full ACK; recover blocks a second entry."""
    cc = NewReno(1000, 10)
    assert cc.can_enter_recovery(5)
    cc.enter_recovery(10_000, snd_max=20_000)
    assert (cc.ssthresh, cc.cwnd) == (5000, 8000)
    cc.on_dupack_in_recovery()
    assert cc.cwnd == 9000
    cc.on_partial_ack(2000)
    assert cc.cwnd == 8000
    cc.exit_recovery(flight=1000)
    assert cc.cwnd == 2000 and not cc.in_recovery
    assert not cc.can_enter_recovery(19_000)
    assert cc.can_enter_recovery(20_001)


def test_timeout_collapses_cwnd() -> None:
    """RFC 5681 3.1 eq. 4: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = 1 SMSS."""
    cc = NewReno(1000, 10)
    cc.on_timeout(3000, first=True)
    assert (cc.ssthresh, cc.cwnd) == (2000, 1000)
    cc.on_timeout(100_000, first=False)
    assert cc.ssthresh == 2000


def test_scoreboard() -> None:
    """RFC 6675 3: merge SACK blocks, forget below the cumulative ACK, find holes."""
    sb = Scoreboard()
    sb.add(300, 400)
    sb.add(100, 200)
    sb.add(190, 250)
    assert sb.ranges == [(100, 250), (300, 400)]
    assert sb.skip(120) == 250 and sb.skip(260) == 260
    assert sb.next_sacked_start(250) == 300
    assert sb.unsacked_between(0, 400) == 100 + 50
    assert sb.sacked == 250 and sb.highest == 400
    sb.ack_to(200)
    assert sb.ranges == [(200, 250), (300, 400)]


def test_send_buffer() -> None:
    """RFC 9293 3.3.1 send sequence space: buffer from SND.UNA, freed by ACKs, bounded."""
    b = SendBuffer(100, limit=10)
    assert b.write(b"0123456789abc") == 10 and b.free == 0
    assert b.peek(103, 4) == b"3456"
    assert b.ack_to(105) == 5 and b.start == 105 and b.end == 110
    assert b.write(b"xyz") == 3 and b.peek(108, 10) == b"89xyz"


def test_send_buffer_against_a_model() -> None:
    """Random writes, peeks and ACKs against a plain bytes model: the same bytes, the same
    bounds, and the storage never above twice the limit (acknowledged bytes are cut off)."""
    rng = random.Random(8)
    limit = 5000
    b = SendBuffer(1000, limit=limit)
    model = b""
    start = 1000
    stream = rng.randbytes(200_000)
    written = 0
    for _ in range(3000):
        op = rng.random()
        if op < 0.4:
            n = rng.randint(0, 3000)
            got = b.write(stream[written:written + n])
            assert got == min(n, limit - len(model), len(stream) - written)
            model += stream[written:written + got]
            written += got
        elif op < 0.7 and model:
            seq = start + rng.randint(0, len(model) - 1)
            n = rng.randint(1, 2000)
            assert b.peek(seq, n) == model[seq - start:seq - start + n]
        else:
            to = start + rng.randint(0, len(model))
            assert b.ack_to(to) == to - start
            model = model[to - start:]
            start = to
        assert (b.start, b.end, len(b), b.free) == (start, start + len(model), len(model),
                                                    limit - len(model))
        assert len(b.buf) <= 2 * limit


def test_receive_buffer_against_a_model() -> None:
    """Appends, peeks and reads against a plain bytes model: the same bytes, and the storage
    never above what is held plus the read front of one piece."""
    rng = random.Random(9)
    b = ReceiveBuffer()
    model = b""
    for _ in range(3000):
        op = rng.random()
        if op < 0.45:
            data = rng.randbytes(rng.choice((rng.randint(0, 40), rng.randint(0, 3000))))
            b += data
            model += data
            assert b.storage() <= len(model) + max((len(p) for p in b.pieces), default=0)
        elif op < 0.6:
            n = rng.randint(0, 3000)
            assert b.peek(n) == model[:n]
        else:
            n = rng.randint(0, 4000)
            assert b.take(n) == model[:n]
            model = model[n:]
        assert len(b) == len(model) and bool(b) == bool(model)
        assert all(type(x) is bytes for x in (b.peek(5), b.peek(0)))


def test_receive_buffer_gathers_tiny_segments() -> None:
    """A peer sending 1-byte segments does not make us hold a Python object per byte: they
    are gathered into pieces of up to GATHER bytes (per-piece overhead a few percent)."""
    b = ReceiveBuffer()
    for i in range(200_000):
        b += bytes((i & 0xFF,))
    assert len(b) == 200_000
    assert len(b.pieces) <= 200_000 // ReceiveBuffer.GATHER + 1
    assert b.take(3) == bytes((0, 1, 2)) and type(b.take(1)) is bytes


def test_receive_buffer_holds_no_storage_when_empty() -> None:
    """Thousands of idle connections: a receive buffer with nothing unread (new, or read to
    the end) keeps no container for pieces (an empty deque alone is ~600 bytes)."""
    import tracemalloc

    tracemalloc.start()
    try:
        m0 = tracemalloc.get_traced_memory()[0]
        bufs = []
        for i in range(1000):
            b = ReceiveBuffer()
            if i % 2:
                b += b"x" * 2000
                b += b"y"
                assert b.take(5000) == b"x" * 2000 + b"y"
            bufs.append(b)
        per = (tracemalloc.get_traced_memory()[0] - m0) / len(bufs)
    finally:
        tracemalloc.stop()
    assert per < 150, per
    b = bufs[1]
    b += b"again"
    assert b.peek(10) == b"again" and b.take(10) == b"again" and not b


def test_reassembly_random_order_matches_stream() -> None:
    """RFC 9293 3.10.7.4 seventh (reassembly): out-of-order segments, overlaps and
    duplicates rebuild the exact stream; RFC 2018 4: the first SACK block is the latest."""
    rng = random.Random(5)
    data = rng.randbytes(5000)
    pieces = []
    off = 0
    while off < len(data):
        n = rng.randint(1, 300)
        pieces.append((off, data[off : off + n]))
        off += n
    pieces += [(o + 3, d[3:50]) for o, d in pieces[::3] if len(d) > 3]  # overlapping duplicates
    rng.shuffle(pieces)
    r = Reassembly()
    out = bytearray()
    nxt = 0
    for o, d in pieces:
        if o <= nxt:
            if o + len(d) > nxt:
                out += d[nxt - o :]
                nxt = o + len(d)
            more = r.pop_ready(nxt)
            out += more
            nxt += len(more)
        else:
            r.add(o, d)
            assert r.sack_blocks(4)[0][0] <= o < r.sack_blocks(4)[0][1]
    assert bytes(out) == data and not r


def test_timers_order_and_trace() -> None:
    """RFC 6298 5 / RFC 9293 3.8 timers: deadlines fire in order and are traced."""
    seen = []
    t = Timers(lambda n, a, at, now: seen.append((n, a, at)))
    t.set("rtx", 50, 0)
    t.set("delack", 20, 0)
    t.cancel("persist", 0)  # not set: no event
    assert t.next_deadline() == 20
    assert t.pop_expired(60) == ["delack", "rtx"]
    assert seen == [("rtx", "set", 50), ("delack", "set", 20), ("delack", "fired", 20),
                    ("rtx", "fired", 50)]


class _Owner:
    """A stand-in connection for the TimerQueue: named deadlines in a Timers."""

    def __init__(self, q: TimerQueue) -> None:
        self.queued_at = None
        self.timers = Timers(None, q, self)

    def poll_at(self):
        return self.timers.next_deadline()


def test_timer_queue_finds_the_earliest_deadline_of_many_owners() -> None:
    """RFC 6298 5 / RFC 9293 3.8 timers kept for many connections: the stack's queue answers
    poll_at exactly (no scan, no spurious wake-up): deadlines moved later or cancelled are
    skipped, moved earlier are seen at once."""
    q = TimerQueue()
    rng = random.Random(3)
    owners = [_Owner(q) for _ in range(200)]
    for o in owners:
        o.timers.set("rtx", rng.randrange(1000, 2000), 0)
    for o in owners[:100]:
        o.timers.set("rtx", o.timers.deadlines["rtx"] + 5000, 0)   # restarted later
    for o in owners[100:150]:
        o.timers.cancel("rtx", 0)
    owners[199].timers.set("delack", 10, 0)                         # earlier than all
    live = [d for o in owners if (d := o.poll_at()) is not None]
    assert q.next_at() == min(live) == 10
    due = q.pop_due(10)
    assert due == [owners[199]]
    owners[199].timers.pop_expired(10)
    q.schedule(owners[199], owners[199].poll_at())
    assert q.next_at() == min(d for o in owners if (d := o.poll_at()) is not None)
    # everything cancelled: nothing left to wait for
    for o in owners:
        o.timers.cancel_all(0)
    assert q.next_at() is None and len(q) == 0


def test_timer_queue_rebuild_keeps_one_entry_per_owner() -> None:
    """Implementation (not a protocol rule): deadlines moved earlier leave stale heap
    entries; rebuild() keeps one live entry per owner and the same earliest deadline."""
    q = TimerQueue()
    owners = [_Owner(q) for _ in range(10)]
    for i, o in enumerate(owners):
        for k in range(5):                       # deadlines moving earlier push entries
            o.timers.set("rtx", 1000 - 10 * k + i, 0)
    assert len(q) == 50
    q.rebuild(owners)
    assert len(q) == 10 and q.next_at() == 960
