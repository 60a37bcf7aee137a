"""The out-of-order queue (Reassembly) and the SACK scoreboard (Scoreboard) against trivial
reference models (a dict of byte positions, a set of SACKed sequence numbers), plus the
scale cases of issue 8 (20,000 holes, 6,000 SACKed ranges), asserted on counts, not times.

RFC 9293 3.10.7.4 seventh (reassembly of out-of-order text), RFC 2018 4 (SACK block order:
the block of the latest arrival first), RFC 6675 3-4 (scoreboard, pipe's unSACKed bytes)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rawtcp.core.buffers import PIECE_OVERHEAD, Reassembly
from rawtcp.core.congestion import Scoreboard

BASE = 1 << 32  # absolute sequence numbers above 2**32: nothing assumes small values


# ---------------------------------------------------------------------------- reference models
class RefQueue:
    """Reassembly as a dict {sequence number: byte}."""

    def __init__(self) -> None:
        self.held: dict[int, int] = {}

    def add(self, start: int, data: bytes) -> None:
        for k, b in enumerate(data):
            self.held.setdefault(start + k, b)

    def pop_ready(self, rcv_nxt: int) -> bytes:
        """Everything below rcv_nxt is obsolete; the run of held bytes from rcv_nxt on is
        handed over."""
        for q in [q for q in self.held if q < rcv_nxt]:
            del self.held[q]
        out = bytearray()
        q = rcv_nxt
        while q in self.held:
            out.append(self.held.pop(q))
            q += 1
        return bytes(out)

    def blocks(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for q in sorted(self.held):
            if out and out[-1][1] == q:
                out[-1] = (out[-1][0], q + 1)
            else:
                out.append((q, q + 1))
        return out


ops_queue = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 300), st.integers(1, 40)),
        st.tuples(st.just("pop"), st.integers(0, 300), st.just(0)),
    ),
    max_size=60,
)


def _stream(n: int = 400) -> bytes:
    return random.Random(7).randbytes(n)


@settings(max_examples=300, deadline=None)
@given(ops_queue)
def test_reassembly_matches_reference(ops: list[tuple[str, int, int]]) -> None:
    """RFC 9293 3.10.7.4 seventh: any order of overlapping segments and pops keeps exactly the
    bytes a byte-position model keeps; RFC 2018 4: the first SACK block holds the latest
    arrival; nbytes and cost are what is held."""
    data = _stream()
    r, ref = Reassembly(), RefQueue()
    for op, off, n in ops:
        if op == "add":
            seg = data[off : off + n]
            r.add(BASE + off, seg)
            ref.add(BASE + off, seg)
            if seg:
                first = r.sack_blocks(4)[0]
                assert first[0] <= BASE + off and BASE + off + len(seg) <= first[1]
        else:
            assert r.pop_ready(BASE + off) == ref.pop_ready(BASE + off)
        assert r.ranges() == ref.blocks()
        assert [(s, s + len(b)) for s, b in r.blocks] == ref.blocks()
        for s, b in r.blocks:
            assert b == data[s - BASE : s - BASE + len(b)]
        assert r.nbytes == len(ref.held) and bool(r) == bool(ref.held)
        assert r.cost == r.nbytes + PIECE_OVERHEAD * r.npieces
        blocks = r.sack_blocks(3)
        assert len(blocks) == min(3, len(ref.blocks())) and len(set(blocks)) == len(blocks)
        assert all(b in ref.blocks() for b in blocks)


def test_sack_blocks_latest_first() -> None:
    """RFC 2018 4: the first block holds the latest segment; the next ones are the blocks
    that changed most recently, then the rest lowest first."""
    r = Reassembly()
    for off in (100, 300, 500, 700, 900):
        r.add(off, b"x" * 10)
    assert r.sack_blocks(4) == [(900, 910), (700, 710), (500, 510), (300, 310)]
    r.add(305, b"y" * 10)  # extends the block at 300
    assert r.sack_blocks(3) == [(300, 315), (900, 910), (700, 710)]
    assert r.recent == (300, 315)
    assert r.pop_ready(100) == b"x" * 10
    assert r.sack_blocks(4) == [(300, 315), (900, 910), (700, 710), (500, 510)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 60)), max_size=80),
       st.integers(0, 6000))
def test_prune_keeps_lowest_data_within_cost(segs: list[tuple[int, int]], limit: int) -> None:
    """RFC 2018 8 (a receiver may discard out-of-order data it has SACKed), as Linux
    tcp_prune_ofo_queue: pruning drops from the highest sequence numbers down until the
    cost is within the limit; what stays is exactly the held bytes below a cut."""
    data = random.Random(3).randbytes(2100)
    r, ref = Reassembly(), RefQueue()
    for off, n in segs:
        r.add(BASE + off, data[off : off + n])
        ref.add(BASE + off, data[off : off + n])
    before = r.nbytes
    dropped = r.prune(limit)
    assert r.cost <= limit
    assert dropped == before - r.nbytes
    kept = {q for s, e in r.ranges() for q in range(s, e)}
    if kept:
        cut = max(kept)
        assert kept == {q for q in ref.held if q <= cut}  # a prefix of what was held
    for s, b in r.blocks:
        assert b == data[s - BASE : s - BASE + len(b)]
    assert r.prune(limit) == 0  # already within the limit: nothing more to drop


def test_prune_stops_as_soon_as_cost_fits() -> None:
    """RFC 2018 8 (reneging) done sparingly: only as many of the highest pieces as needed
    go, and the SACK blocks (RFC 2018 4) then report only what is still held."""
    r = Reassembly()
    for k in range(10):
        r.add(1000 + 200 * k, b"z" * 100)
    per = 100 + PIECE_OVERHEAD
    assert r.cost == 10 * per
    assert r.prune(7 * per + 5) == 300
    assert r.ranges() == [(1000 + 200 * k, 1100 + 200 * k) for k in range(7)]
    # the three latest blocks were pruned: the latest one left comes first
    assert r.sack_blocks(2) == [(2200, 2300), (1000, 1100)]


def test_twenty_thousand_holes_then_fill() -> None:
    """RFC 9293 3.10.7.4 seventh (reassembly) and RFC 2018 4 (the first SACK block covers
    the latest segment) at issue 8's scale: 20,000 one-byte holes, then every hole filled
    one byte at a time (each fill merges two blocks without re-copying them), then the
    whole run is popped."""
    n = 20_000
    data = random.Random(11).randbytes(2 * n + 1)
    r = Reassembly()
    for k in range(n):  # bytes 1, 3, 5, ... held; 0, 2, 4, ... missing
        r.add(BASE + 2 * k + 1, data[2 * k + 1 : 2 * k + 2])
    assert len(r.blocks) == n and r.nbytes == n and r.npieces == n
    for k in range(1, n):  # fill holes 2, 4, ... (leave the one at 0)
        r.add(BASE + 2 * k, data[2 * k : 2 * k + 1])
        assert len(r.blocks) == n - k
        assert r.sack_blocks(1) == [(BASE + 1, BASE + 2 * k + 2)]
    assert r.npieces == 2 * n - 1 and r.nbytes == 2 * n - 1
    assert r.pop_ready(BASE) == b""  # the hole at 0 is still missing
    assert r.pop_ready(BASE + 1) == data[1 : 2 * n]
    assert not r and r.nbytes == 0 and r.cost == 0


# ---------------------------------------------------------------------------- scoreboard
ops_sb = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 500), st.integers(-5, 60)),
        st.tuples(st.just("ack"), st.integers(0, 520), st.just(0)),
        st.tuples(st.just("clear"), st.just(0), st.just(0)),
    ),
    max_size=80,
)


def _ref_ranges(sacked: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for q in sorted(sacked):
        if out and out[-1][1] == q:
            out[-1] = (out[-1][0], q + 1)
        else:
            out.append((q, q + 1))
    return out


@settings(max_examples=300, deadline=None)
@given(ops_sb, st.lists(st.tuples(st.integers(0, 600), st.integers(0, 600)), min_size=1,
                        max_size=8))
def test_scoreboard_matches_reference(ops: list[tuple[str, int, int]],
                                      probes: list[tuple[int, int]]) -> None:
    """RFC 6675 3: SACKed ranges merge, the cumulative ACK forgets below it, and every query
    (skip, next hole end, unSACKed bytes for pipe, SACKed bytes) matches a set of SACKed
    sequence numbers, including queries interleaved with updates."""
    sb = Scoreboard()
    sacked: set[int] = set()
    una = 0
    for op, a, n in ops:
        if op == "add":
            lo = max(a, una)  # the caller clips blocks to SND.UNA (tcb_input)
            sb.add(BASE + lo, BASE + a + n)
            sacked |= set(range(lo, a + n))
        elif op == "ack":
            una = max(una, a)
            sb.ack_to(BASE + una)
            sacked = {q for q in sacked if q >= una}
        else:
            sb.clear()
            sacked = set()
        ref = _ref_ranges(sacked)
        assert sb.ranges == [(BASE + s, BASE + e) for s, e in ref]
        assert len(sb) == len(ref) and bool(sb) == bool(ref)
        assert sb.sacked == len(sacked)
        assert sb.highest == (BASE + ref[-1][1] if ref else None)
        for x, y in probes:
            lo, hi = min(x, y), max(x, y)
            assert sb.unsacked_between(BASE + lo, BASE + hi) == sum(
                1 for q in range(lo, hi) if q not in sacked)
            assert sb.sacked_below(BASE + x) == sum(1 for q in sacked if q < x)
            q = x
            while q in sacked:
                q += 1
            assert sb.skip(BASE + x) == BASE + q
            assert (sb.skip(BASE + x) != BASE + x) == (x in sacked)
            above = [s for s, _e in ref if s > x]
            assert sb.next_sacked_start(BASE + x) == (BASE + above[0] if above else None)


def test_scoreboard_six_thousand_ranges() -> None:
    """RFC 6675 3-4 (scoreboard, pipe) at issue 8's scale: 6,000 SACKed ranges; ACKs
    carrying 3 SACK blocks (a retransmitted hole in the middle, new data at the top, a
    repeated block), the cumulative ACK moving up, and pipe's query (unSACKed bytes between
    SND.UNA and a moving retransmission point) stay exact against a set of SACKed segment
    numbers."""
    sb = Scoreboard()
    mss = 1000
    sacked = set(range(1, 12000, 2))  # segment 2k lost, 2k+1 SACKed
    for k in sacked:
        sb.add(k * mss, (k + 1) * mss)
    assert len(sb) == 6000 and sb.sacked == 6000 * mss
    una, top = 0, 12000
    rng = random.Random(2)
    for step in range(300):
        hole = rng.randrange(2, 11999, 2)
        top += 1
        for k in (hole, top, top):
            if k * mss >= una:
                sb.add(k * mss, (k + 1) * mss)
                sacked.add(k)
        if step % 10 == 0:
            una += 2 * mss
            sb.ack_to(una)
            sacked = {k for k in sacked if k * mss >= una}
        rtx_next = una + 40 * step * mss
        assert sb.unsacked_between(una, rtx_next) == (rtx_next - una) - mss * sum(
            1 for k in range(una // mss, rtx_next // mss) if k in sacked)
    assert sb.ranges == [(s * mss, e * mss) for s, e in _ref_ranges(sacked)]
    assert sb.sacked == len(sacked) * mss
    assert len(sb) == len([k for k in sacked if k - 1 not in sacked])
