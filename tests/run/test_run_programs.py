"""`rawtcp run` with real, unmodified programs against the Linux kernel in a lab (root).

Each test shows the traffic went through rawtcp: the trace and the pcap hold the
connection's segments, and the kernel of rawtcp's namespace has no address at all (the lab
is in packet mode), so nothing but rawtcp could have answered.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import textwrap

from run_helpers import Lab, pcap_packets, segments, stop, wait_line

PORT = 8123


def _no_kernel_address(lab: Lab) -> None:
    assert lab.rawtcp_side_kernel_addrs() == []


def _http_server_in_kernel(lab: Lab, root: str):
    srv = lab.kernel(["python3", "-u", "-m", "http.server", str(PORT), "--bind",
                      lab.kernel_addr, "--directory", root])
    wait_line(srv, "Serving HTTP")
    return srv


def test_urllib_fetches_a_file_from_a_kernel_http_server(lab: Lab, tmp_path) -> None:
    """urllib.request over rawtcp: the file's sha256 matches what the kernel served."""
    root = tmp_path / "www"
    root.mkdir()
    blob = os.urandom(300_000)
    (root / "blob.bin").write_bytes(blob)
    prog = tmp_path / "fetch.py"
    prog.write_text(textwrap.dedent("""
        import hashlib, sys, urllib.request
        data = urllib.request.urlopen(sys.argv[1], timeout=20).read()
        print(len(data), hashlib.sha256(data).hexdigest())
        sys.exit(7)
    """))
    trace, pcap = str(tmp_path / "t.jsonl"), str(tmp_path / "p.pcap")
    srv = _http_server_in_kernel(lab, str(root))
    try:
        r = lab.rawtcp_run("--trace", trace, "--pcap", pcap, "--", "python3", str(prog),
                           f"http://{lab.kernel_addr}:{PORT}/blob.bin")
    finally:
        stop(srv)
    assert r.returncode == 7, r.stderr          # the program's own exit status
    assert r.stdout.split() == [str(len(blob)), hashlib.sha256(blob).hexdigest()]
    ins = segments(trace, "in")
    assert sum(e.get("len", 0) for e in ins) >= len(blob)
    assert any(e["flags"] == "S" for e in segments(trace, "out"))
    assert pcap_packets(pcap) >= len(ins)
    _no_kernel_address(lab)


def test_http_server_over_rawtcp_is_fetched_by_kernel_curl(lab: Lab, tmp_path) -> None:
    """`python3 -m http.server` (its default: '::' dual stack) served by rawtcp, fetched by
    curl from the kernel over IPv4; SIGINT ends it with its own status 0."""
    root = tmp_path / "www"
    root.mkdir()
    blob = os.urandom(200_000)
    (root / "f.bin").write_bytes(blob)
    trace = str(tmp_path / "t.jsonl")
    srv = subprocess_popen(lab, "--trace", trace, "--", "python3", "-m", "http.server",
                           str(PORT), "--directory", str(root))
    try:
        wait_line(srv, "Serving HTTP")
        c = subprocess.run(["ip", "netns", "exec", lab.rec.kernel_netns, "curl", "-sS",
                            "--max-time", "30", f"http://{lab.rawtcp_addr}:{PORT}/f.bin"],
                           capture_output=True, timeout=60)
        srv.send_signal(signal.SIGINT)
        out, err = srv.communicate(timeout=30)
    finally:
        stop(srv)
    assert c.returncode == 0, c.stderr
    assert hashlib.sha256(c.stdout).digest() == hashlib.sha256(blob).digest()
    assert srv.returncode == 0, err
    outs = segments(trace, "out")
    assert any(e["flags"] == "SA" for e in outs)
    assert sum(e.get("len", 0) for e in outs) >= len(blob)
    _no_kernel_address(lab)


def subprocess_popen(lab: Lab, *args: str) -> subprocess.Popen:
    return subprocess.Popen(lab.run_argv(*args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=lab.env())


ECHO_SERVER = """
import asyncio, sys

async def handle(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()

async def main():
    srv = await asyncio.start_server(handle, sys.argv[1], int(sys.argv[2]), backlog=128)
    print("listening", flush=True)
    await asyncio.sleep(float(sys.argv[3]))
    srv.close()
    await srv.wait_closed()

asyncio.run(main())
"""

KERNEL_CLIENTS = """
import asyncio, os, sys

async def one(i):
    r, w = await asyncio.open_connection(sys.argv[1], int(sys.argv[2]))
    msg = os.urandom(1000 + i)
    w.write(msg)
    await w.drain()
    w.write_eof()
    got = await r.read()
    w.close()
    return got == msg

async def main():
    ok = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(100))), 60)
    print(sum(ok))

asyncio.run(main())
"""


def test_asyncio_echo_server_over_rawtcp_serves_100_concurrent_kernel_clients(
        lab: Lab, tmp_path) -> None:
    """asyncio.start_server on rawtcp sockets (selector loop, readiness via fileno()):
    100 kernel clients at once, each gets its bytes back."""
    prog = tmp_path / "echo.py"
    prog.write_text(ECHO_SERVER)
    clients = tmp_path / "clients.py"
    clients.write_text(KERNEL_CLIENTS)
    trace = str(tmp_path / "t.jsonl")
    srv = subprocess_popen(lab, "--trace", trace, "--", "python3", str(prog), "0.0.0.0",
                           str(PORT), "60")
    try:
        wait_line(srv, "listening")
        c = subprocess.run(["ip", "netns", "exec", lab.rec.kernel_netns, "python3",
                            str(clients), lab.rawtcp_addr, str(PORT)],
                           capture_output=True, text=True, timeout=90)
        srv.send_signal(signal.SIGINT)          # Ctrl-C: the stack closes, the trace ends
        srv.communicate(timeout=30)
    finally:
        stop(srv)
    assert srv.returncode == 130
    assert c.returncode == 0, c.stderr
    assert c.stdout.strip() == "100"
    conns = {e["conn"] for e in segments(trace, "out") if e["flags"] == "SA"}
    assert len(conns) == 100
    _no_kernel_address(lab)


def test_asyncio_client_open_connection_to_a_kernel_server(lab: Lab, tmp_path) -> None:
    """asyncio.open_connection over rawtcp to a kernel echo server (rawtcp.lab.peers)."""
    from rawtcp.lab.peers import Server

    prog = tmp_path / "client.py"
    prog.write_text(textwrap.dedent("""
        import asyncio, hashlib, os, sys
        async def main():
            r, w = await asyncio.open_connection(sys.argv[1], int(sys.argv[2]))
            msg = os.urandom(100_000)
            w.write(msg)
            await w.drain()
            got = await r.readexactly(len(msg))
            w.close()
            await w.wait_closed()
            print(got == msg)
        asyncio.run(main())
    """))
    trace = str(tmp_path / "t.jsonl")
    srv = Server(lab.rec.kernel_netns, "echo", port=7, bind="0.0.0.0").start()
    try:
        srv.wait_ready()
        r = lab.rawtcp_run("--trace", trace, "--", "python3", str(prog), lab.kernel_addr, "7")
    finally:
        srv.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
    assert sum(e.get("len", 0) for e in segments(trace, "out")) >= 100_000
    _no_kernel_address(lab)


def test_http_client_completes_despite_a_dropped_request_segment(lab: Lab, tmp_path) -> None:
    """http.client with --drop on the request's first data segment: rawtcp's retransmission
    (RFC 6298 5.4) carries it and the response arrives."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("hello over rawtcp\n")
    prog = tmp_path / "get.py"
    prog.write_text(textwrap.dedent("""
        import http.client, sys
        c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=30)
        c.request("GET", "/hello.txt")
        r = c.getresponse()
        print(r.status, r.read().decode().strip())
    """))
    trace = str(tmp_path / "t.jsonl")
    srv = _http_server_in_kernel(lab, str(root))
    try:
        r = lab.rawtcp_run("--trace", trace, "--drop", "out len>0 nth=1", "--", "python3",
                           str(prog), lab.kernel_addr, str(PORT))
    finally:
        stop(srv)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "200 hello over rawtcp"
    from rawtcp.trace import read_trace

    evs = read_trace(trace)
    assert len([e for e in evs if e["ev"] == "fault"]) == 1
    assert any(e["ev"] == "retransmit" for e in evs)
    _no_kernel_address(lab)


def test_exit_status_and_bad_link_option(lab: Lab, tmp_path) -> None:
    """The program's SystemExit code is rawtcp run's; a bad link option is one line, exit 2."""
    r = lab.rawtcp_run("--", "python3", "-c", "import sys; sys.exit(3)")
    assert r.returncode == 3, r.stderr
    r = lab.rawtcp_run("--drop", "out flgs=A", "--", "python3", "-c", "pass")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "flgs" in lines[0]


UDP_SERVER = """
import asyncio, sys

class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.transport.sendto(data.upper(), addr)

async def main():
    t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        Echo, local_addr=("0.0.0.0", int(sys.argv[1])))
    print("bound", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""

KERNEL_UDP = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
if sys.argv[1] == "client":
    s.sendto(b"question", (sys.argv[2], int(sys.argv[3])))
    print(s.recvfrom(100)[0].decode())
else:
    s.bind(("0.0.0.0", int(sys.argv[2])))
    print("bound", flush=True)
    data, addr = s.recvfrom(100)
    s.sendto(data[::-1], addr)
"""


def test_udp_request_response_over_rawtcp_both_ways(lab: Lab, tmp_path) -> None:
    """UDP (RFC 768): an asyncio datagram server over rawtcp answers a kernel client, and a
    plain socket client over rawtcp gets a kernel server's answer."""
    server, kernel = tmp_path / "udp_server.py", tmp_path / "kernel_udp.py"
    server.write_text(UDP_SERVER)
    kernel.write_text(KERNEL_UDP)
    trace = str(tmp_path / "t.jsonl")
    srv = subprocess_popen(lab, "--trace", trace, "--", "python3", str(server), "5353")
    try:
        wait_line(srv, "bound")
        c = subprocess.run(["ip", "netns", "exec", lab.rec.kernel_netns, "python3",
                            str(kernel), "client", lab.rawtcp_addr, "5353"],
                           capture_output=True, text=True, timeout=60)
        srv.send_signal(signal.SIGINT)          # Ctrl-C: the stack closes, the trace ends
        srv.communicate(timeout=30)
    finally:
        stop(srv)
    assert srv.returncode == 130
    assert c.returncode == 0, c.stderr
    assert c.stdout.strip() == "QUESTION"
    from rawtcp.trace import read_trace

    udp = [e for e in read_trace(trace) if e["ev"] == "udp"]
    assert {e["dir"] for e in udp} == {"in", "out"}

    ksrv = lab.kernel(["python3", "-u", str(kernel), "server", "5354"])
    try:
        wait_line(ksrv, "bound")
        r = lab.rawtcp_run("--", "python3", "-c",
                           "import socket, sys; s = socket.socket(socket.AF_INET, "
                           "socket.SOCK_DGRAM); s.settimeout(20); "
                           f"s.sendto(b'question', ('{lab.kernel_addr}', 5354)); "
                           "print(s.recvfrom(100))")
    finally:
        stop(ksrv)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"(b'noitseuq', ('{lab.kernel_addr}', 5354))"
    _no_kernel_address(lab)
