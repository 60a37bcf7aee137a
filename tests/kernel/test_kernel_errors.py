"""rawtcp against real Linux TCP: connect failures, and what rawtcp says without privileges."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kernel_helpers import LINKS, SYN_RETRIES, kernel_env

import rawtcp

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("kind", LINKS)
def test_connect_to_closed_port_is_refused(kind: str) -> None:
    """RFC 9293 3.10.7.1: the kernel answers a SYN to a closed port with RST,ACK; connect()
    raises ECONNREFUSED (RFC 9293 3.10.7.3: RST in SYN_SENT)."""
    with kernel_env(kind) as env:
        s = env.stack.socket()
        s.settimeout(5)
        with pytest.raises(ConnectionRefusedError) as e:
            s.connect((env.kernel_addr, 7201))
        assert e.value.errno == errno.ECONNREFUSED
        conn = s.tcb.conn
        rst = [e for e in env.segs(conn, "in") if "R" in e["flags"]]
        assert rst and rst[0]["flags"] == "RA" and rst[0]["rack"] == 1
        assert env.states(conn) == ["SYN_SENT", "CLOSED"]


def _assert_syn_timeout(env, host: str, port: int) -> None:
    s = env.stack.socket()
    s.settimeout(30)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as e:
        s.connect((host, port))
    took = time.monotonic() - t0
    assert e.value.errno == errno.ETIMEDOUT
    syns = [e for e in env.segs(s.tcb.conn, "out") if e["flags"] == "S"]
    assert len(syns) == 1 + SYN_RETRIES                    # Linux tcp_syn_retries semantics
    # RFC 6298 5.5: the RTO doubles: 300 ms, 600 ms, then 1.2 s before giving up
    gaps = [b["t"] - a["t"] for a, b in zip(syns, syns[1:])]
    assert gaps[1] >= 1.8 * gaps[0]
    assert 0.3 + 0.6 + 1.2 <= took < 6


def test_black_hole_tun_no_route_times_out() -> None:
    """A SYN to an address nobody owns inside the TUN lab (the namespace does not forward):
    ETIMEDOUT after 1 + syn_retries SYNs."""
    with kernel_env("tun", family="ipv4") as env:
        _assert_syn_timeout(env, "10.77.0.99", 7202)


@pytest.mark.parametrize("kind", ("packet", "rawip"))
def test_black_hole_all_incoming_dropped_times_out(kind: str) -> None:
    """The kernel listens, but every incoming segment is dropped (fault 'drop in')."""
    with kernel_env(kind, faults=[("drop", "in")]) as env:
        srv = env.lab.server("echo", port=7203, timeout=20)
        srv.wait_ready()
        _assert_syn_timeout(env, env.kernel_addr, 7203)


UNPRIV = """
import sys
what = sys.argv[1]
try:
    if what == "tunlab":
        from rawtcp.lab import TunLab
        TunLab().__enter__()
    elif what.startswith("vethlab-"):
        from rawtcp.lab import VethLab
        VethLab(mode=what.split("-")[1]).__enter__()
    elif what == "tunlink":
        from rawtcp.link.tun import TunLink
        TunLink(["10.77.0.2"], ["10.77.0.1"], name="rtnobody0")
    elif what == "packetlink":
        from rawtcp.link.packet import PacketLink
        PacketLink("lo", ["127.0.0.5"])
    elif what == "rawiplink":
        from rawtcp.link.rawip import RawIpLink
        RawIpLink(["127.0.0.1"])
except OSError as e:
    print(e.errno, e)
    sys.exit(3)
print("opened without privileges")
"""


def run_unprivileged(what: str) -> subprocess.CompletedProcess:
    root = Path(rawtcp.__file__).resolve().parents[1]     # works from any working directory
    env = dict(os.environ, PYTHONPATH=str(root))
    # No capabilities at all (a container without NET_ADMIN/NET_RAW). The uid stays 0 so
    # that the checkout and its virtualenv stay readable wherever they live (a checkout under
    # /root is not readable by nobody); without capabilities uid 0 is not privileged.
    return subprocess.run(["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
                           "--bounding-set=-all", sys.executable, "-c", UNPRIV, what],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("what", ["tunlab", "vethlab-packet", "vethlab-rawip", "tunlink",
                                  "packetlink", "rawiplink"])
def test_unprivileged_gets_a_clear_message(what: str) -> None:
    """Run as nobody with no capabilities: opening a lab or a link must say which
    privileges rawtcp needs (root, or NET_ADMIN + NET_RAW + /dev/net/tun)."""
    p = run_unprivileged(what)
    assert p.returncode == 3, (p.stdout, p.stderr)
    out = p.stdout.strip()
    assert out.startswith(f"{errno.EPERM} "), out
    for words in ("root", "CAP_NET_ADMIN", "CAP_NET_RAW", "/dev/net/tun"):
        assert words in out, f"{what}: message lacks {words!r}: {out}"


@pytest.mark.parametrize("kind", ("tun", "packet"))
def test_kernel_reset_gives_econnreset(kind: str) -> None:
    """The kernel app closes with SO_LINGER {1, 0}: its RST (RFC 9293 3.10.7.4 in
    ESTABLISHED) makes our recv fail with ECONNRESET, and the connection is CLOSED."""
    with kernel_env(kind) as env:
        srv = env.lab.server("source", port=7204, count=1000, linger0=True, timeout=20)
        srv.wait_ready()
        s = env.stack.socket()
        s.settimeout(5)
        s.connect((env.kernel_addr, 7204))
        assert srv.wait_event("closed")["how"] == "rst"
        with pytest.raises(ConnectionResetError) as e:
            for _ in range(100):
                s.recv(65536)
        assert e.value.errno == errno.ECONNRESET
        assert env.states(s.tcb.conn)[-1] == "CLOSED"
        assert any("R" in e["flags"] for e in env.segs(s.tcb.conn, "in"))
