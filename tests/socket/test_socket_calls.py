"""The rest of socket.socket's call set on rawtcp sockets (MemoryLink pair), checked against
what Linux's own TCP does (a kernel socket pair in a throwaway network namespace)."""

from __future__ import annotations

import errno
import io
import json
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
from socket_helpers import B4, Pair

from rawtcp.socket import Socket

PORT = 7300

KERNEL_PROBE = textwrap.dedent("""
    import json, os, socket, subprocess
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    out = {}
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
    c = socket.create_connection(l.getsockname()); s, _ = l.accept()
    out["sendto"] = c.sendto(b"hi", ("192.0.2.1", 9))
    d, a = s.recvfrom(10); out["recvfrom"] = [d.decode(), a]
    c.send(b"abc"); b = bytearray(5)
    n, a = s.recvfrom_into(b); out["recvfrom_into"] = [n, a]
    out["sendmsg_addr"] = c.sendmsg([b"x"], [], 0, ("192.0.2.1", 9))
    u = socket.socket()
    for name, fn in (("unconnected_sendto", lambda: u.sendto(b"x", ("127.0.0.1", 9))),
                     ("unconnected_recvfrom", lambda: u.recvfrom(1))):
        try:
            fn()
        except OSError as e:
            out[name] = e.errno
    try:
        c.getsockopt(socket.SOL_SOCKET, 9999)
    except OSError as e:
        out["bad_option"] = e.errno
    six = socket.socket(socket.AF_INET6)
    out["v6only_default"] = six.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def linux() -> dict:
    """What Linux answers (run in `unshare -n`: a namespace of its own that ends with it)."""
    r = subprocess.run(["unshare", "-n", sys.executable, "-c", KERNEL_PROBE],
                       capture_output=True, text=True, timeout=30, check=True)
    return json.loads(r.stdout)


def _connected(pair: Pair) -> tuple[Socket, Socket, Socket]:
    ls = pair.b.socket()
    ls.bind((B4, PORT))
    ls.listen()
    c = pair.a.socket()
    c.settimeout(5)
    c.connect((B4, PORT))
    ls.settimeout(5)
    s, _ = ls.accept()
    return c, s, ls


def _read(s: Socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            break
        out += d
    return out


def test_sendto_recvfrom_as_linux(pair: Pair, linux: dict) -> None:
    """send(2): on a connected stream socket sendto's address is ignored; recvfrom gives no
    address; unconnected: EPIPE and ENOTCONN."""
    c, s, _ = _connected(pair)
    assert c.sendto(b"hi", ("192.0.2.1", 9)) == linux["sendto"] == 2
    assert c.sendto(b"!", 0, ("192.0.2.1", 9)) == 1
    d, a = s.recvfrom(3)
    d += _read(s, 3 - len(d))
    assert (d.decode()[:2], a) == (linux["recvfrom"][0], linux["recvfrom"][1])
    c.send(b"abc")
    b = bytearray(5)
    n, a = s.recvfrom_into(b)
    n += s.recv_into(memoryview(b)[n:], 3 - n) if n < 3 else 0
    assert [n, a] == linux["recvfrom_into"] and bytes(b[:3]) == b"abc"
    assert c.sendmsg([b"x"], [], 0, ("192.0.2.1", 9)) == linux["sendmsg_addr"]
    u = pair.a.socket()
    with pytest.raises(OSError) as e:
        u.sendto(b"x", (B4, 9))
    assert e.value.errno == linux["unconnected_sendto"] == errno.EPIPE
    with pytest.raises(OSError) as e:
        u.recvfrom(1)
    assert e.value.errno == linux["unconnected_recvfrom"] == errno.ENOTCONN


def test_unsupported_option_and_call_are_oserrors(pair: Pair, linux: dict) -> None:
    """An option rawtcp lacks: ENOPROTOOPT (as Linux for an unknown one); a socket.socket
    call it lacks: EOPNOTSUPP, never AttributeError; dup/detach: EOPNOTSUPP."""
    s = pair.a.socket()
    with pytest.raises(OSError) as e:
        s.getsockopt(socket.SOL_SOCKET, 9999)
    assert e.value.errno == linux["bad_option"] == errno.ENOPROTOOPT
    for call in (s.dup, s.detach):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EOPNOTSUPP
    if "sendmsg_afalg" in dir(socket.socket):
        with pytest.raises(OSError) as e:
            s.sendmsg_afalg([b"x"])
        assert e.value.errno == errno.EOPNOTSUPP
    with pytest.raises(AttributeError):
        s.no_such_thing  # noqa: B018 - names socket.socket lacks stay AttributeErrors


def test_attributes_asyncio_and_socketserver_read(pair: Pair, linux: dict) -> None:
    s = pair.a.socket(socket.AF_INET6)
    assert s.family == socket.AF_INET6 and isinstance(s.family, socket.AddressFamily)
    assert s.type == socket.SOCK_STREAM and isinstance(s.type, socket.SocketKind)
    assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == linux["v6only_default"]
    assert s.getblocking() and s.timeout is None
    s.setblocking(False)
    assert not s.getblocking() and s.timeout == 0.0
    assert not s.get_inheritable()
    with s as same:
        assert same is s and "family=" in repr(s) and "laddr=" in repr(s)
    assert "closed" in repr(s)


def test_makefile_as_socket_makefile(pair: Pair) -> None:
    """makefile(): buffered reads of lines, writes; closing the socket while a file is
    open keeps the connection until the file closes too (socket.SocketIO refs)."""
    c, s, _ = _connected(pair)

    def server() -> None:
        f = s.makefile("rwb")
        s.close()                                  # the file still works
        line = f.readline()
        f.write(line.upper())
        f.flush()
        f.close()                                  # now the socket really closes

    th = threading.Thread(target=server)
    th.start()
    r = c.makefile("r", encoding="ascii")
    w = c.makefile("wb", buffering=0)
    w.write(b"hello\n")
    assert r.readline() == "HELLO\n"
    assert r.read() == ""                          # EOF: the server's close came
    th.join(5)
    r.close()
    w.close()
    c.close()
    assert c.fileno() == -1


def test_sendfile_sends_the_file(pair: Pair) -> None:
    c, s, _ = _connected(pair)
    data = bytes(range(256)) * 1000
    f = io.BytesIO(data)
    f.mode = "rb"                                  # type: ignore[misc]
    assert c.sendfile(f, 100, 5000) == 5000 and f.tell() == 5100
    assert _read(s, 5000) == data[100:5100]


def test_dual_stack_listener_takes_ipv4_as_mapped(pair: Pair) -> None:
    """ipv6(7): an AF_INET6 socket on '::' without IPV6_V6ONLY also accepts IPv4
    connections, their addresses v4-mapped (RFC 4291 2.5.5.2)."""
    ls = pair.b.socket(socket.AF_INET6)
    ls.bind(("::", PORT))
    ls.listen()
    ls.settimeout(5)
    c = pair.a.socket(socket.AF_INET)
    c.settimeout(5)
    c.connect((B4, PORT))
    s, addr = ls.accept()
    assert s.family == socket.AF_INET6
    assert addr[0] == "::ffff:10.1.0.1" and s.getsockname()[0] == f"::ffff:{B4}"
    c.sendall(b"v4")
    assert _read(s, 2) == b"v4"
    only6 = pair.b.socket(socket.AF_INET6)
    only6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    only6.bind(("::", PORT + 1))
    only6.listen()
    c2 = pair.a.socket(socket.AF_INET)
    c2.settimeout(5)
    assert c2.connect_ex((B4, PORT + 1)) == errno.ECONNREFUSED
