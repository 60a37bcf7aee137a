"""Loss rules inside the kernel's namespace, checked against real kernel traffic."""

import subprocess
import sys

import pytest

from rawtcp.host import nft
from rawtcp.lab import TunLab
from rawtcp.lab.netem import Loss, NthDrop, RandomDrop, flags_expr

pytestmark = pytest.mark.kernel


@pytest.fixture
def lab():
    with TunLab("dual") as lab:
        lab.open_link()
        yield lab


def udp_burst(netns: str, host: str, port: int, n: int) -> None:
    code = (f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for i in range({n}):\n"
            f"    try: s.sendto(b'x', ('{host}', {port}))\n"
            f"    except PermissionError: pass\n")   # EPERM: dropped at the output hook
    subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code], check=True,
                   timeout=20)


def test_random_drop_percentage(lab) -> None:
    with Loss(lab.netns, [RandomDrop(50, proto="udp", match="udp dport 9999")]) as loss:
        udp_burst(lab.netns, "127.0.0.1", 9999, 400)
        udp_burst(lab.netns, "127.0.0.1", 9998, 50)   # not matched
        dropped = loss.dropped()
        table = loss.table
        assert nft.table_exists(lab.netns, "inet", table)
    assert 120 <= dropped <= 280   # binomial(400, 0.5): mean 200, sd 10
    assert not nft.table_exists(lab.netns, "inet", table)


def test_random_drop_of_tcp_still_transfers(lab) -> None:
    srv = lab.server("sink")
    port = srv.wait_ready()["port"]
    with Loss(lab.netns, [RandomDrop(100, flags="S", match=f"tcp dport {port}")]) as loss:
        cl = lab.client(port, host=lab.kernel_addr, connect_timeout=1.5, count=10)
        assert cl.wait_event("error")["name"] == "ETIMEDOUT"
        assert loss.dropped() >= 2          # the SYN and at least one retransmission
    with Loss(lab.netns, [RandomDrop(20, match=f"tcp dport {port}")]) as loss:
        cl = lab.client(port, host=lab.kernel_addr, count=3_000_000, pattern="q")
        cl.result(timeout=60)
        assert srv.result(timeout=60) and srv.event("eof")["bytes"] == 3_000_000
        assert loss.dropped() > 0


@pytest.mark.parametrize("host", ["10.77.0.1", "fd77::1"])
def test_drop_first_syn_once_per_flow(lab, host: str) -> None:
    """The dropped SYN is retransmitted after the initial RTO of 1 s (RFC 6298 2.1)."""
    srv = lab.server("sink", max_conns=2)
    port = srv.wait_ready()["port"]
    with Loss(lab.netns, [NthDrop(1, flags="S", match=f"tcp dport {port}")]) as loss:
        first = lab.client(port, host=host)
        first.result(timeout=10)
        assert first.event("connected")["t"] >= 0.9
        assert loss.dropped() == 1
        second = lab.client(port, host=host)   # a new flow: its first SYN is dropped too
        second.result(timeout=10)
        assert loss.dropped() == 2
        assert [c["comment"] for c in loss.counters() if c["packets"]] == \
            [f"r0-nth1-{'ip' if ':' not in host else 'ip6'}"]


def test_drop_third_segment_of_flow(lab) -> None:
    """Client to server: SYN (1), ACK (2), FIN (3, dropped once, then retransmitted)."""
    srv = lab.server("sink")
    port = srv.wait_ready()["port"]
    with Loss(lab.netns, [NthDrop(3, match=f"tcp dport {port}")]) as loss:
        cl = lab.client(port, host=lab.kernel_addr)
        cl.result(timeout=10)
        srv.result(timeout=10)
        assert srv.event("eof")["bytes"] == 0
        assert loss.dropped() == 1


def test_flags_expression() -> None:
    assert flags_expr("SA") == "tcp flags & (fin|syn|rst|ack) == syn|ack "
    assert flags_expr("FPA") == "tcp flags & (fin|syn|rst|psh|ack) == fin|psh|ack "
    with pytest.raises(OSError):
        flags_expr("Z")
