#!/usr/bin/env python3
"""How rawtcp's costs grow with the number of connections (issue 8's "flat costs").

Two rawtcp stacks in this process, joined by an in-process MemoryLink pair (no root needed),
each with its own event-loop thread, talking through the socket API:

  echo        median round trip of a 100-byte echo on one connection, with 0 and with N
              idle ESTABLISHED connections open beside it (the ratio is what matters)
  memory      bytes of Python heap (tracemalloc) per idle ESTABLISHED connection, both ends
              counted (core state and socket object), divided by 2 (one end on one stack)
  fds         file descriptors this process holds per open socket: plain sockets, and
              sockets whose fileno() was asked for (made for selectors)
  conn/s      connect + 100 B echo + close, rawtcp closing first, C in a row, with the
              first and last 10 % reported separately (flat means the last ~= the first)

    .venv/bin/python scripts/bench_scale.py [--idle 10000] [--conns 2000] [--echoes 300]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import sys
import threading
import time
import tracemalloc

from rawtcp.core.config import Config
from rawtcp.link.memory import MemoryLink
from rawtcp.runtime import Stack

A, B = "10.9.0.1", "10.9.0.2"
PORT = 7000


def _config() -> Config:
    # Linux-like defaults; a small TIME_WAIT keeps a long conn/s run inside the port range
    return Config(ephemeral_low=10000, ephemeral_high=65000)


class EchoServer:
    """Echo server on stack b: one thread per accepted connection that reads, echoes."""

    def __init__(self, st: Stack) -> None:
        self.ls = st.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((B, PORT))
        self.ls.listen(4096)
        self.conns: list = []
        self.stop = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self) -> None:
        self.ls.settimeout(0.5)
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except (TimeoutError, OSError):
                continue
            self.conns.append(c)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c) -> None:
        c.settimeout(120)
        try:
            while d := c.recv(65536):
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()


def echo_once(s, payload: bytes) -> float:
    t0 = time.perf_counter()
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += s.recv(65536)
    return time.perf_counter() - t0


def median_echo(s, n: int) -> float:
    payload = b"x" * 100
    for _ in range(20):
        echo_once(s, payload)
    return statistics.median(echo_once(s, payload) for _ in range(n))


def count_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--conns", type=int, default=2000)
    p.add_argument("--echoes", type=int, default=300)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    res: dict = {}
    la, lb = MemoryLink.pair(A, B)
    with Stack(la, _config(), name="scale-a") as sa, Stack(lb, _config(), name="scale-b") as sb:
        srv = EchoServer(sb)
        idle_ls = sb.socket()
        idle_ls.bind((B, PORT + 1))
        idle_ls.listen(4096)
        accepted: list = []

        def accept_idle() -> None:          # the server ends stay open and idle too
            idle_ls.settimeout(30)
            try:
                while len(accepted) < a.idle:
                    accepted.append(idle_ls.accept()[0])
            except OSError:
                pass

        acc = threading.Thread(target=accept_idle, daemon=True)
        acc.start()
        s = sa.socket()
        s.settimeout(10)
        s.connect((B, PORT))
        res["echo_ms_0"] = median_echo(s, a.echoes) * 1e3
        # idle connections: memory and fds
        gc.collect()
        fd0 = count_fds()
        tracemalloc.start()
        m0 = tracemalloc.get_traced_memory()[0]
        idle = []
        for _ in range(a.idle):
            c = sa.socket()
            c.settimeout(10)
            c.connect((B, PORT + 1))
            idle.append(c)
        acc.join(60)
        gc.collect()
        m1 = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        res["idle"] = a.idle
        res["bytes_per_idle_conn"] = (m1 - m0) / a.idle / 2
        res["fds_per_socket"] = (count_fds() - fd0) / (2 * a.idle)   # both ends are sockets
        res[f"echo_ms_{a.idle}"] = median_echo(s, a.echoes) * 1e3
        res["echo_ratio"] = res[f"echo_ms_{a.idle}"] / res["echo_ms_0"]
        few = idle[:200]
        fd1 = count_fds()
        for c in few:
            c.fileno()
        res["fds_per_polled_socket"] = (count_fds() - fd1) / len(few)
        for c in idle + accepted:
            c.close()
        s.close()

        def quiet(st: Stack) -> bool:     # the closes above are done (only TIME_WAIT left)
            return all(t.state.name == "TIME_WAIT" for t in st.core.connections()
                       if t.local[1] != PORT)

        sa.wait_for(lambda: quiet(sa), 120)
        sb.wait_for(lambda: quiet(sb), 120)
        # connection rate
        times = []
        payload = b"y" * 100
        t_all = time.perf_counter()
        for _ in range(a.conns):
            t0 = time.perf_counter()
            c = sa.socket()
            c.settimeout(10)
            c.connect((B, PORT))
            echo_once(c, payload)
            c.close()
            times.append(time.perf_counter() - t0)
        wall = time.perf_counter() - t_all
        k = max(1, a.conns // 10)
        res["conns"] = a.conns
        res["conn_per_s"] = a.conns / wall
        res["conn_per_s_first10"] = k / sum(times[:k])
        res["conn_per_s_last10"] = k / sum(times[-k:])
        srv.stop = True
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        for key, v in res.items():
            print(f"{key:24} {v:10.3f}" if isinstance(v, float) else f"{key:24} {v:10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
