#!/usr/bin/env python3
"""How fast is the core, and how big is a connection?

    .venv/bin/python scripts/bench_sim.py [--mb 10] [--conns 1000] [--quick]

1. Throughput in the simulator (rawtcp.sim): a one-way transfer of ``--mb`` MB from stack a
   to stack b (default options: SACK, timestamps, window scaling), at 0% and 5% loss, 10 ms
   one-way delay, including the close (the simulated time includes 60 s of TIME_WAIT, which
   costs no wall time). Reports wall-clock MB/s of payload, segments processed per second
   (segments that arrived at either stack, data and ACKs, over the wall time).
   Wall time includes the simulator's event heap, so it is a lower bound for the core alone.
2. Memory per idle ESTABLISHED connection: ``--conns`` passive opens in one core Stack
   (SYN + ACK from distinct peer ports, accepted), measured with tracemalloc (allocated
   bytes after minus before, divided by the number of connections).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc

from rawtcp.core.config import SEC, Config
from rawtcp.core.segment import Flags, Options, Packet, Segment
from rawtcp.core.stack import Stack
from rawtcp.core.tcb import State
from rawtcp.sim import A_ADDR, B_ADDR, Sim


def one_way(nbytes: int, loss: float, seed: int = 1) -> dict:
    """Send nbytes from a to b, then close both sides; returns measurements."""
    sim = Sim(seed=seed, loss=loss)
    lst = sim.b.listen(sim.b.bind(B_ADDR, 5000), 16)
    data = memoryview(random.Random(seed).randbytes(nbytes))
    state = {"off": 0, "got": 0, "server": None, "shut": False, "done": False}
    client = sim.a.connect(None, A_ADDR, B_ADDR, 5000, 0)

    def hook(s: Sim) -> None:
        now = s.now
        if client.state is State.ESTABLISHED or client.state is State.CLOSE_WAIT:
            while state["off"] < nbytes:
                n = client.send(data[state["off"]:state["off"] + 262144], now)
                if n == 0:
                    break
                state["off"] += n
            if state["off"] >= nbytes and not state["shut"]:
                client.close(now)
                state["shut"] = True
        srv = state["server"]
        if srv is None:
            srv = state["server"] = lst.accept()
        if srv is not None and not state["done"]:
            while srv.readable:
                state["got"] += len(srv.recv(1 << 20, now))
            if srv.eof:
                srv.close(now)
                state["done"] = True

    sim.hooks.append(hook)
    t0 = time.perf_counter()
    ok = sim.run_until(lambda: state["done"] and client.closed and state["server"].closed,
                       3600 * SEC)
    wall = time.perf_counter() - t0
    assert ok and state["got"] == nbytes, (ok, state["got"])
    segs = sum(st.counters["segments_in"] for st in (sim.a, sim.b))  # each processed once
    return {
        "loss": loss,
        "wall_s": wall,
        "mb_per_s": nbytes / 1e6 / wall,
        "segments": segs,
        "segments_per_s": segs / wall,
        "sim_s": sim.now / SEC,
        "retrans": client.info()["total_retrans"],
    }


def idle_connection_memory(n: int) -> float:
    """Bytes allocated per idle ESTABLISHED connection in one core Stack."""
    st = Stack(Config(), isn=lambda *a: 1000, rng=random.Random(1))
    lst = st.listen(st.bind("10.0.0.1", 80), n + 1)
    opts = Options(mss=1460, wscale=7, sack_permitted=True, timestamps=(1, 0))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    conns = []
    for i in range(n):
        port = 10000 + i
        st.on_packet(Packet("10.0.0.2", "10.0.0.1",
                            Segment(port, 80, 5000, 0, Flags.SYN, 64240, opts)), i)
        st.on_packet(Packet("10.0.0.2", "10.0.0.1",
                            Segment(port, 80, 5001, 1001, Flags.ACK, 502,
                                    Options(timestamps=(2, 0)))), i)
        st.take_packets()
        t = lst.accept()
        assert t is not None and t.state is State.ESTABLISHED
        conns.append(t)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    diff = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return diff / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=10.0, help="payload per transfer (MB)")
    ap.add_argument("--conns", type=int, default=1000, help="idle connections to measure")
    ap.add_argument("--quick", action="store_true", help="1 MB and 100 connections")
    a = ap.parse_args()
    mb = 1.0 if a.quick else a.mb
    conns = 100 if a.quick else a.conns
    nbytes = int(mb * 1_000_000)
    print(f"one-way transfer of {mb:g} MB in the simulator (10 ms one-way delay)")
    print(f"{'loss':>5} {'MB/s':>7} {'segments':>9} {'seg/s':>8} {'wall s':>7} {'sim s':>7}"
          f" {'retrans':>7}")
    for loss in (0.0, 0.05):
        r = one_way(nbytes, loss)
        print(f"{loss:>5.0%} {r['mb_per_s']:>7.2f} {r['segments']:>9} "
              f"{r['segments_per_s']:>8.0f} {r['wall_s']:>7.2f} {r['sim_s']:>7.1f}"
              f" {r['retrans']:>7}")
    per = idle_connection_memory(conns)
    print(f"memory per idle ESTABLISHED connection ({conns} in one Stack): "
          f"{per:,.0f} bytes")


if __name__ == "__main__":
    main()
