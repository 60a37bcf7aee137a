"""The kernel's congestion state sampled from TCP_INFO over sock_diag (rawtcp.lab.kernel:
TcpInfoReader, CcPoller) while a Linux sender moves data to a Linux receiver in a lab; the
samples become `kernel` events the cwnd plot draws. Needs root (network namespaces)."""

from __future__ import annotations

import errno
import time

import pytest

from rawtcp.host.netns import exec_prefix
from rawtcp.host.system import run as run_cmd
from rawtcp.lab import VethLab
from rawtcp.lab.kernel import CcPoller, TcpInfoReader
from rawtcp.lab.peers import Client
from rawtcp.report.ccplots import cwnd_series

PORT = 5002
SIZE = 4_000_000


def test_poller_samples_a_linux_sender(tmp_path) -> None:
    events: list[dict] = []
    t00 = time.monotonic_ns()
    with VethLab(mode="rawip", family="ipv4") as lab:
        want = run_cmd(exec_prefix(lab.rawtcp_netns)
                       + ["sysctl", "-n", "net.ipv4.tcp_congestion_control"]).stdout.strip()
        srv = lab.server("sink", port=PORT, timeout=60)
        srv.wait_ready()
        with CcPoller(lab.rawtcp_netns, PORT, lambda: (time.monotonic_ns() - t00) // 1000,
                      events.append, interval=0.0005, duration=30, families=("ipv4",)) as p:
            cl = Client(lab.rawtcp_netns, lab.kernel_addr, PORT, count=SIZE, timeout=30)
            with cl:
                done = cl.result(30)
            # the sender's socket is followed until it leaves ESTABLISHED
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                    e["state"] != "ESTABLISHED" for e in events):
                time.sleep(0.01)
        assert any(e.get("event") == "sent" and e.get("bytes") == SIZE for e in done), done
        assert not p.errors and p.samples > 0
    data = [e for e in events if e.get("cwnd") is not None]
    assert data, events
    local = data[0]["local"]
    assert local.startswith(lab.rawtcp_addr + ":") and data[0]["remote"] == \
        f"{lab.kernel_addr}:{PORT}"
    assert all(e["ev"] == "kernel" and e["mss"] == 1448 and e["cwnd"] >= 1 for e in data)
    assert all(e["algo"] == want for e in data)
    assert all(e["rtt"] > 0 and e["rto"] >= 200_000 for e in data)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert events[-1]["state"] != "ESTABLISHED"        # followed to its end
    s = cwnd_series(events)
    assert list(s) == [f"kernel {want} {local}>{lab.kernel_addr}:{PORT}"]


def test_reader_arguments_and_lookup_of_a_gone_socket() -> None:
    with pytest.raises(OSError) as e:
        TcpInfoReader(None, families=("ipx",))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        TcpInfoReader("rawtcp-no-such-namespace-x")
    assert e.value.errno == errno.ENOENT
    with VethLab(mode="rawip", family="ipv4") as lab:
        srv = lab.server("hold", port=PORT, timeout=30)
        srv.wait_ready()
        with TcpInfoReader(lab.kernel_netns) as r:
            listening = r.sockets(PORT)
            assert [s["state"] for s in listening] == ["LISTEN"]
            assert r.lookup(listening[0])["state"] == "LISTEN"
            srv.stop()
            deadline = time.monotonic() + 5
            while r.lookup(listening[0]) is not None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert r.lookup(listening[0]) is None
