#!/usr/bin/env python3
"""Where a rawtcp client's connection goes: the connection-rate test of `rawtcp bench`
(connect + 100 B echo + close against a kernel echo server over TUN, rawtcp closing first),
with CPU time per connection split by thread and by call (needs root).

  conn/s        the rate of the run
  wall          wall time per connection on the client's thread
  user / sys    the client thread's CPU per connection (RUSAGE_THREAD): user is Python,
                sys mostly the kernel peer's work done inside rawtcp's TUN writes
  loop          the stack's loop thread's CPU per connection (0 would mean the client
                thread did all the work)
  per call      the client thread's CPU in connect / sendall / recv / close

A/B two trees by running this script from each (PYTHONPATH=TREE), alternating:

    sudo .venv/bin/python scripts/bench_connpath.py [--conns 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rawtcp.bench.run as bench_run  # noqa: E402
import rawtcp.runtime as runtime  # noqa: E402
from rawtcp.bench.common import ECHO_BYTES, ECHO_MESSAGE, ConnStats, Progress  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conns", type=int, default=2000, help="connections, 10..100000")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not 10 <= a.conns <= 100_000:
        p.error("--conns must be between 10 and 100000")
    loop_cpu: dict[str, float] = {}
    calls: Counter[str] = Counter()
    usage: dict[str, float] = {}

    real_run = runtime.Stack._run

    def run(self) -> None:                     # the loop thread: its CPU time
        t0 = time.thread_time()
        try:
            real_run(self)
        finally:
            loop_cpu["loop"] = time.thread_time() - t0

    def loop(connect, n, deadline, progress=None) -> ConnStats:   # common.conn_loop, timed
        ct = time.thread_time
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        w0 = time.monotonic()
        for i in range(n):
            if time.monotonic() > deadline:
                raise OSError(f"only {i} of {n} connections before the timeout")
            t0 = ct()
            s = connect()
            t1 = ct()
            s.sendall(ECHO_MESSAGE)
            t2 = ct()
            got = b""
            while len(got) < ECHO_BYTES:
                piece = s.recv(ECHO_BYTES - len(got))
                if not piece:
                    raise OSError(f"connection {i + 1}: EOF before the echo")
                got += piece
            t3 = ct()
            s.close()
            t4 = ct()
            if got != ECHO_MESSAGE:
                raise OSError(f"connection {i + 1}: the echo differs")
            calls.update(connect=t1 - t0, sendall=t2 - t1, recv=t3 - t2, close=t4 - t3)
        wall = time.monotonic() - w0
        r1 = resource.getrusage(resource.RUSAGE_THREAD)
        usage.update(wall=wall, user=r1.ru_utime - r0.ru_utime, sys=r1.ru_stime - r0.ru_stime)
        return ConnStats(conns=n, seconds=wall, first_seconds=wall, last_seconds=wall, tenth=n)

    runtime.Stack._run = run
    bench_run.conn_loop = loop
    m = bench_run.conn_rawtcp(1500, a.conns, 300, Progress(False))
    n = a.conns

    def us(x: float) -> float:
        return round(x / n * 1e6, 1)

    out = {"conns": n, "conn_per_s": round(m.value), "wall_us": us(usage["wall"]),
           "user_us": us(usage["user"]), "sys_us": us(usage["sys"]),
           "loop_us": us(loop_cpu.get("loop", 0.0)),
           "per_call_us": {k: us(v) for k, v in calls.items()}}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"{out['conn_per_s']} conn/s; per connection: wall {out['wall_us']} us, client "
              f"user {out['user_us']} sys {out['sys_us']} us, loop thread {out['loop_us']} us")
        print("client CPU per call: " + ", ".join(f"{k} {v} us"
                                                  for k, v in out["per_call_us"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
