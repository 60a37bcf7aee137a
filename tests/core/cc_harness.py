"""Helpers of the congestion-control tests (issue 13): a connection with SACK (and
optionally timestamps) established by a passive open at t = RTT, on core_harness.Harness."""

from __future__ import annotations

from core_harness import ISS, MSS, PISS, RCVBUF, RTT, Harness, from_peer, plain_config, to_peer

from rawtcp.core.segment import Options

S = ISS + 1          # our first data byte


def sack_harness(**kw) -> Harness:
    """ESTABLISHED with SACK (no timestamps unless asked), nodelay, RTT 10 ms."""
    ts = kw.pop("timestamps", False)
    h = Harness(plain_config(sack=True, nodelay=True, timestamps=ts, **kw))
    h.listen()
    syn_ts = (1, 0) if ts else None
    h.send(from_peer(seq=PISS, ack=0, flags="S",
                     opts=Options(mss=MSS, sack_permitted=True, timestamps=syn_ts)), at=0)
    h.take()
    h.send(from_peer(opts=Options(timestamps=(2, 0)) if ts else Options()), at=RTT)
    h.tcb = h.listener.accept()
    assert h.tcb is not None
    return h


def seg_at(i: int, mss: int = MSS) -> int:
    """Sequence number of our i-th (0-based) full-sized data segment."""
    return S + i * mss


def sack(*blocks: tuple[int, int], mss: int = MSS, ts: tuple[int, int] | None = None) -> Options:
    """SACK blocks in segment numbers: sack((2, 4)) = segments 2 and 3."""
    return Options(sack_blocks=tuple((seg_at(a, mss), seg_at(b, mss)) for a, b in blocks),
                   timestamps=ts)


def data(i: int, n: int = 1, flags: str = "A", mss: int = MSS) -> object:
    """The segment we must send carrying data segment i (n segments' worth)."""
    return to_peer(seq=seg_at(i, mss), flags=flags, payload=bytes(n * mss), win=RCVBUF)


__all__ = ["S", "data", "sack", "sack_harness", "seg_at"]
