"""getsockopt as socket.socket's: an int without a buflen, else the option's bytes cut to
the buflen as Linux cuts them; TCP_INFO with a buflen is Linux's struct tcp_info, laid out
as a kernel socket's (checked against one on loopback: the same offsets hold the same
meaning, compared with the socket's own TCP_MAXSEG and state)."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from socket_helpers import Pair, connected

from rawtcp import tcpinfo


def _kernel_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    c = socket.create_connection(ls.getsockname(), timeout=5)
    s, _ = ls.accept()
    return ls, c, s


def test_tcp_info_bytes_have_the_kernels_layout(pair: Pair) -> None:
    ls, kc, ks = _kernel_pair()
    try:
        kraw = kc.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
        kmss = kc.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    finally:
        for x in (kc, ks, ls):
            x.close()
    c, s, _ = connected(pair)
    c.sendall(b"x" * 3000)
    got = b""
    while len(got) < 3000:
        got += s.recv(65536)
    for _ in range(300):                     # the peer's last ACK may be delayed (<= 3 s)
        if c.tcp_info()["unacked"] == 0:
            break
        time.sleep(0.01)
    raw = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    assert len(raw) == tcpinfo.SIZE <= len(kraw)      # a kernel of this header or later
    k = dict(zip(tcpinfo.FIELDS, tcpinfo.LAYOUT.unpack(kraw[:tcpinfo.SIZE]), strict=True))
    r = dict(zip(tcpinfo.FIELDS, tcpinfo.LAYOUT.unpack(raw), strict=True))
    info = c.tcp_info()
    # the kernel's own values sit where rawtcp puts its: the layout is the kernel's
    assert k["state"] == r["state"] == tcpinfo.LINUX_STATES["ESTABLISHED"] == 1
    assert k["snd_mss"] == kmss and r["snd_mss"] == c.getsockopt(socket.IPPROTO_TCP,
                                                                 socket.TCP_MAXSEG)
    assert k["options"] & 7 == 7 and r["options"] == info["options"]   # TS, SACK, WS
    assert (r["wscale"] & 15, r["wscale"] >> 4) == (info["snd_wscale"], info["rcv_wscale"])
    assert k["rtt"] > 0 and r["rtt"] == info["srtt"] > 0
    assert k["snd_cwnd"] >= 10 and r["snd_cwnd"] == info["snd_cwnd"]
    assert k["max_pacing_rate"] > 0 and r["max_pacing_rate"] == 2**64 - 1
    assert r["bytes_acked"] == info["bytes_acked"] == 3000
    assert r["bytes_sent"] == 3000 and r["notsent_bytes"] == 0
    assert r["snd_wnd"] == info["snd_wnd"] and r["rcv_wnd"] == info["rcv_wnd"]
    assert r["total_retrans"] == info["total_retrans"] == 0
    # the peer's side counts what it received
    sraw = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    assert dict(zip(tcpinfo.FIELDS, tcpinfo.LAYOUT.unpack(sraw),
                    strict=True))["bytes_received"] == 3000
    # older programs ask for the first 104 bytes (up to tcpi_total_retrans): cut there
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104) == raw[:104]


def test_getsockopt_forms_match_socket_socket(pair: Pair) -> None:
    """Each form a kernel socket gives, on a rawtcp socket: an int without a buflen (SO_LINGER
    too: its l_onoff), bytes cut to the buflen, and CPython's range error for a buflen outside
    1..1024 (0 means none)."""
    c, _s, _ = connected(pair)
    k = socket.socket()
    try:
        for sock in (k, c):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 7))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for level, opt, buflen in ((socket.SOL_SOCKET, socket.SO_LINGER, None),
                                   (socket.SOL_SOCKET, socket.SO_LINGER, 0),
                                   (socket.SOL_SOCKET, socket.SO_LINGER, 4),
                                   (socket.SOL_SOCKET, socket.SO_LINGER, 8),
                                   (socket.SOL_SOCKET, socket.SO_LINGER, 64),
                                   (socket.SOL_SOCKET, socket.SO_KEEPALIVE, None),
                                   (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 2),
                                   (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 16),
                                   (socket.SOL_SOCKET, socket.SO_ERROR, 4),
                                   (socket.SOL_SOCKET, socket.SO_ERROR, None),
                                   (socket.SOL_SOCKET, socket.SO_TYPE, 4),
                                   (socket.SOL_SOCKET, socket.SO_TYPE, None),
                                   (socket.SOL_SOCKET, socket.SO_ACCEPTCONN, 4)):
            args = (level, opt) if buflen is None else (level, opt, buflen)
            assert c.getsockopt(*args) == k.getsockopt(*args), args
        for bad in (-1, 1025):
            with pytest.raises(OSError) as e:
                k.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, bad)
            with pytest.raises(OSError) as r:
                c.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, bad)
            assert str(r.value) == str(e.value) == "getsockopt buflen out of range"
    finally:
        k.close()


def test_tcp_info_of_a_socket_without_a_connection(pair: Pair) -> None:
    """Linux's state numbers for a socket with no connection: CLOSE (7), LISTEN (10)."""
    s = pair.a.socket()
    raw = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    assert len(raw) == 104 and raw[0] == 7 and not any(raw[1:])
    s.bind(("", 5999))
    s.listen(1)
    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1) == bytes([10])
    s.close()
