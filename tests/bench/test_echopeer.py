"""rawtcp.bench.echopeer: the in-process echo server that scripts/bench_connpath.py
--virtual measures rawtcp against (no kernel, no root)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from rawtcp.bench.common import conn_loop
from rawtcp.bench.echopeer import EchoPeerLink
from rawtcp.core.segment import ACK, FIN, PSH, SYN, Options, Packet, Segment
from rawtcp.runtime import Stack
from rawtcp.wire import decode_ip, encode_ip

ROOT = Path(__file__).resolve().parents[2]


def _send(link: EchoPeerLink, seg: Segment) -> list[Segment]:
    link.send(encode_ip(Packet("10.9.0.1", "10.9.0.2", seg)))
    return [decode_ip(raw).segment for raw in link.recv_batch()]


def test_peer_answers_a_connection_as_a_linux_echo_server_would() -> None:
    """RFC 9293 3.5 (handshake), 3.6 (the server closes at EOF); RFC 7323 / RFC 2018: the
    SYN-ACK offers back only what the SYN offered."""
    link = EchoPeerLink()
    try:
        syn = Segment(40000, 7, 1000, 0, SYN, 65535, Options(1460, 7, True, (), (55, 0)))
        (sa,) = _send(link, syn)
        assert sa.flags == SYN | ACK and sa.ack == 1001
        assert sa.options.mss == 1460 and sa.options.wscale == 7
        assert sa.options.sack_permitted and sa.options.timestamps[1] == 55
        isn = sa.seq
        data = Segment(40000, 7, 1001, isn + 1, ACK | PSH, 502, Options(timestamps=(56, 1)),
                       b"hello")
        ack, echo = _send(link, data)
        assert ack.flags == ACK and ack.ack == 1006 and not ack.payload
        assert echo.flags == ACK | PSH and echo.payload == b"hello" and echo.seq == isn + 1
        (fin,) = _send(link, Segment(40000, 7, 1006, isn + 6, FIN | ACK, 502))
        assert fin.flags == FIN | ACK and fin.ack == 1007 and fin.seq == isn + 6
        assert link.connections == 1
        assert _send(link, Segment(40000, 7, 1007, isn + 7, ACK, 502)) == []
        assert link.connections == 0
        # a SYN without options gets none back
        (bare,) = _send(link, Segment(40001, 7, 5, 0, SYN, 65535))
        assert bare.options.wscale is None and bare.options.timestamps is None
        assert not bare.options.sack_permitted
    finally:
        link.close()


def test_peer_ignores_and_counts_what_belongs_to_no_connection() -> None:
    link = EchoPeerLink()
    try:
        assert _send(link, Segment(40000, 7, 1, 1, ACK, 502, payload=b"x")) == []
        link.send(b"\x45" + bytes(39))                  # not a valid TCP packet
        assert link.recv_batch() == []
        assert link.counters["peer_ignored"] == 2
    finally:
        link.close()


def test_rawtcp_sockets_make_connections_through_the_peer() -> None:
    """The connection-rate loop over the runtime and sockets: every echo intact, every
    connection closed at the peer, rawtcp's side in TIME-WAIT (it closed first)."""
    link = EchoPeerLink()
    with Stack(link, name="echopeer-test") as st:
        def connect():
            s = st.socket()
            s.settimeout(5)
            s.connect((link.peer_addr, 7))
            return s

        stats = conn_loop(connect, 30, time.monotonic() + 60)
        assert stats.conns == 30
        assert link.connections == 0
        states = {t.state.name for t in st.core.connections()}
        assert states == {"TIME_WAIT"}
        # 6 segments out (SYN, ACK, request, ACK of the echo, FIN, last ACK), 4 in
        assert link.counters["tx_packets"] == 6 * 30
        assert link.counters["rx_packets"] == 4 * 30


def test_connpath_script_virtual_reports_cpu_by_call_and_layer() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_connpath.py"),
                        "--virtual", "--conns", "20", "--json"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["conns"] == 20 and out["cpu_us"] > 0 and out["peer_us"] > 0
    assert set(out["per_call_us"]) == {"connect", "sendall", "recv", "close"}
    assert {"core", "codec", "runtime", "socket"} <= set(out["layers_us"])
    assert all(v > 0 for k, v in out["layers_us"].items() if k != "other")
    assert out["python_calls"] > 100
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_connpath.py"),
                          "--virtual", "--conns", "5"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "--conns" in bad.stderr
