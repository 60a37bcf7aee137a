"""scripts/bench_iosize.py: rawtcp's bulk throughput by the program's read / write size, in a
private TUN lab against the kernel (root), every transfer sha256-checked; bad arguments exit
2 with one line naming the argument."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "bench_iosize.py")


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_each_size_both_ways_against_the_largest() -> None:
    r = run("--size", "2", "--io", "64,4", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["direction"], x["io_kib"]) for x in rows] == [
        ("receive", 4), ("receive", 64), ("send", 4), ("send", 64)]
    assert all(x["mb_per_s"] > 0 for x in rows)
    assert [x["ratio_to_largest"] for x in rows if x["io_kib"] == 64] == [1.0, 1.0]


def test_bad_arguments_exit_2() -> None:
    for args, word in ((["--io", "4,x"], "--io"), (["--io", "0"], "--io"),
                       (["--size", "0"], "--size"), (["--repeat", "11"], "--repeat")):
        r = run(*args, timeout=60)
        assert r.returncode == 2 and word in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
