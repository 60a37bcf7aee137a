#!/usr/bin/env python3
"""How a program's read and write sizes change rawtcp's bulk throughput (needs root).

`rawtcp bench` reads and writes 1 MiB a call, as its kernel reference does. Programs often
use 4 or 64 KiB. For each size this runs the bench's bulk receive (kernel source -> rawtcp,
``recv(size)`` until EOF) and bulk send (rawtcp ``sendall(size)`` pieces -> kernel sink) in a
fresh TUN lab at MTU 1500 (sha256-checked), and prints MB/s and the ratio to the largest
size of the same run, direction by direction, rounds alternating over the sizes:

    sudo .venv/bin/python scripts/bench_iosize.py [--size 100] [--io 4,64,1024] [--repeat 1]
        [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rawtcp.bench import run as bench_run  # noqa: E402
from rawtcp.bench.common import Progress, stream_sha256  # noqa: E402
from rawtcp.host import privileges  # noqa: E402

MB = 1_000_000


def io_sizes(text: str) -> list[int]:
    try:
        kib = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of KiB sizes: {text!r}") from None
    if not kib or any(not 1 <= k <= 16384 for k in kib):
        raise argparse.ArgumentTypeError("sizes are KiB between 1 and 16384, e.g. 4,64,1024")
    return [k * 1024 for k in kib]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=100, help="MB per transfer, 1..2000")
    p.add_argument("--io", type=io_sizes, default=io_sizes("4,64,1024"),
                   help="read / write sizes in KiB, comma-separated (default 4,64,1024)")
    p.add_argument("--repeat", type=int, default=1, help="rounds, 1..10")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per transfer")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not 1 <= a.size <= 2000:
        p.error("--size must be between 1 and 2000 (MB)")
    if not 1 <= a.repeat <= 10:
        p.error("--repeat must be between 1 and 10")
    if not 1 <= a.timeout <= 3600:
        p.error("--timeout must be between 1 and 3600 seconds")
    try:
        privileges.check()
    except PermissionError as e:
        print(f"bench_iosize: {e.strerror}", file=sys.stderr)
        return 2
    nbytes = a.size * MB
    sha = stream_sha256(nbytes)
    quiet = Progress(False)
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(a.repeat):
        for io in a.io:
            for what in ("receive", "send"):
                if what == "receive":
                    m = bench_run.recv_rawtcp(1500, nbytes, a.timeout, quiet, io_size=io)
                else:
                    m = bench_run.send_rawtcp(1500, nbytes, sha, a.timeout, quiet, io_size=io)
                if not m.sha_ok:
                    print(f"{what} with {io // 1024} KiB calls: the bytes differ", file=sys.stderr)
                    return 1
                rates.setdefault((what, io), []).append(m.value)
    top = a.io[-1]
    rows = []
    for what in ("receive", "send"):
        ref = statistics.median(rates[(what, top)])
        for io in a.io:
            v = statistics.median(rates[(what, io)])
            rows.append({"direction": what, "io_kib": io // 1024, "mb_per_s": round(v, 1),
                         "ratio_to_largest": round(v / ref, 2) if ref else None})
    if a.json:
        print(json.dumps(rows))
        return 0
    print(f"{'direction':9} {'KiB/call':>8} {'MB/s':>7} {'/ largest':>9}")
    for r in rows:
        print(f"{r['direction']:9} {r['io_kib']:>8} {r['mb_per_s']:>7} "
              f"{r['ratio_to_largest']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
