"""rawtcp against real Linux TCP: every way a connection ends (RFC 9293 3.6), watched on both
sides: rawtcp's states from its trace, the kernel's from ss."""

from __future__ import annotations

import errno
import hashlib
import socket

import pytest
from kernel_helpers import LINKS, compact, kernel_env, wait_kernel_state, wait_sampled

from rawtcp.lab.kernel import StatePoller

pytestmark = pytest.mark.kernel


def read_to_eof(s) -> bytes:
    buf = bytearray()
    while True:
        d = s.recv(1 << 20)
        if not d:
            return bytes(buf)
        buf += d


@pytest.mark.parametrize("kind", LINKS)
def test_active_close(kind: str) -> None:
    """RFC 9293 3.6, we close first: FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT, CLOSED while the
    kernel goes CLOSE_WAIT, LAST_ACK, CLOSED. The kernel app closes 0.5 s after our FIN and
    our last ACK is held 300 ms (fault delay) so that ss can see CLOSE_WAIT and LAST_ACK."""
    with kernel_env(kind, faults=[("delay", "out flags=A state=TIME_WAIT ms=300")]) as env:
        srv = env.lab.server("sink", port=7101, close_delay=0.5, timeout=20)
        srv.wait_ready()
        c = env.connect(7101)
        conn = c.tcb.conn
        with StatePoller(env.netns, port=7101, interval=0.01, duration=15) as poll:
            wait_sampled(poll, "ESTABLISHED")
            c.sendall(b"x" * 5000)
            c.close()
            assert env.stack.wait_for(lambda: c.tcb.closed, 10)
            wait_sampled(poll, "GONE")
        assert env.states(conn) == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                    "TIME_WAIT", "CLOSED"]
        assert compact(poll.states()) == ["ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "GONE"]
        assert srv.wait_event("eof")["bytes"] == 5000
        tw = [e for e in env.tracer.events("state") if e.get("conn") == conn
              and e["new"] in ("TIME_WAIT", "CLOSED")]
        assert tw[1]["t"] - tw[0]["t"] >= 2 * env.stack.config.msl   # 2*MSL (RFC 9293 3.6.1)


@pytest.mark.parametrize("kind", LINKS)
def test_passive_close(kind: str) -> None:
    """RFC 9293 3.6, the kernel closes first: we go CLOSE_WAIT, LAST_ACK, CLOSED; the kernel
    FIN_WAIT_2 then TIME_WAIT."""
    with kernel_env(kind) as env:
        ls = env.stack.socket()
        ls.bind(("", 7102))
        ls.listen(2)
        ls.settimeout(5)
        cl = env.lab.client(7102, count=20_000, timeout=20)
        s, _ = ls.accept()
        s.settimeout(5)
        conn = s.tcb.conn
        assert len(read_to_eof(s)) == 20_000
        assert s.state == "CLOSE_WAIT"
        wait_kernel_state(env.netns, 7102, "FIN_WAIT_2")
        s.sendall(b"reply")
        s.close()
        assert env.stack.wait_for(lambda: s.tcb.closed, 5)
        assert env.states(conn) == ["SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK",
                                    "CLOSED"]
        wait_kernel_state(env.netns, 7102, "TIME_WAIT")
        assert cl.wait_event("eof")["bytes"] == 5


@pytest.mark.parametrize("kind", LINKS)
def test_half_close_kernel_keeps_sending(kind: str) -> None:
    """RFC 9293 3.6: after shutdown(SHUT_WR) we sit in FIN_WAIT_2 and still receive
    everything the kernel sends (2 MB here), then its FIN takes us to TIME_WAIT."""
    count = 2 * 1024 * 1024
    with kernel_env(kind) as env:
        srv = env.lab.server("source", port=7103, count=count, pattern="half-close",
                             close_delay=0.2, timeout=20)
        srv.wait_ready()
        c = env.connect(7103)
        conn = c.tcb.conn
        c.shutdown(socket.SHUT_WR)
        data = read_to_eof(c)
        sent = srv.wait_event("sent")
        assert len(data) == count and hashlib.sha256(data).hexdigest() == sent["sha256"]
        fin_out = [e for e in env.segs(conn, "out") if "F" in e["flags"]]
        data_after = [e for e in env.segs(conn, "in") if e["len"] and e["state"] == "FIN_WAIT_2"]
        assert fin_out and len(data_after) > 10, "the kernel's data should follow our FIN"
        assert env.stack.wait_for(lambda: c.tcb.closed, 5)
        assert env.states(conn) == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                    "TIME_WAIT", "CLOSED"]


@pytest.mark.parametrize("kind", LINKS)
def test_simultaneous_close_through_closing(kind: str) -> None:
    """RFC 9293 3.6 case 2 (simultaneous close): our FINs are held 1 s on the way out
    (fault delay), the kernel app closes 0.3 s after accepting, so its FIN reaches us in
    FIN_WAIT_1 without acknowledging our FIN: CLOSING, then TIME_WAIT when it does."""
    with kernel_env(kind, faults=[("delay", "out flags=+F ms=1000")]) as env:
        srv = env.lab.server("source", port=7104, count=0, close_delay=0.3, timeout=20)
        srv.wait_ready()
        c = env.connect(7104)
        conn = c.tcb.conn
        c.close()
        assert env.stack.wait_for(lambda: c.tcb.closed, 10)
        assert env.states(conn) == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "CLOSING",
                                    "TIME_WAIT", "CLOSED"]
        fin_in = [e for e in env.segs(conn, "in") if "F" in e["flags"]]
        assert fin_in[0]["state"] == "FIN_WAIT_1" and fin_in[0]["rack"] == 1  # FIN not acked
        assert srv.wait_event("closed")["how"] == "close"
        wait_kernel_state(env.netns, 7104, "TIME_WAIT")      # it got our FIN last


@pytest.mark.parametrize("kind", LINKS)
def test_so_linger_zero_kernel_sees_econnreset(kind: str) -> None:
    """SO_LINGER {1, 0}: close() sends RST (RFC 9293 3.10.5); the kernel app's recv fails
    with ECONNRESET; we skip TIME_WAIT."""
    with kernel_env(kind) as env:
        srv = env.lab.server("sink", port=7105, timeout=20)
        srv.wait_ready()
        c = env.connect(7105)
        conn = c.tcb.conn
        c.sendall(b"before the reset")
        srv.wait_event("accepted")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1, 0))
        c.close()
        err = srv.wait_event("error")
        assert err["errno"] == errno.ECONNRESET and err["where"] == "recv"
        assert env.states(conn)[-1] == "CLOSED" and "TIME_WAIT" not in env.states(conn)
        assert any("R" in e["flags"] for e in env.segs(conn, "out"))
        wait_kernel_state(env.netns, 7105, (), gone_ok=True)


@pytest.mark.parametrize("kind", LINKS)
def test_our_final_ack_dropped_kernel_retransmits_fin(kind: str) -> None:
    """RFC 9293 3.6.1: TIME_WAIT exists to re-ACK a retransmitted FIN. We close first, our
    last ACK is lost once; the kernel retransmits its FIN, we ACK again from TIME_WAIT and
    the kernel reaches CLOSED while we are still in TIME_WAIT."""
    with kernel_env(kind, faults=[("drop", "out flags=A state=TIME_WAIT nth=1")]) as env:
        srv = env.lab.server("sink", port=7106, timeout=20)
        srv.wait_ready()
        c = env.connect(7106)
        conn = c.tcb.conn
        with StatePoller(env.netns, port=7106, interval=0.01, duration=15) as poll:
            wait_sampled(poll, "ESTABLISHED")   # the poller must know the socket to see it go
            c.close()
            assert env.stack.wait_for(lambda: c.tcb.state.name == "TIME_WAIT", 5)
            wait_sampled(poll, "GONE")
            assert c.tcb.state.name == "TIME_WAIT"     # the kernel finished first
        fins = [e for e in env.segs(conn, "in") if "F" in e["flags"]]
        assert len(fins) == 2 and fins[0]["seq"] == fins[1]["seq"]
        assert fins[1]["state"] == "TIME_WAIT"
        acks_tw = [e for e in env.segs(conn, "out") if e["state"] == "TIME_WAIT"]
        assert len(acks_tw) == 2 and all(e["flags"] == "A" for e in acks_tw)
        drops = [e for e in env.tracer.events("fault") if e["action"] == "drop"]
        assert len(drops) == 1
        assert compact(poll.states())[-2:] == ["LAST_ACK", "GONE"]
        assert env.stack.wait_for(lambda: c.tcb.closed, 5)


@pytest.mark.parametrize("kind", LINKS)
def test_kernel_final_ack_dropped_we_retransmit_fin(kind: str) -> None:
    """RFC 9293 3.6 / RFC 6298 5.4: the kernel closes first; its last ACK is lost once; we
    retransmit our FIN from LAST_ACK at the RTO, the kernel (TIME_WAIT) re-ACKs, CLOSED."""
    with kernel_env(kind, faults=[("drop", "in flags=A state=LAST_ACK nth=1")]) as env:
        srv = env.lab.server("source", port=7107, count=3000, timeout=20)
        srv.wait_ready()
        c = env.connect(7107)
        conn = c.tcb.conn
        assert len(read_to_eof(c)) == 3000
        c.close()
        assert env.stack.wait_for(lambda: c.tcb.closed, 10)
        assert env.states(conn)[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
        fins = [e for e in env.segs(conn, "out") if "F" in e["flags"]]
        assert len(fins) == 2 and fins[0]["seq"] == fins[1]["seq"]
        assert fins[1]["t"] - fins[0]["t"] >= env.stack.config.rto_min
        assert any("F" in e.get("flags", "") for e in env.tracer.events("retransmit"))
        wait_kernel_state(env.netns, 7107, "TIME_WAIT")
