"""TCP_CONGESTION (tcp(7)) and TCP_INFO's congestion fields on rawtcp sockets, as Linux
answers them: the name padded to 16 bytes, ENOENT for an algorithm that is not there, the
per-socket choice used by the connection (issue 13)."""

from __future__ import annotations

import errno
import socket

import pytest
from socket_helpers import Pair
from test_socket_api import connected

from rawtcp.sockopts import TCP_CONGESTION


def test_default_is_cubic_and_reno_can_be_chosen(pair: Pair) -> None:
    s = pair.a.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert s.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16) == b"cubic" + bytes(11)
        s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"reno")
        assert s.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16) == b"reno" + bytes(12)
        assert s.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 4) == b"reno"
        with pytest.raises(OSError) as e:
            s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"bbr")
        assert e.value.errno == errno.ENOENT
        assert s.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).rstrip(b"\0") == b"reno"
    finally:
        s.close()


def test_the_connection_runs_the_chosen_algorithm_and_tcp_info_reports_it(pair: Pair) -> None:
    def reno(s: socket.socket) -> None:
        s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"reno")

    c, srv, ls = connected(pair, before_connect=reno)
    try:
        info = c.tcp_info()
        assert info["congestion"] == "reno" and srv.tcp_info()["congestion"] == "cubic"
        assert info["ca_state"] == 0 and info["ca"] == "open"
        assert info["snd_cwnd"] == 10 and info["snd_ssthresh"] == 0x7FFFFFFF
        for name in ("rtt", "rttvar", "rto", "retrans", "lost", "sacked", "total_retrans",
                     "delivered", "options", "min_rtt", "delivered_ce"):
            assert name in info, name
        # switched on an open connection: the window stays, the algorithm changes
        c.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"cubic")
        assert c.tcp_info()["congestion"] == "cubic" and c.tcp_info()["snd_cwnd"] == 10
    finally:
        for s in (c, srv, ls):
            s.close()
