"""rawtcp against real Linux TCP: opens and bulk data, over the TUN link, the AF_PACKET link
and the raw IP link, each test in its own lab (private namespaces, unique names)."""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest
from kernel_helpers import LINKS, kernel_config, kernel_env, recv_hashed, wait_kernel_state

from rawtcp.lab import VethLab
from rawtcp.link import discover
from rawtcp.runtime import Stack

pytestmark = pytest.mark.kernel

TEN_MB = 10 * 1024 * 1024


def pattern_sha(pattern: str, count: int) -> str:
    unit = pattern.encode()
    return hashlib.sha256((unit * (count // len(unit) + 1))[:count]).hexdigest()


@pytest.mark.parametrize("kind", LINKS)
def test_active_open_to_kernel_listener(kind: str) -> None:
    """RFC 9293 3.5: our SYN, the kernel's SYN-ACK, our ACK; both sides ESTABLISHED and an
    echo goes through."""
    with kernel_env(kind) as env:
        srv = env.lab.server("echo", port=7001, timeout=20)
        srv.wait_ready()
        c = env.connect(7001)
        assert c.state == "ESTABLISHED"
        ks = wait_kernel_state(env.netns, 7001, "ESTABLISHED")
        assert ks["remote_port"] == c.getsockname()[1]
        syn = env.segs(c.tcb.conn, "out")[0]
        assert syn["flags"] == "S" and syn["opts"]["mss"]
        synack = env.segs(c.tcb.conn, "in")[0]
        assert synack["flags"] == "SA" and synack["rack"] == 1
        c.sendall(b"hello kernel")
        got = b""
        while len(got) < 12:
            got += c.recv(100)
        assert got == b"hello kernel"
        host, port = srv.wait_event("accepted")["peer"]   # dual-stack: v4-mapped
        assert (host.removeprefix("::ffff:"), port) == c.getsockname()
        c.close()


@pytest.mark.parametrize("kind", LINKS)
def test_passive_open_from_kernel_client(kind: str) -> None:
    """RFC 9293 3.5 from the other side: LISTEN, SYN_RECEIVED, ESTABLISHED; accept() gives
    the kernel client's address."""
    with kernel_env(kind) as env:
        ls = env.stack.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("", 7002))
        ls.listen(4)
        ls.settimeout(5)
        cl = env.lab.client(7002, count=100_000, pattern="passive", timeout=20)
        s, addr = ls.accept()
        ev = cl.wait_event("connected")
        assert list(addr) == ev["local"]
        assert env.states(s.tcb.conn)[:2] == ["SYN_RECEIVED", "ESTABLISHED"]
        s.settimeout(5)
        buf = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        assert hashlib.sha256(buf).hexdigest() == pattern_sha("passive", 100_000)
        s.sendall(b"bye")
        s.close()
        eof = cl.wait_event("eof")
        assert eof["bytes"] == 3


@pytest.mark.parametrize("kind", LINKS)
def test_ten_megabytes_to_kernel(kind: str) -> None:
    with kernel_env(kind) as env:
        srv = env.lab.server("sink", port=7003, timeout=60)
        srv.wait_ready()
        c = env.connect(7003, timeout=30)
        data = bytes(range(251)) * (TEN_MB // 251 + 1)
        data = data[:TEN_MB]
        c.sendall(data)
        c.close()
        eof = srv.wait_event("eof", timeout=30)
        assert eof["bytes"] == TEN_MB
        assert eof["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", LINKS)
def test_ten_megabytes_from_kernel(kind: str) -> None:
    with kernel_env(kind) as env:
        srv = env.lab.server("source", port=7004, count=TEN_MB, pattern="kernel->rawtcp",
                             timeout=60)
        srv.wait_ready()
        c = env.connect(7004, timeout=30)
        n, digest = recv_hashed(c)
        sent = srv.wait_event("sent", timeout=30)
        assert n == sent["bytes"] == TEN_MB
        assert digest == sent["sha256"]
        c.close()


def test_ipv6_over_tun_open_data_close() -> None:
    """IPv6 (RFC 8200 addresses, RFC 9293 over it): open, 2 MB each way, active close."""
    with kernel_env("tun", family="ipv6") as env:
        assert ":" in env.kernel_addr
        srv = env.lab.server("echo", port=7005, timeout=30)
        srv.wait_ready()
        c = env.connect(7005, timeout=20)
        assert c.family == socket.AF_INET6 and c.getpeername()[0] == env.kernel_addr
        data = bytes(range(256)) * (2 * 1024 * 1024 // 256)
        got = bytearray()

        def reader() -> None:
            while len(got) < len(data):
                d = c.recv(1 << 20)
                if not d:
                    break
                got.extend(d)

        th = threading.Thread(target=reader)
        th.start()
        c.sendall(data)
        th.join(30)
        assert bytes(got) == data
        conn = c.tcb.conn
        c.close()
        assert env.stack.wait_for(lambda: c.tcb.closed, 10)
        assert env.states(conn) == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                    "TIME_WAIT", "CLOSED"]
        eof = srv.wait_event("eof")
        assert eof["bytes"] == len(data)


@pytest.mark.parametrize("kind", ("tun", "packet"))
def test_so_rcvbuf_bounds_what_the_kernel_sends(kind: str) -> None:
    """SO_RCVBUF 8 KB on our side (RFC 9293 3.8.6): we never advertise more, the kernel's
    send window (ss snd_wnd) is at most that, and the kernel never sends past the right edge
    we advertised, while a slow reader drains 2 MB."""
    count = 2 * 1024 * 1024
    with kernel_env(kind) as env:
        srv = env.lab.server("source", port=7006, count=count, pattern="window", timeout=60)
        srv.wait_ready()
        s = env.stack.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.settimeout(10)
        s.connect((env.kernel_addr, 7006))
        assert s.tcp_info()["rcv_wscale"] == 0          # 8 KB needs no window scaling
        ks = wait_kernel_state(env.netns, 7006, "ESTABLISHED")
        snd_wnd = ks.get("snd_wnd", 0)   # ss leaves out snd_wnd when it is 0 (window full)
        assert 0 <= snd_wnd <= 8192, f"the kernel's send window: {snd_wnd}"
        h = hashlib.sha256()
        n = 0
        while True:
            d = s.recv(3000)                            # small reads: the window stays tight
            if not d:
                break
            h.update(d)
            n += len(d)
        assert n == count and h.hexdigest() == srv.wait_event("sent")["sha256"]
        right = 0
        for e in env.tracer.events("seg"):
            if e.get("conn") != s.tcb.conn:
                continue
            if e["dir"] == "out" and e["rack"] is not None:
                assert e["win"] <= 8192
                right = max(right, e["rack"] + e["win"])
            elif e["dir"] == "in" and e["len"]:
                assert e["rseq"] + e["len"] <= right, f"kernel sent beyond our window: {e}"


def test_packet_link_copes_with_kernel_checksum_offload() -> None:
    """A veth with tx checksum offload (and so TSO) on, as real setups have: the kernel's
    segments reach the AF_PACKET socket with partial checksums (TP_STATUS_CSUMNOTREADY) and
    larger than the MTU (never segmented). The link completes the checksums, and 4 MB cross
    each way intact."""
    count = 4 * 1024 * 1024
    with VethLab(mode="packet", family="ipv4", tx_offload=True) as lab:
        assert discover.tx_checksum_offload(lab.kernel_if, lab.kernel_netns)
        link = lab.open_link()
        with Stack(link, kernel_config()) as st:
            src = lab.server("source", port=7008, count=count, pattern="offload", timeout=60)
            sink = lab.server("sink", port=7009, timeout=60)
            src.wait_ready()
            sink.wait_ready()
            s = st.socket()
            s.settimeout(20)
            s.connect((lab.kernel_addr, 7008))
            h = hashlib.sha256()
            n = 0
            while d := s.recv(1 << 20):
                h.update(d)
                n += len(d)
            assert n == count and h.hexdigest() == src.wait_event("sent")["sha256"]
            s.close()
            data = bytes(range(256)) * (count // 256)
            c = st.socket()
            c.settimeout(20)
            c.connect((lab.kernel_addr, 7009))
            c.sendall(data)
            c.close()
            assert sink.wait_event("eof", timeout=20)["sha256"] == hashlib.sha256(data).hexdigest()
        assert link.counters["csum_completed"] >= link.counters["rx_packets"] // 2 > 0
        assert link.counters["rx_packets"] < count // 1448   # TSO: fewer, larger frames


@pytest.mark.parametrize("kind", LINKS)
def test_syn_cookie_connection_with_a_kernel_client(kind: str) -> None:
    """RFC 4987 3.6 with Config.syncookies=2 (always): a Linux client's handshake is
    completed from the cookie alone; window scale and SACK come back through the timestamp
    echo (RFC 7323), and 1 MB arrives intact, then our answer."""
    with kernel_env(kind, config=kernel_config(syncookies=2)) as env:
        ls = env.stack.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("", 7011))
        ls.listen(4)
        ls.settimeout(5)
        cl = env.lab.client(7011, count=1_000_000, pattern="passive", timeout=20)
        s, _ = ls.accept()
        c = env.stack.core.counters
        assert c["syncookies_sent"] == 1 and c["syncookies_recv"] == 1
        info = s.tcp_info()
        assert info["timestamps"] and info["sack"] and info["snd_wscale"] > 0
        s.settimeout(10)
        buf = bytearray()
        while d := s.recv(65536):
            buf += d
        assert hashlib.sha256(buf).hexdigest() == pattern_sha("passive", 1_000_000)
        s.sendall(b"bye")
        s.close()
        assert cl.wait_event("eof")["bytes"] == 3
