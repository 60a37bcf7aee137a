"""`rawtcp ladder FILE.pcap` draws UDP datagrams too (issue 11: pcaps and ladders show UDP)."""

from __future__ import annotations

import socket

from rawtcp.core.config import Config
from rawtcp.link.memory import MemoryLink
from rawtcp.report.captures import seg_events_from_pcap
from rawtcp.report.ladder import ladder_from_pcap
from rawtcp.runtime import Stack

A, B = "10.9.1.1", "10.9.1.2"


def test_ladder_from_a_pcap_with_tcp_and_udp(tmp_path) -> None:
    la, lb = MemoryLink.pair([A], [B])
    pcap = tmp_path / "mixed.pcap"
    a = Stack(la, Config(), pcap=str(pcap), name="a")
    b = Stack(lb, Config(), name="b")
    try:
        srv = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("", 53))
        srv.settimeout(5)
        cli = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cli.settimeout(5)
        cli.sendto(b"query", (B, 53))
        data, src = srv.recvfrom(100)
        srv.sendto(b"longer answer", src)
        assert cli.recv(100) == b"longer answer"
        ls = b.socket()
        ls.bind((B, 80))
        ls.listen(1)
        c = a.socket()
        c.settimeout(5)
        c.connect((B, 80))
        c.close()
    finally:
        a.close()
        b.close()
    events = seg_events_from_pcap(str(pcap), A)
    udp = [(e["dir"], e["sport"] if e["dir"] == "in" else e["dport"], e["len"])
           for e in events if e["ev"] == "udp"]
    assert udp == [("out", 53, 5), ("in", 53, 13)]
    assert any(e["ev"] == "seg" and e["flags"] == "S" for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    rows = [ln for ln in ladder_from_pcap(str(pcap), A, width=90).splitlines() if "UDP" in ln]
    assert len(rows) == 2 and "len=5" in rows[0] and "len=13" in rows[1]
    assert rows[0].rstrip().endswith(">|") and "<" in rows[1]
