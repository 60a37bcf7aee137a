"""rawtcp.patch(stack) inside this process, against a kernel echo server in a lab (root)."""

from __future__ import annotations

import socket

from run_helpers import Lab

import rawtcp
from rawtcp.link.packet import PacketLink
from rawtcp.runtime import Stack
from rawtcp.trace import Tracer


def test_plain_create_connection_goes_through_rawtcp(lab: Lab) -> None:
    """socket.create_connection, unchanged code: the echo comes back, the trace holds the
    handshake and the data, and outside the block socket.socket is the kernel's again."""
    from rawtcp.lab.peers import Server

    real = socket.socket
    tracer = Tracer()
    link = PacketLink(lab.rec.rawtcp_if, lab.rec.rawtcp_addrs, netns=lab.rec.rawtcp_netns)
    srv = Server(lab.rec.kernel_netns, "echo", port=7, bind="0.0.0.0").start()
    try:
        srv.wait_ready()
        with Stack(link, tracer=tracer) as st, rawtcp.patch(st):
            with socket.create_connection((lab.kernel_addr, 7), timeout=10) as c:
                assert isinstance(c, socket.socket) and isinstance(c, rawtcp.Socket)
                c.sendall(b"ping over rawtcp")
                got = b""
                while len(got) < 16:
                    got += c.recv(100)
            kernel_unix = socket.socket(socket.AF_UNIX)     # other families: the kernel's
            assert type(kernel_unix) is real
            kernel_unix.close()
        assert socket.socket is real
    finally:
        srv.stop()
    assert got == b"ping over rawtcp"
    segs = tracer.events("seg")
    assert any(e["dir"] == "out" and e["flags"] == "S" for e in segs)
    assert sum(e.get("len", 0) for e in segs if e["dir"] == "out") == 16
    assert lab.rawtcp_side_kernel_addrs() == []
