"""Kernel peers report what they did as JSON events."""

import hashlib

import pytest

from rawtcp.lab import TunLab
from rawtcp.lab.kernel import kernel_sockets
from rawtcp.lab.peer_main import pattern_bytes
from rawtcp.lab.peers import Client, Server

pytestmark = pytest.mark.kernel


@pytest.fixture
def lab():
    with TunLab("dual") as lab:
        lab.open_link()   # the kernel's addresses live on the TUN device
        yield lab


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("host", ["10.77.0.1", "fd77::1"])
def test_echo_server_and_client(lab, host: str) -> None:
    srv = lab.server("echo")
    port = srv.wait_ready()["port"]
    assert port > 0 and srv.port == port
    cl = lab.client(port, host=host, count=100_000, pattern="abc")
    events = cl.result(timeout=20)
    want = sha(pattern_bytes("abc", 100_000))
    assert [e["event"] for e in events] == ["connected", "sent", "eof", "closed", "done"]
    assert events[2] == {**events[2], "bytes": 100_000, "sha256": want}
    srv_events = srv.result(timeout=10)
    assert [e["event"] for e in srv_events] == ["listening", "accepted", "eof", "closed", "done"]
    assert srv_events[2]["sha256"] == want


def test_sink_and_source(lab) -> None:
    sink = lab.server("sink")
    cl = lab.client(sink.wait_ready()["port"], host=lab.kernel_addr, count=5000,
                    pattern="hex:00ff")
    cl.result(timeout=20)
    assert sink.result(timeout=10)[2] == {**sink.event("eof"), "bytes": 5000,
                                          "sha256": sha(b"\x00\xff" * 2500)}
    src = lab.server("source", count=7777, pattern="xyz")
    cl = lab.client(src.wait_ready()["port"], host=lab.kernel_addr)
    cl.result(timeout=20)
    assert cl.event("eof")["sha256"] == sha(pattern_bytes("xyz", 7777))
    assert src.result(timeout=10) and src.event("sent")["bytes"] == 7777


def test_hold_leaves_kernel_in_close_wait(lab) -> None:
    srv = lab.server("hold")
    port = srv.wait_ready()["port"]
    cl = lab.client(port, host=lab.kernel_addr, count=10, no_read=True)
    cl.result(timeout=10)
    srv.wait_event("accepted")
    states = {s["state"] for s in kernel_sockets(lab.netns, port) if s["local_port"] == port}
    assert states == {"CLOSE_WAIT"}   # the listener closed after max_conns=1 accept
    assert srv.returncode is None   # still holding
    srv.stop()
    assert srv.returncode is not None


def test_listen_without_accept_fills_queue(lab) -> None:
    srv = lab.server("echo", no_accept=True, backlog=1)
    port = srv.wait_ready()["port"]
    cl = lab.client(port, host=lab.kernel_addr, no_shutdown=True, never_close=True)
    cl.wait_ready()
    listen = [s for s in kernel_sockets(lab.netns, port) if s["state"] == "LISTEN"]
    assert listen and listen[0]["recv_q"] == 1     # one connection waits in the accept queue
    assert srv.event("accepted") is None


def test_linger0_close_sends_rst(lab) -> None:
    srv = lab.server("echo", linger0=True)
    cl = lab.client(srv.wait_ready()["port"], host=lab.kernel_addr, count=10)
    cl.result(timeout=10)
    assert srv.result(timeout=10) and srv.event("closed")["how"] == "rst"
    err = cl.event("error")
    assert err is not None and err["name"] == "ECONNRESET", cl.events


def test_client_reports_refused_and_peer_timeout(lab) -> None:
    cl = lab.client(1, host=lab.kernel_addr)
    assert cl.wait_event("error")["name"] == "ECONNREFUSED"
    hold = Server(lab.netns, "hold", timeout=0.5).start()
    try:
        hold.wait_ready()
        assert hold.result(timeout=5)[-1]["event"] == "timeout"
    finally:
        hold.stop()


def test_bad_kind_rejected() -> None:
    import errno

    with pytest.raises(OSError) as e:
        Server(None, "nope")
    assert e.value.errno == errno.EINVAL
    assert Client(None, "10.0.0.1", 1).argv[-4:] == ["--connect", "10.0.0.1", "--port", "1"]
