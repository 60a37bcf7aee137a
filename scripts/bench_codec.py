#!/usr/bin/env python3
"""Build and parse time per segment for the fast (struct) and Scapy codecs.

    .venv/bin/python scripts/bench_codec.py [--quick]

Prints microseconds per call (best of 5 repeats, timeit) for a Linux-style SYN (MSS, SACK-ok,
timestamps, window scale, no payload) and a full data segment (timestamps, 1448 bytes), over
IPv4 and IPv6.
"""

from __future__ import annotations

import sys
import timeit

from rawtcp.core.segment import Flags, Options, Packet, Segment
from rawtcp.wire import fast, scapy_codec

CASES = {
    "SYN+opts": Segment(
        40000,
        80,
        1,
        0,
        Flags.SYN,
        64240,
        Options(mss=1460, wscale=7, sack_permitted=True, timestamps=(123456, 0)),
    ),
    "ACK 1448B": Segment(
        40000,
        80,
        1,
        1,
        Flags.ACK | Flags.PSH,
        501,
        Options(timestamps=(123456, 654321)),
        bytes(range(256)) * 5 + bytes(168),
    ),
}
ADDRS = {"v4": ("10.0.0.1", "10.0.0.2"), "v6": ("fd00::1", "fd00::2")}


def per_call_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    quick = "--quick" in sys.argv
    rows = []
    for case, seg in CASES.items():
        for fam, (src, dst) in ADDRS.items():
            pkt = Packet(src, dst, seg)
            raw = fast.encode_ip(pkt)
            assert raw == scapy_codec.encode_ip(pkt)
            assert fast.decode_ip(raw) == scapy_codec.decode_ip(raw) == pkt
            row = [f"{case} {fam}"]
            for codec, n in ((fast, 20000), (scapy_codec, 300)):
                n = max(n // 10, 10) if quick else n
                row.append(per_call_us(lambda c=codec, p=pkt: c.encode_ip(p), n))
                row.append(per_call_us(lambda c=codec, r=raw: c.decode_ip(r), n))
            rows.append(row)
    head = ("segment", "fast build", "fast parse", "scapy build", "scapy parse")
    print(f"{head[0]:<14}" + "".join(f"{h:>13}" for h in head[1:]) + "   (us per call)")
    for r in rows:
        print(f"{r[0]:<14}" + "".join(f"{x:>13.1f}" for x in r[1:]))
    print(f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
