"""Bad input is never a crash (RFC 9293 3.10.7 / DESIGN.md): random segments thrown at a
connection in each state are dropped, answered or processed, never raised."""

from __future__ import annotations

import random
import zlib

import pytest
from core_harness import ISS, PISS, Harness, from_peer

from rawtcp.core.config import MS
from rawtcp.core.segment import Flags, Options

STATES = ["est", "fin_wait_1", "fin_wait_2", "close_wait", "last_ack", "closing",
          "time_wait", "syn_sent", "syn_received"]


@pytest.mark.parametrize("state", STATES)
def test_random_segments_never_raise(state: str, request: pytest.FixtureRequest) -> None:
    """RFC 9293 3.10.7: random segments in every state are dropped, answered or processed;
    none raises (DESIGN.md: a bad segment is never an exception)."""
    h: Harness = request.getfixturevalue(state)
    rng = random.Random(zlib.crc32(state.encode()))
    before = h.stack.counters["segments_in"]
    t = 100 * MS
    for _ in range(400):
        t += rng.randint(0, 50 * MS)
        base_seq = rng.choice([PISS + 1, PISS, PISS + 2, rng.getrandbits(32)])
        base_ack = rng.choice([ISS + 1, ISS + 2, ISS, rng.getrandbits(32)])
        opts = rng.choice([Options(), Options(mss=rng.randint(0, 70000) & 0xFFFF),
                           Options(sack_blocks=((rng.getrandbits(32), rng.getrandbits(32)),)),
                           Options(timestamps=(rng.getrandbits(32), rng.getrandbits(32))),
                           Options(wscale=rng.randint(0, 255))])
        seg = from_peer(seq=base_seq + rng.randint(-3000, 70000), ack=base_ack + rng.randint(-5, 5),
                        flags=Flags(rng.getrandbits(6)), win=rng.getrandbits(16),
                        payload=rng.randbytes(rng.choice([0, 0, 1, 100, 1460])), opts=opts)
        h.send(seg, at=t)
        h.take()
        if h.tcb is not None and rng.random() < 0.05:
            try:
                h.tcb.send(b"x" * 100, t)
            except OSError:
                pass
            h.tcb.recv(1000, t)
    h.take(at=t + 600_000_000)
    assert h.stack.counters["segments_in"] - before == 400
