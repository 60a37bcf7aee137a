#!/usr/bin/env python3
"""Throughput of rawtcp against a real Linux kernel, over the TUN and AF_PACKET links.

For each link a fresh lab (private namespaces, removed afterwards) and a rawtcp Stack with
the default Config (Linux-like). Two transfers of --mb MiB (default 10):

  up    rawtcp -> kernel sink      (sendall, then close; the sink reports bytes + sha256)
  down  kernel source -> rawtcp    (recv until EOF; the source reports bytes + sha256)

Each prints MiB/s (wall clock from connect to the peer's last byte), segments/s (rawtcp's
segments in + out during the transfer), this process's CPU time (user + system, all
threads: the socket caller and the stack's event loop), CPU per MiB and retransmissions
(rtx). The sha256 of what arrived is compared with what was sent; a mismatch exits 1.

Needs root (or NET_ADMIN, NET_RAW, SYS_ADMIN and /dev/net/tun).

    .venv/bin/python scripts/bench_transfer.py [--links tun,packet] [--mb 10] [--repeat 1]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass

from rawtcp.core.config import Config
from rawtcp.lab import TunLab, VethLab
from rawtcp.runtime import Stack

PORT_UP, PORT_DOWN = 7301, 7302


@dataclass
class Result:
    link: str
    direction: str
    nbytes: int
    wall: float
    cpu: float
    segments: int
    retransmits: int
    sha_ok: bool

    def row(self) -> str:
        mb = self.nbytes / (1 << 20)
        return (f"{self.link:7} {self.direction:5} {mb:7.1f} MiB {self.wall:7.2f} s "
                f"{mb / self.wall:8.2f} MiB/s {self.segments / self.wall:9.0f} seg/s "
                f"{self.cpu:6.2f} s CPU {self.cpu / mb * 1000:6.1f} ms/MiB "
                f"{self.retransmits:5d} rtx  sha256 {'ok' if self.sha_ok else 'MISMATCH'}")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _segments(st: Stack) -> int:
    c = st.core.counters
    return int(c.get("segments_in", 0)) + int(c.get("segments_out", 0))


def _retransmits(st: Stack) -> int:
    return sum(int(t.info().get("total_retrans", 0)) for t in st.core.connections())


def make_lab(kind: str):
    return TunLab(family="ipv4") if kind == "tun" else VethLab(mode="packet", family="ipv4")


def bench_up(kind: str, lab, st: Stack, data: bytes) -> Result:
    sink = lab.server("sink", port=PORT_UP, timeout=300)
    sink.wait_ready()
    s = st.socket()
    s.settimeout(60)
    seg0, cpu0, t0 = _segments(st), _cpu(), time.monotonic()
    s.connect((lab.kernel_addr, PORT_UP))
    s.sendall(data)
    s.close()
    eof = sink.wait_event("eof", timeout=120)
    wall, cpu = time.monotonic() - t0, _cpu() - cpu0
    rtx = int(s.tcb.info().get("total_retrans", 0))
    ok = eof["bytes"] == len(data) and eof["sha256"] == hashlib.sha256(data).hexdigest()
    return Result(kind, "up", len(data), wall, cpu, _segments(st) - seg0, rtx, ok)


def bench_down(kind: str, lab, st: Stack, nbytes: int) -> Result:
    src = lab.server("source", port=PORT_DOWN, count=nbytes, pattern="bench", timeout=300)
    src.wait_ready()
    s = st.socket()
    s.settimeout(60)
    h = hashlib.sha256()
    n = 0
    seg0, cpu0, t0 = _segments(st), _cpu(), time.monotonic()
    s.connect((lab.kernel_addr, PORT_DOWN))
    while d := s.recv(1 << 20):
        h.update(d)
        n += len(d)
    wall, cpu = time.monotonic() - t0, _cpu() - cpu0
    rtx = int(s.tcb.info().get("total_retrans", 0))
    s.close()
    sent = src.wait_event("sent", timeout=60)
    ok = n == nbytes == sent["bytes"] and h.hexdigest() == sent["sha256"]
    return Result(kind, "down", n, wall, cpu, _segments(st) - seg0, rtx, ok)


def run(kind: str, nbytes: int) -> list[Result]:
    data = (bytes(range(251)) * (nbytes // 251 + 1))[:nbytes]
    with make_lab(kind) as lab, Stack(lab.open_link(), Config(), name=f"bench-{kind}") as st:
        return [bench_up(kind, lab, st, data), bench_down(kind, lab, st, nbytes)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--links", default="tun,packet", help="comma list of tun, packet")
    p.add_argument("--mb", type=float, default=10.0, help="MiB each way")
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args(argv)
    kinds = [k.strip() for k in a.links.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ("tun", "packet")]
    if bad:
        p.error(f"unknown link(s) {bad}; use tun and/or packet")
    nbytes = int(a.mb * 1024 * 1024)
    results: list[Result] = []
    try:
        for _ in range(a.repeat):
            for kind in kinds:
                for r in run(kind, nbytes):
                    print(r.row(), flush=True)
                    results.append(r)
    except PermissionError as e:
        print(f"bench_transfer: {e.strerror}", file=sys.stderr)
        return 2
    return 0 if all(r.sha_ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
