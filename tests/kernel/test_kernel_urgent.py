"""Urgent data against Linux (RFC 9293 3.8.5, RFC 6093; issue 9): the kernel's MSG_OOB byte
is held out of line by rawtcp exactly where Linux would hold it, and rawtcp's MSG_OOB byte
reaches the kernel's recv(MSG_OOB)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from kernel_helpers import kernel_env

from rawtcp.host.netns import exec_prefix

KERNEL_SENDS = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"ABCDEFG"); s.send(b"H", socket.MSG_OOB); s.sendall(b"IJKL")
s.shutdown(socket.SHUT_WR); s.settimeout(10); s.recv(10); s.close()
"""

KERNEL_RECEIVES = """
import socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(1); ls.settimeout(10)
print("ready", flush=True)
c, _ = ls.accept(); c.settimeout(10)
data, oob, deadline = b"", b"", time.monotonic() + 10
while time.monotonic() < deadline and (len(data) < 7 or not oob):
    try:
        oob = oob or c.recv(1, socket.MSG_OOB)
    except BlockingIOError:
        pass
    except OSError:
        pass
    c.setblocking(False)
    try:
        data += c.recv(100)
    except BlockingIOError:
        time.sleep(0.01)
    c.setblocking(True)
print(repr((data, oob)), flush=True)
"""


def _kernel_python(netns: str, script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(exec_prefix(netns) + [sys.executable, "-c", script, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("kind", ["tun"])
def test_kernel_urgent_byte_is_held_out_of_line_by_rawtcp(kind: str) -> None:
    with kernel_env(kind) as env:
        ls = env.stack.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("", 7021))
        ls.listen(1)
        ls.settimeout(10)
        peer = _kernel_python(env.netns, KERNEL_SENDS, env.lab.rawtcp_addr, "7021")
        try:
            s, _ = ls.accept()
            s.settimeout(10)
            assert env.stack.wait_for(lambda: s.tcb.readable >= 11, 10)
            got = b""
            while not s.sockatmark():
                got += s.recv(100)
            assert got == b"ABCDEFG"                     # the read stopped at the mark
            assert s.recv(1, socket.MSG_OOB) == b"H"
            assert s.recv(100) == b"IJKL"
            s.sendall(b"ok")
            s.close()
            assert peer.wait(10) == 0, peer.stderr.read()
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()


@pytest.mark.parametrize("kind", ["tun"])
def test_rawtcp_urgent_byte_reaches_the_kernel_recv_oob(kind: str) -> None:
    with kernel_env(kind) as env:
        peer = _kernel_python(env.netns, KERNEL_RECEIVES, "7022")
        try:
            assert peer.stdout.readline().strip() == "ready"
            s = env.stack.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect((env.kernel_addr, 7022))
            s.sendall(b"abcdefg")
            s.send(b"!", socket.MSG_OOB)
            line = peer.stdout.readline().strip()
            assert line == repr((b"abcdefg", b"!")), (line, peer.stderr.read())
            s.close()
            assert peer.wait(10) == 0
        finally:
            if peer.poll() is None:
                peer.kill()
                peer.wait()
