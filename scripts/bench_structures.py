"""Per-operation cost of the out-of-order queue and the SACK scoreboard (issue 8).

    flock /tmp/rawtcp-bench.lock .venv/bin/python scripts/bench_structures.py [--before REV]

(a) a 1-byte segment that fills one hole of a receive queue holding 20,000 holes
    (Reassembly.add, then pop_ready as tcb_input calls it: nothing is ready);
(b) an ACK carrying 3 SACK blocks against a scoreboard of 6,000 ranges, as _process_ack uses
    it (sacked, 3 x add, sacked, ack_to), then what one output in recovery asks
    (_pipe's unsacked_between, skip, next_sacked_start).

"after" is the code in this tree; "before" loads rawtcp/core/buffers.py and congestion.py
from git revision REV (default 676f92c, the code before issue 8) into a temporary directory.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
HOLES = 20_000
RANGES = 6_000
MSS = 1448


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _modules(rev: str | None, tmp: Path) -> tuple[ModuleType, ModuleType]:
    if rev is None:
        src = ROOT / "rawtcp" / "core"
        return (_load("after_buffers", src / "buffers.py"),
                _load("after_congestion", src / "congestion.py"))
    mods = []
    for f in ("buffers", "congestion"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:rawtcp/core/{f}.py"],
                              check=True, capture_output=True, text=True).stdout
        p = tmp / f"{f}_{rev}.py"
        p.write_text(text)
        mods.append(_load(f"before_{f}", p))
    return mods[0], mods[1]


def bench_reassembly(buffers: ModuleType, budget: float) -> float:
    """Microseconds per 1-byte segment filling a hole among 20,000."""
    r = buffers.Reassembly()
    base = 1 << 32
    for k in range(HOLES):
        r.add(base + 2 * k + 1, b"x")
    holes = list(range(1, HOLES))  # never the first hole: nothing becomes ready
    random.Random(1).shuffle(holes)
    n = 0
    t0 = time.perf_counter()
    while n < len(holes) // 2 and time.perf_counter() - t0 < budget:
        r.add(base + 2 * holes[n], b"y")
        r.pop_ready(base)
        n += 1
    return (time.perf_counter() - t0) / n * 1e6


def bench_scoreboard(congestion: ModuleType, budget: float) -> tuple[float, float]:
    """Microseconds per ACK with 3 SACK blocks, and per output query, on 6,000 ranges."""
    sb = congestion.Scoreboard()
    for k in range(RANGES):
        sb.add((2 * k + 1) * MSS, (2 * k + 2) * MSS)
    rng = random.Random(2)
    top = 2 * RANGES * MSS
    una = 0
    n = 0
    t_ack = t_out = 0.0
    while t_ack + t_out < budget and n < RANGES // 2:
        hole = rng.randrange(2, 2 * RANGES - 1, 2) * MSS  # a retransmitted hole SACKed
        rtx_next = rng.randrange(2, 2 * RANGES - 1) * MSS
        t0 = time.perf_counter()
        before = sb.sacked
        sb.add(top, top + MSS)          # the latest arrival: new data at the top
        sb.add(hole, hole + MSS)
        sb.add(top - MSS, top)          # an older block repeated
        _new = sb.sacked > before
        sb.ack_to(una)
        t1 = time.perf_counter()
        hs = sb.highest
        _pipe = sb.unsacked_between(una, min(rtx_next, hs))
        seq = sb.skip(rtx_next)
        _end = sb.next_sacked_start(seq)
        t2 = time.perf_counter()
        t_ack += t1 - t0
        t_out += t2 - t1
        top += MSS
        n += 1
    return t_ack / n * 1e6, t_out / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="676f92c", metavar="REV",
                    help="git revision whose buffers.py/congestion.py are 'before'")
    ap.add_argument("--budget", type=float, default=2.0,
                    help="seconds spent on each measurement (default 2)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for label, rev in (("before " + args.before, args.before), ("after", None)):
            buffers, congestion = _modules(rev, Path(d))
            a = bench_reassembly(buffers, args.budget)
            b_ack, b_out = bench_scoreboard(congestion, args.budget)
            rows.append((label, a, b_ack, b_out))
    print(f"{'code':<16} {'(a) 1-byte seg, 20k holes':>27} {'(b) ACK, 3 SACK, 6k ranges':>28}"
          f" {'(b) output query':>18}")
    for label, a, b_ack, b_out in rows:
        print(f"{label:<16} {a:>24.1f} us {b_ack:>25.1f} us {b_out:>15.1f} us")
    (_, a0, b0, o0), (_, a1, b1, o1) = rows
    print(f"{'speed-up':<16} {a0 / a1:>26.0f}x {b0 / b1:>27.0f}x {o0 / o1:>17.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
