"""Buffer autotuning against a real Linux kernel (rawtcp/core/buftune.py; Linux's
tcp_rcv_space_adjust and tcp_sndbuf_expand).

A veth lab with rawtcp on a raw IP link and a 40 ms round trip (rawtcp's own delay rules,
half each way): a bandwidth-delay product far above the 256 KiB both of rawtcp's buffers
start with. Receiving from the kernel, rawtcp's receive buffer grows (the receiver RTT comes
from the kernel's echo of rawtcp's timestamps) and the window rawtcp offers follows it past
256 KiB; sending to the kernel, rawtcp's send buffer grows with its congestion window. Every
byte arrives, checked by sha256. What is asserted does not depend on the machine's speed:
the growth follows the round trip the delay rules make, not a rate.
"""

from __future__ import annotations

import hashlib

from kernel_helpers import kernel_config, kernel_env, recv_hashed

from rawtcp.core.config import MS

PORT_TO_KERNEL = 7320
PORT_FROM_KERNEL = 7321
PATTERN = "buftune"
START = 256 * 1024          # Config's rcvbuf and sndbuf
NBYTES = 4_000_000


def test_both_buffers_grow_on_a_long_path() -> None:
    faults = [("delay", "out ms=20"), ("delay", "in ms=20")]
    cfg = kernel_config(msl=200 * MS)
    assert cfg.rcvbuf == cfg.sndbuf == START
    with kernel_env("rawip", family="ipv4", faults=faults, config=cfg) as env:
        # kernel -> rawtcp
        src = env.lab.server("source", port=PORT_FROM_KERNEL, count=NBYTES, pattern=PATTERN,
                             timeout=120)
        src.wait_ready()
        c = env.connect(PORT_FROM_KERNEL, timeout=60)
        conn = c.tcb.conn
        n, digest = recv_hashed(c)
        info = c.tcp_info()
        c.close()
        sent = src.wait_event("sent", timeout=30)
        assert n == sent["bytes"] == NBYTES and digest == sent["sha256"]
        assert info["rcvbuf"] > START
        assert info["rcv_rtt"] >= 30 * MS            # the 40 ms the delay rules make
        offered = max(s["win"] << info["rcv_wscale"] for s in env.segs(conn, "out"))
        assert offered > START

        # rawtcp -> kernel
        sink = env.lab.server("sink", port=PORT_TO_KERNEL, timeout=120)
        sink.wait_ready()
        data = (PATTERN.encode() * (NBYTES // len(PATTERN) + 1))[:NBYTES]
        c = env.connect(PORT_TO_KERNEL, timeout=60)
        c.sendall(data)
        info = c.tcp_info()
        c.close()
        eof = sink.wait_event("eof", timeout=90)
        assert eof["bytes"] == NBYTES and eof["sha256"] == hashlib.sha256(data).hexdigest()
        assert info["sndbuf"] > START
        assert env.tracer.events("sndbuf")             # traced when it grew
