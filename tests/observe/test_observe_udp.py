"""UDP datagrams and ICMP errors in traces, pcaps and ladder diagrams (issue 11)."""

from __future__ import annotations

import socket

from rawtcp.core.config import Config
from rawtcp.faults import parse_rule
from rawtcp.link.memory import MemoryLink
from rawtcp.report.ladder import render_ladder
from rawtcp.runtime import Stack
from rawtcp.trace import Tracer, read_trace
from rawtcp.udp_socket import DatagramSocket
from rawtcp.wire.udp import Datagram, IcmpError, decode_non_tcp

A, B = "10.9.0.1", "10.9.0.2"


def _pcap_packets(path) -> list[bytes]:
    import struct

    data = path.read_bytes()
    out, i = [], 24
    while i < len(data):
        _s, _u, incl, _orig = struct.unpack_from("<IIII", data, i)
        out.append(data[i + 16:i + 16 + incl])
        i += 16 + incl
    return out


def test_udp_exchange_and_port_unreachable_in_trace_pcap_and_ladder(tmp_path) -> None:
    la, lb = MemoryLink.pair([A], [B])
    trace_path, pcap_path = tmp_path / "a.jsonl", tmp_path / "a.pcap"
    ta = Tracer(str(trace_path))
    a = Stack(la, Config(), trace=ta, pcap=str(pcap_path), name="a",
              faults=[parse_rule("drop", "out proto=udp len=4")])
    b = Stack(lb, Config(), tracer=Tracer(), name="b")
    try:
        srv = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("", 53))
        srv.settimeout(5)
        cli: DatagramSocket = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.settimeout(5)
        cli.sendto(b"lost", (B, 53))                 # dropped by the rule (len=4)
        cli.sendto(b"query", (B, 53))
        data, src = srv.recvfrom(100)
        srv.sendto(b"answer", src)
        assert cli.recv(100) == b"answer"
        cli.connect((B, 54))                         # nobody there: port unreachable
        cli.send(b"hello?")
        try:
            cli.recv(100)
            raise AssertionError("expected ECONNREFUSED")
        except ConnectionRefusedError:
            pass
    finally:
        a.close()
        b.close()
        ta.close()
    events = read_trace(trace_path)
    udp = [(e["dir"], e["len"]) for e in events if e["ev"] == "udp"]
    assert udp == [("out", 4), ("out", 5), ("in", 6), ("out", 6)]
    assert [e["kind"] for e in events if e["ev"] == "icmp"] == ["port-unreachable"]
    # the pcap holds what crossed the link (not the dropped datagram) and the ICMP error
    pkts = [decode_non_tcp(p) for p in _pcap_packets(pcap_path)]
    assert [type(p).__name__ for p in pkts] == ["Datagram", "Datagram", "Datagram", "IcmpError"]
    assert pkts[0] == Datagram(A, B, cli.getsockname()[1], 53, b"query")
    assert isinstance(pkts[3], IcmpError) and pkts[3].qdport == 54
    lines = render_ladder(events, width=90).splitlines()
    rows = [ln for ln in lines if ("UDP" in ln or "ICMP" in ln) and "~" not in ln]
    assert len(rows) == 5
    assert any("~ error 111: ECONNREFUSED" in ln for ln in lines)
    assert "UDP" in rows[0] and "len=4" in rows[0] and "X" in rows[0]     # the fault's drop
    assert rows[1].rstrip().endswith(">|") and "len=5" in rows[1]
    assert "<" in rows[2] and "len=6" in rows[2]
    assert "<" in rows[4] and "ICMP port-unreachable" in rows[4] and ">54" in rows[4]
