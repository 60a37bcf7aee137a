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

``--virtual`` (no root, no kernel): the same loop against rawtcp.bench.echopeer's in-process
echo server, which answers inside rawtcp's link writes as Linux would (SYN-ACK, a quick ACK
and the echo, FIN-ACK). It prints rawtcp's own CPU per connection (the peer's share taken
out), per call, and per layer (core, codec, runtime, socket, link) from a cProfile run of the
same loop (the profile's shares, scaled to the unprofiled CPU), with Python calls per
connection: what a redesign of the per-connection path would have to halve.

    .venv/bin/python scripts/bench_connpath.py --virtual [--conns 3000] [--json]

``--plain`` (no root): that loop and nothing else (50 warm-up connections, then
``--conns``), for a counter outside Python; instructions per connection, the same on every
run of the same tree (PYTHONHASHSEED fixed; the peer's own work included):

    for n in 50 450; do PYTHONHASHSEED=0 valgrind --tool=callgrind \
        --callgrind-out-file=/dev/null .venv/bin/python scripts/bench_connpath.py \
        --plain --conns $n 2>&1 | grep Collected; done    # (I450 - I50) / 400

``--bytecodes`` (no root): the same virtual loop, counting the Python bytecodes rawtcp runs
per connection on the calling thread (the peer's own work left out), by file and by
function. Unlike a time, the count is the same from run to run: a change to the
per-connection path shows as an exact difference, whatever the machine is doing.

    .venv/bin/python scripts/bench_connpath.py --bytecodes [--conns 200] [--top 40]
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
    p.add_argument("--virtual", action="store_true",
                   help="against an in-process echo peer (no kernel, no root)")
    p.add_argument("--plain", action="store_true",
                   help="only run the virtual loop (no loop thread, nothing measured): for "
                        "an outside counter such as callgrind")
    p.add_argument("--bytecodes", action="store_true",
                   help="count rawtcp's bytecodes per connection (virtual peer, no root)")
    p.add_argument("--top", type=int, default=30, help="functions listed by --bytecodes, 0..500")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not 10 <= a.conns <= 100_000:
        p.error("--conns must be between 10 and 100000")
    if not 0 <= a.top <= 500:
        p.error("--top must be between 0 and 500")
    if a.bytecodes or a.plain:
        return bytecodes(a)
    return virtual(a) if a.virtual else kernel(a)


def timed_loop(connect, n: int, deadline: float, calls: Counter[str]) -> None:
    """common.conn_loop's steps, with the calling thread's CPU per call added to ``calls``."""
    ct = time.thread_time
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


LAYERS = (("/rawtcp/core/", "core"), ("/rawtcp/wire/", "codec"), ("/rawtcp/link/", "link"),
          ("/rawtcp/runtime.py", "runtime"), ("/rawtcp/pipeline.py", "runtime"),
          ("/rawtcp/socket.py", "socket"), ("/rawtcp/sockbase.py", "socket"),
          ("/rawtcp/bench/echopeer.py", "peer"))


def _layer(func: tuple) -> str | None:
    path = func[0]
    for part, name in LAYERS:
        if part in path:
            return name
    return None


def layer_shares(stats: dict) -> dict[str, float]:
    """Seconds by layer from cProfile's raw stats: a rawtcp function's own time goes to its
    layer, a builtin's or the standard library's to the layers of its callers (pro rata).
    The peer's work is left out: its own functions, the codec calls it makes and its
    deliveries into the link's queue (MemoryLink._deliver, which only the peer calls)."""
    out: Counter[str] = Counter()
    peer_cum = deliver_cum = 0.0
    for func, (_cc, _nc, tt, ct, callers) in stats.items():
        layer = _layer(func)
        if layer is not None:
            out[layer] += tt
            if layer == "peer" and func[2] == "send":
                peer_cum += ct
            elif layer == "link" and func[2] == "_deliver":
                deliver_cum += ct
            continue
        for caller, (_c, _n, ctt, _ct) in callers.items():
            out[_layer(caller) or "other"] += ctt
    own_peer = out.pop("peer", 0.0)
    out["link"] -= deliver_cum
    out["codec"] -= max(0.0, peer_cum - own_peer - deliver_cum)
    return dict(out)


def virtual(a) -> int:
    import cProfile

    from rawtcp.bench.echopeer import EchoPeerLink

    n = a.conns
    link = EchoPeerLink()
    peer_cpu = [0.0]
    real_send = link.send

    def send(pkt: bytes) -> None:        # the peer's CPU, to take out of rawtcp's
        t0 = time.thread_time()
        try:
            real_send(pkt)
        finally:
            peer_cpu[0] += time.thread_time() - t0

    link.send = send                     # type: ignore[method-assign]
    calls: Counter[str] = Counter()
    with runtime.Stack(link, name="bench-connpath") as st:
        def connect():
            s = st.socket()
            s.settimeout(5)
            s.connect((link.peer_addr, 7))
            return s

        deadline = time.monotonic() + 600
        timed_loop(connect, min(200, n), deadline, Counter())        # warm-up
        peer_cpu[0] = 0.0
        c0, w0 = time.thread_time(), time.monotonic()
        timed_loop(connect, n, deadline, calls)
        cpu, wall = time.thread_time() - c0, time.monotonic() - w0
        peer = peer_cpu[0]
        link.send = real_send            # type: ignore[method-assign]
        prof = cProfile.Profile()
        prof.enable()
        try:
            timed_loop(connect, n, deadline, Counter())
        finally:
            prof.disable()
    prof.create_stats()
    shares = layer_shares(prof.stats)              # type: ignore[attr-defined]
    total = sum(shares.values()) or 1.0
    own_us = (cpu - peer) / n * 1e6
    ncalls = sum(v[1] for v in prof.stats.values()) / n  # type: ignore[attr-defined]
    out = {"conns": n, "conn_per_s": round(n / wall), "cpu_us": round(own_us, 1),
           "peer_us": round(peer / n * 1e6, 1),
           "per_call_us": {k: round(v / n * 1e6, 1) for k, v in calls.items()},
           "layers_us": {k: round(v / total * own_us, 1)
                         for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
           "python_calls": round(ncalls)}
    if a.json:
        print(json.dumps(out))
        return 0
    print(f"virtual echo peer: {out['conn_per_s']:,} conn/s; rawtcp CPU per connection "
          f"{out['cpu_us']} us (the peer's {out['peer_us']} us not counted), "
          f"{out['python_calls']:,} calls (cProfile)")
    print("per call (with the peer's share): " + ", ".join(
        f"{k} {v} us" for k, v in out["per_call_us"].items()))
    print("by layer: " + ", ".join(f"{k} {v} us" for k, v in out["layers_us"].items()))
    return 0


def bytecodes(a) -> int:
    """Bytecodes per connection of the virtual loop, by sys.settrace's opcode events."""
    from rawtcp.bench.echopeer import EchoPeerLink

    link = EchoPeerLink()
    peer_code = type(link).send.__code__
    ops: Counter[tuple[str, str, int]] = Counter()
    in_peer = [False]

    def peer_frame(frame, ev, arg):      # the peer's send: nothing under it is counted
        if ev == "return":
            in_peer[0] = False
        return peer_frame

    def local(frame, ev, arg):
        if ev == "opcode":
            co = frame.f_code
            ops[(co.co_filename, co.co_name, co.co_firstlineno)] += 1
        return local

    def trace(frame, ev, arg):
        if in_peer[0]:
            return None
        if frame.f_code is peer_code:
            in_peer[0] = True
            return peer_frame
        frame.f_trace_opcodes = True
        return local

    n = a.conns
    # no loop thread: the calling thread does all the work (the peer answers inside its
    # writes), so the count does not depend on which thread got to a packet first
    with runtime.Stack(link, name="bench-bytecodes", start=False) as st:
        def connect():
            s = st.socket()
            s.settimeout(5)
            s.connect((link.peer_addr, 7))
            return s

        def loop(k: int) -> None:        # common.conn_loop's steps, nothing else
            for _ in range(k):
                s = connect()
                s.sendall(ECHO_MESSAGE)
                got = b""
                while len(got) < ECHO_BYTES:
                    piece = s.recv(ECHO_BYTES - len(got))
                    if not piece:
                        raise OSError("EOF before the echo")
                    got += piece
                s.close()

        loop(50)                                                    # warm-up
        if a.plain:
            loop(a.conns)
            return 0
        sys.settrace(trace)
        try:
            loop(n)
        finally:
            sys.settrace(None)
    # everything the calling thread ran but this script's loop: rawtcp, the standard
    # library it calls, code it generates ("<string>")
    mine = {k: v for k, v in ops.items() if not k[0].endswith("bench_connpath.py")}

    def where(path: str) -> str:
        return path[path.rindex("/rawtcp/") + 1:] if "/rawtcp/" in path else path

    by_file: Counter[str] = Counter()
    for k, v in mine.items():
        by_file[where(k[0])] += v
    out = {"conns": n, "bytecodes": round(sum(mine.values()) / n),
           "by_file": {f: round(v / n) for f, v in by_file.most_common()},
           "top": [[f"{where(k[0])}:{k[2]} {k[1]}", round(v / n)]
                   for k, v in Counter(mine).most_common(a.top)]}
    if a.json:
        print(json.dumps(out))
        return 0
    print(f"rawtcp bytecodes per connection (virtual echo peer, calling thread): "
          f"{out['bytecodes']:,}")
    for f, v in out["by_file"].items():
        print(f"  {v:7,} {f}")
    if out["top"]:
        print("by function:")
        for name, v in out["top"]:
            print(f"  {v:7,} {name}")
    return 0


def kernel(a) -> int:
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
        r0 = resource.getrusage(resource.RUSAGE_THREAD)
        w0 = time.monotonic()
        timed_loop(connect, n, deadline, calls)
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
