"""A SYN flood from the kernel's side of a TUN lab (issue 9; RFC 4987 3.6): 5,000 SYNs from
a spoofed address nobody answers from, then a real Linux client. With SYN cookies (the
default, as Linux tcp_syncookies=1) every SYN is answered, rawtcp keeps no more than its
backlog of half-open connections, and the client is served from its cookie."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

from kernel_helpers import kernel_config, kernel_env

from rawtcp.host.netns import exec_prefix

FLOOD_THEN_CONNECT = r"""
import random, socket, sys
from rawtcp.core.segment import Flags, Options, Packet, Segment
from rawtcp.wire import encode_ip
dst, port, spoofed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
rng = random.Random(1)
for p in rng.sample(range(1024, 65536), 5000):
    syn = Segment(p, port, rng.getrandbits(32), 0, Flags.SYN, 64240, Options(mss=1460))
    raw.sendto(encode_ip(Packet(spoofed, dst, syn)), (dst, 0))
s = socket.create_connection((dst, port), timeout=20)
s.sendall(b"hello")
print(s.recv(10).decode(), flush=True)
"""


def test_syn_flood_over_tun_client_served_from_its_cookie() -> None:
    with kernel_env("tun", family="ipv4", config=kernel_config(synack_retries=5)) as env:
        ls = env.stack.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("", 7041))
        ls.listen(128)
        ls.settimeout(30)
        served: list[bytes] = []

        def serve() -> None:
            s, _ = ls.accept()
            s.settimeout(10)
            data = s.recv(10)
            s.sendall(data)
            served.append(data)
            s.close()

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        spoofed = env.lab.rawtcp_addr.rsplit(".", 1)[0] + ".99"    # on no host
        p = subprocess.run(exec_prefix(env.netns) + [sys.executable, "-c", FLOOD_THEN_CONNECT,
                                                     env.lab.rawtcp_addr, "7041", spoofed],
                           capture_output=True, text=True, timeout=60)
        th.join(10)
        assert p.returncode == 0, p.stderr[-2000:]
        assert p.stdout.strip() == "hello" and served == [b"hello"]
        c = env.stack.core.counters
        assert c["syncookies_sent"] >= 5000 - 128      # none lost in the device's queue
        assert c["syncookies_recv"] == 1               # the client came in by its cookie
        assert len(env.stack.core.connections()) <= 128 + 1
