"""Reading the kernel's TCP states with ss."""

import time

import pytest

from rawtcp.lab import TunLab
from rawtcp.lab.kernel import StatePoller, kernel_sockets, parse_duration_ms, parse_ss

pytestmark = pytest.mark.kernel

SAMPLE = """\
LISTEN     0      128    127.0.0.1:5000    0.0.0.0:*    
\t bbr cwnd:10
ESTAB      100    0      127.0.0.1:5000  127.0.0.1:55962
\t ts sack bbr wscale:10,10 rto:204 rtt:0.033/0.016 ato:40 mss:32768 cwnd:10 bytes_received:100 segs_out:1
FIN-WAIT-1 0      1      [fd77::1]:55974 [fd77::2]:5000  timer:(on,1.2sec,3)
\t ts sack cubic wscale:7,7 rto:1600 backoff:3 rtt:0.007/0.003 mss:1428 cwnd:1 ssthresh:7 unacked:1 retrans:1/4 lost:1
TIME-WAIT  0      0      127.0.0.1:55988 127.0.0.1:5000  timer:(timewait,59sec,0)
\t
"""


def test_parse_sample() -> None:
    socks = parse_ss(SAMPLE)
    assert [s["state"] for s in socks] == ["LISTEN", "ESTABLISHED", "FIN_WAIT_1", "TIME_WAIT"]
    est, fw1, tw = socks[1], socks[2], socks[3]
    assert est["recv_q"] == 100 and est["rto_ms"] == 204 and est["rtt_ms"] == 0.033
    assert fw1["local_addr"] == "fd77::1" and fw1["remote_port"] == 5000
    assert fw1["timer"] == {"name": "on", "expires_ms": 1200.0, "retrans": 3}
    assert fw1["retrans"] == 1 and fw1["total_retrans"] == 4 and fw1["backoff"] == 3
    assert tw["timer"] == {"name": "timewait", "expires_ms": 59000.0, "retrans": 0}
    assert socks[0]["remote_port"] == 0


def test_durations() -> None:
    assert parse_duration_ms("204ms") == 204
    assert parse_duration_ms("1min2sec") == 62_000
    assert parse_duration_ms("4.988ms") == 4988  # iproute2: 4 s 988 ms
    assert parse_duration_ms("1min2.005ms") == 62_005
    assert parse_duration_ms("garbage") is None


def test_real_kernel_states_and_poller() -> None:
    """RFC 9293 3.6: the closing side goes FIN_WAIT_2 -> TIME_WAIT; the other CLOSE_WAIT."""
    with TunLab("ipv4") as lab:
        lab.open_link()
        srv = lab.server("sink", close_delay=0.5)
        port = srv.wait_ready()["port"]
        with StatePoller(lab.netns, port=port, interval=0.01, duration=10) as poller:
            cl = lab.client(port, host=lab.kernel_addr, count=1000)
            cl.result(timeout=10)
            srv.result(timeout=10)
            tw = [s for s in kernel_sockets(lab.netns, port) if s["state"] == "TIME_WAIT"]
            # Under load the poller may not have sampled the server socket's end yet: wait
            # (bounded) for the sample that shows it gone, instead of racing the thread.
            ep = f"{lab.kernel_addr}:{port}"
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                    s["local"] == ep and s["state"] == "GONE" for s in list(poller.samples)):
                time.sleep(0.01)
        assert len(tw) == 1 and tw[0]["timer"]["name"] == "timewait"
        assert 0 < tw[0]["timer"]["expires_ms"] <= 60_000
        client_ep = f"{lab.kernel_addr}:{port}"
        client_states = [s["state"] for s in poller.samples if s["remote"] == client_ep]
        server_states = [s["state"] for s in poller.samples if s["local"] == client_ep]
        assert "FIN_WAIT_2" in client_states and client_states[-1] == "TIME_WAIT"
        assert client_states.index("FIN_WAIT_2") < client_states.index("TIME_WAIT")
        assert "CLOSE_WAIT" in server_states and server_states[-1] == "GONE"
        assert all(b["t"] >= a["t"] for a, b in zip(poller.samples, poller.samples[1:]))
        assert poller.errors == []
