"""A hostile peer against the core (issue 9): segments built as bytes, mutated, passed
through both codecs, and whatever the fast codec accepts thrown at a connection in every
state. Nothing raises (a bad segment is dropped, answered or processed: RFC 9293 3.10.7),
the two codecs agree on every packet, and after every segment the connection's invariants
hold: sequence variables in order (RFC 9293 3.3.1), received data bounded by the buffers
(rbuf <= rcvbuf, out-of-order memory <= rcvbuf * 9/8), every state change allowed by the
table (strict mode). `pytest --fuzz-rounds N` runs longer (default 300 per state)."""

from __future__ import annotations

import random
import zlib

import pytest
from core_harness import ISS, PEER, PISS, US, Harness, from_peer

from rawtcp.core.config import MS
from rawtcp.core.segment import Options, Packet
from rawtcp.wire import ParseError, decode_ip, encode_ip, scapy_codec

STATES = ["est", "fin_wait_1", "fin_wait_2", "close_wait", "last_ack", "closing",
          "time_wait", "syn_sent", "syn_received"]


def _hostile(rng: random.Random) -> Packet:
    """The cases issue 9 lists (SYN+FIN, SYN-ACK in SYN_RECEIVED, duplicates, 1-byte holes,
    far-away SACK blocks, zero windows) mixed with plain randomness."""
    kind = rng.randrange(8)
    seq = rng.choice([PISS + 1, PISS, PISS + 1 + rng.randint(0, 70000), rng.getrandbits(32)])
    ack = rng.choice([ISS + 1, ISS, ISS + 2, rng.getrandbits(32)])
    flags = rng.getrandbits(8)
    payload = rng.randbytes(rng.choice([0, 0, 1, 100, 1460]))
    opts = Options()
    if kind == 0:
        flags = 0x03 | (rng.getrandbits(2) << 3)               # SYN+FIN (+PSH/URG)
    elif kind == 1:
        flags, seq, ack = 0x12, PISS, ISS + 1                  # a SYN-ACK
    elif kind == 2:
        flags, seq = 0x18, PISS + 1 - rng.randint(0, 200)      # (partly) duplicate text
    elif kind == 3:
        flags, seq, payload = 0x10, PISS + 2 + 2 * rng.randint(0, 30000), b"h"   # holes
    elif kind == 4:
        a = rng.getrandbits(32)
        opts = Options(sack_blocks=tuple((a + i, a + i + rng.randint(-5, 70000))
                                         for i in range(rng.randint(1, 3))))
    elif kind == 5:
        opts = Options(timestamps=(rng.getrandbits(32), rng.getrandbits(32)))
    elif kind == 6:
        opts = Options(mss=rng.getrandbits(16), wscale=rng.randint(0, 255),
                       sack_permitted=rng.random() < 0.5)
    seg = from_peer(seq=seq, ack=ack, flags=flags, win=rng.choice([0, rng.getrandbits(16)]),
                    payload=payload, opts=opts)
    return Packet(PEER, US, seg)


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    b = bytearray(raw)
    r = rng.random()
    if r < 0.15:
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)      # a flipped bit
    elif r < 0.2:
        del b[rng.randrange(len(b)):]                          # truncated
    elif r < 0.25:
        b += rng.randbytes(rng.randint(1, 40))                 # trailing bytes
    return bytes(b)


def _decode_both(raw: bytes):
    """The fast codec's Packet, or None when it refuses; the Scapy codec must agree."""
    try:
        fast = decode_ip(raw)
    except ParseError as e:
        with pytest.raises(ParseError) as ref:
            scapy_codec.decode_ip(raw)
        assert ref.value.reason == e.reason
        return None
    assert scapy_codec.decode_ip(raw) == fast
    return fast


def _invariants(h: Harness) -> None:
    t = h.tcb
    if t is None or t.closed:
        return
    assert t.snd_una <= t.snd_nxt <= t.snd_max
    if t.irs is not None:
        assert t.rcv_nxt <= max(t.rcv_adv, t.rcv_nxt)
    assert len(t.rbuf) <= t.options.rcvbuf
    assert t.out_of_order.cost <= t.options.rcvbuf + t.options.rcvbuf // 8


@pytest.mark.parametrize("state", STATES)
def test_hostile_segments_through_both_codecs(state: str, request: pytest.FixtureRequest) -> None:
    h: Harness = request.getfixturevalue(state)
    rounds = request.config.getoption("--fuzz-rounds")
    rng = random.Random(zlib.crc32(b"adversarial " + state.encode()))
    t = 100 * MS
    delivered = 0
    for _ in range(rounds):
        t += rng.randint(0, 20 * MS)
        raw = _mutate(encode_ip(_hostile(rng)), rng)
        pkt = _decode_both(raw)
        if pkt is not None:
            h.send(pkt.segment, at=t)
            delivered += 1
        h.take()
        _invariants(h)
    h.take(at=t + 600_000_000)                                 # every timer runs out
    assert delivered > rounds // 2
    assert len(h.stack.connections()) <= 1 + (len(h.listener.syn_queue) if h.listener else 0)
