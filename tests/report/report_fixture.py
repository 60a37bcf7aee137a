"""A real run for the report tests: two rawtcp stacks (runtime threads, real time) on an
in-process MemoryLink pair; stack a is traced and captured, with fault rules that drop one
of its data segments and the peer's one data segment coming in (each is sent again)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from rawtcp.core.config import MS, Config
from rawtcp.faults import parse_rule
from rawtcp.link.memory import MemoryLink
from rawtcp.runtime import Stack
from rawtcp.trace import Tracer, read_trace

A, B = "10.31.0.1", "10.31.0.2"
PORT = 8080
DATA = bytes(range(256)) * 80          # 20480 bytes: 15 segments of 1460 or fewer
REPLY = b"bye"
OUT_RULE = "out len>0 nth=2"
IN_RULE = "in len>0 nth=1"          # the peer's reply: it sends it again


def memory_run(tmp: Path, pcap_name: str = "a.pcap",
               rules: list[tuple[str, str]] | None = None
               ) -> tuple[list[dict[str, Any]], Path]:
    """Run the transfer with stack a's fault ``rules`` ((action, rule text); default: drop
    OUT_RULE and IN_RULE); returns (stack a's trace events, the capture path)."""
    if rules is None:
        rules = [("drop", OUT_RULE), ("drop", IN_RULE)]
    cfg = Config(rto_initial=200 * MS, rto_min=50 * MS, msl=100 * MS, delayed_ack=10 * MS)
    la, lb = MemoryLink.pair([A], [B])
    trace_path, pcap_path = tmp / "a.jsonl", tmp / pcap_name
    ta = Tracer(str(trace_path))
    a = Stack(la, cfg, trace=ta, pcap=str(pcap_path), name="a",
              faults=[parse_rule(action, text) for action, text in rules])
    b = Stack(lb, cfg, tracer=Tracer(), name="b")
    got = bytearray()
    try:
        srv = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("", PORT))
        srv.listen(1)
        srv.settimeout(10)

        def serve() -> None:
            c, _ = srv.accept()
            c.settimeout(10)
            while chunk := c.recv(65536):
                got.extend(chunk)
            c.sendall(REPLY)
            c.close()

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        cli = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        cli.settimeout(10)
        cli.connect((B, PORT))
        cli.sendall(DATA)
        cli.shutdown(socket.SHUT_WR)
        reply = bytearray()
        while chunk := cli.recv(100):
            reply.extend(chunk)
        assert bytes(reply) == REPLY
        cli.close()
        th.join(10)
        assert bytes(got) == DATA
        a.wait_for(lambda: all(t.closed for t in a.core.connections()), 5)
    finally:
        a.close()
        b.close()
        ta.close()
    return read_trace(trace_path), pcap_path
