"""rawtcp.patch without a kernel: two stacks on a MemoryLink pair; nesting, restoring,
isinstance, the kernel's families, and asyncio's loop.sock_* on rawtcp sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

import rawtcp
from rawtcp.link.memory import MemoryLink
from rawtcp.runtime import Stack
from rawtcp.udp_socket import DatagramSocket

A, B = "10.2.0.1", "10.2.0.2"


@pytest.fixture
def stacks() -> Iterator[tuple[Stack, Stack]]:
    la, lb = MemoryLink.pair([A], [B])
    a, b = Stack(la), Stack(lb)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _echo_server(st: Stack, port: int) -> threading.Thread:
    ls = st.socket()
    ls.bind((B, port))
    ls.listen()
    ls.settimeout(10)

    def serve() -> None:
        s, _ = ls.accept()
        while d := s.recv(65536):
            s.sendall(d)
        s.close()
        ls.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return th


def test_patch_nests_and_restores(stacks) -> None:
    a, b = stacks
    real = socket.socket
    with rawtcp.patch(a) as pa:
        assert socket.socket is pa.socket_class
        with rawtcp.patch(b) as pb:
            assert socket.socket is pb.socket_class
            assert socket.socket(socket.AF_INET, socket.SOCK_STREAM)._stack is b
        assert socket.socket is pa.socket_class
        assert socket.socket()._stack is a
    assert socket.socket is real
    # left out of order: the outer exits first, the inner still restores the original
    p1, p2 = rawtcp.patch(a), rawtcp.patch(b)
    p1.__enter__()
    p2.__enter__()
    p1.__exit__(None, None, None)
    assert socket.socket is p2.socket_class
    p2.__exit__(None, None, None)
    assert socket.socket is real


def test_patched_class_hands_out_rawtcp_for_inet_and_kernel_for_the_rest(stacks) -> None:
    a, _ = stacks
    with rawtcp.patch(a):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        assert isinstance(s, rawtcp.Socket) and isinstance(s, socket.socket)
        assert not s.getblocking()
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        assert type(u).__module__ == "socket" and not isinstance(u, rawtcp.Socket)
        x, y = socket.socketpair()
        assert not isinstance(x, rawtcp.Socket)
        for k in (u, x, y, s):
            k.close()
        d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)     # UDP: the stack's too
        assert isinstance(d, DatagramSocket) and isinstance(d, socket.socket)
        d.close()
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        assert not isinstance(raw, rawtcp.Socket)     # neither TCP nor UDP: the kernel's
        raw.close()


def test_asyncio_sock_calls_on_rawtcp_sockets(stacks) -> None:
    a, b = stacks
    th = _echo_server(b, 7400)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        s = socket.socket()
        s.setblocking(False)
        await loop.sock_connect(s, (B, 7400))
        await loop.sock_sendall(s, b"x" * 200_000)
        got = b""
        while len(got) < 200_000:
            got += await loop.sock_recv(s, 65536)
        s.close()
        return got

    with rawtcp.patch(a):
        got = asyncio.run(main())
    th.join(10)
    assert got == b"x" * 200_000


def test_asyncio_streams_server_and_sock_accept(stacks) -> None:
    """start_server (its sockets: '0.0.0.0' here) and loop.sock_accept on rawtcp."""
    a, b = stacks

    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()

        async def handle(r, w):
            w.write((await r.readline()).upper())
            await w.drain()
            w.close()

        srv = await asyncio.start_server(handle, A, 7401)
        ls = socket.socket()
        ls.bind((A, 7402))
        ls.listen()
        ls.setblocking(False)

        def clients() -> list[bytes]:
            out = []
            for port in (7401, 7402):
                c = b.socket()
                c.settimeout(10)
                c.connect((A, port))
                c.sendall(b"hi\n")
                out.append(c.recv(100))
                c.close()
            return out

        fut = loop.run_in_executor(None, clients)
        # the first client is served by the stream server; the second is accepted here
        conn, _ = await loop.sock_accept(ls)
        data = await loop.sock_recv(conn, 100)
        await loop.sock_sendall(conn, data[::-1])
        conn.close()
        ls.close()
        got = await fut
        srv.close()
        await srv.wait_closed()
        return got[0], got[1]

    with rawtcp.patch(a):
        first, second = asyncio.run(main())
    assert first == b"HI\n" and second == b"\nih"


def test_asyncio_create_datagram_endpoint_both_ways(stacks) -> None:
    """UDP (RFC 768) through asyncio's datagram transport on rawtcp: a server endpoint
    answering a peer, and a connected client endpoint getting an answer."""
    a, b = stacks

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr) -> None:
            self.transport.sendto(data.upper(), addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self, fut: asyncio.Future) -> None:
            self.fut = fut

        def connection_made(self, transport) -> None:
            transport.sendto(b"ping")

        def datagram_received(self, data: bytes, addr) -> None:
            self.fut.set_result((data, addr))

    def peer_round_trip() -> tuple:
        c = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(5)
        c.sendto(b"hello", (A, 5353))
        got = c.recvfrom(100)
        c.close()
        return got

    def peer_answer(s) -> None:
        data, addr = s.recvfrom(100)
        s.sendto(data[::-1], addr)

    async def main() -> tuple:
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(Echo, local_addr=(A, 5353))
        first = await loop.run_in_executor(None, peer_round_trip)
        s = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((B, 6000))
        s.settimeout(5)
        fut = loop.create_future()
        answer = loop.run_in_executor(None, peer_answer, s)
        t2, _ = await loop.create_datagram_endpoint(lambda: Client(fut), remote_addr=(B, 6000))
        second = await asyncio.wait_for(fut, 10)
        await answer
        s.close()
        t.close()
        t2.close()
        return first, second

    with rawtcp.patch(a):
        first, second = asyncio.run(main())
    assert first == (b"HELLO", (A, 5353))
    assert second == (b"gnip", (B, 6000))
