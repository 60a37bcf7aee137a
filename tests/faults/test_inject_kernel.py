"""inject against the Linux kernel: RFC 5961's blind reset cases and RFC 1337's TIME-WAIT
assassination, with rawtcp forging the segments (``inject ... send RST ...``).

Each test builds its own TUN lab (a private namespace, removed on exit) and watches the
kernel's sockets with ``ss``."""

from __future__ import annotations

import contextlib
import errno
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from rawtcp.core.config import MS, Config
from rawtcp.faults import FaultEngine, parse_action_rule
from rawtcp.host.netns import exec_prefix
from rawtcp.lab import TunLab
from rawtcp.lab.kernel import kernel_sockets
from rawtcp.runtime import Stack
from rawtcp.trace import Tracer

pytestmark = pytest.mark.kernel


@contextlib.contextmanager
def lab_stack(rules: list[str]) -> Iterator[tuple[TunLab, Stack, Tracer, FaultEngine]]:
    cfg = Config(msl=500 * MS, rto_initial=300 * MS, rto_min=200 * MS, syn_retries=2)
    with TunLab() as lab:
        tracer = Tracer()
        engine = FaultEngine([parse_action_rule(r) for r in rules])
        with Stack(lab.open_link(), cfg, tracer=tracer, faults=engine,
                   name="rawtcp-inject") as st:
            yield lab, st, tracer, engine


def connect(lab: TunLab, st: Stack, port: int) -> socket.socket:
    s = st.socket()
    s.settimeout(5.0)
    s.connect((lab.kernel_addr, port))
    return s


def kernel_conns(lab: TunLab, port: int) -> list[dict]:
    return [k for k in kernel_sockets(lab.kernel_netns, port) if k["state"] != "LISTEN"]


def wait_for(pred, timeout: float) -> bool:
    """Poll a condition that only an outside tool (ss) or another thread can answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def injected(tracer: Tracer) -> list[dict]:
    return [e for e in tracer.events("fault") if e["action"] == "inject" and "i" in e]


def echo(s: socket.socket, data: bytes) -> bytes:
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_in_window_rst_gets_a_challenge_ack_from_linux() -> None:
    """RFC 5961 3.2: an RST whose sequence number is inside the receive window but not
    exactly RCV.NXT must not reset the connection; the receiver sends a challenge ACK
    <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. The kernel's RCV.NXT is rawtcp's SND.NXT, so
    ``seq=snd_nxt+10`` is 10 bytes into the kernel's window."""
    rules = ["inject on=ESTABLISHED send RST seq=snd_nxt+10"]
    with lab_stack(rules) as (lab, st, tracer, engine):
        srv = lab.server("echo", port=7301)
        srv.wait_ready()
        s = connect(lab, st, 7301)
        conn = s.tcb.conn
        assert wait_for(lambda: injected(tracer), 3.0)
        rst = injected(tracer)[0]
        assert rst["flags"] == "R"
        snd_nxt = s.tcb.snd_nxt
        assert rst["seq"] == (snd_nxt + 10) % 2**32
        # the challenge ACK: a pure ACK from the kernel acknowledging exactly our SND.NXT
        def challenge() -> list[dict]:
            return [e for e in tracer.events("seg") if e["dir"] == "in"
                    and e.get("conn") == conn and e["flags"] == "A" and e["len"] == 0
                    and e["t"] >= rst["t"] and e["ack"] == snd_nxt]
        assert wait_for(challenge, 3.0)
        assert echo(s, b"still here") == b"still here"     # the connection survived
        assert [k["state"] for k in kernel_conns(lab, 7301)] == ["ESTABLISHED"]
        assert engine.rules[0].applied == 1
        s.close()


def test_exact_rst_resets_the_linux_connection() -> None:
    """RFC 5961 3.2 (first bullet) / RFC 9293 3.10.7.4: an RST with SEG.SEQ = RCV.NXT
    resets the connection. The kernel's socket is gone; rawtcp, which never saw the forged
    RST, learns it from the kernel's RST to its next segment (RFC 9293 3.10.7.1)."""
    rules = ["inject on=ESTABLISHED send RST seq=snd_nxt"]
    with lab_stack(rules) as (lab, st, tracer, _engine):
        srv = lab.server("echo", port=7302)
        srv.wait_ready()
        s = connect(lab, st, 7302)
        assert wait_for(lambda: injected(tracer), 3.0)
        assert wait_for(lambda: not kernel_conns(lab, 7302), 3.0)
        s.sendall(b"anyone?")
        with pytest.raises(OSError) as ei:
            s.recv(100)
        assert ei.value.errno == errno.ECONNRESET


def _set_rfc1337(lab: TunLab, value: int) -> None:
    subprocess.run(exec_prefix(lab.kernel_netns)
                   + ["sysctl", "-qw", f"net.ipv4.tcp_rfc1337={value}"], check=True,
                   timeout=10)


@pytest.mark.parametrize("rfc1337", [0, 1])
def test_time_wait_assassination_of_linux(rfc1337: int) -> None:
    """RFC 1337 (TIME-WAIT Assassination Hazards), hazard H1: a RST that reaches a
    connection in TIME-WAIT ends it early (RFC 9293 3.10.7.4, TIME-WAIT: "If the RST bit is
    set then enter the CLOSED state"). The kernel closes first and sits in TIME-WAIT (60 s
    on Linux); rawtcp, passive closer, goes CLOSED on the kernel's last ACK and then forges
    a RST at exactly the kernel's RCV.NXT. With net.ipv4.tcp_rfc1337=0 (Linux's default)
    the TIME-WAIT socket dies; with 1 (RFC 1337's fix: ignore RST in TIME-WAIT) it stays."""
    rules = ["inject on=CLOSED send RST"]
    with lab_stack(rules) as (lab, st, tracer, _engine):
        _set_rfc1337(lab, rfc1337)
        srv = lab.server("source", port=7303, count=3000)
        srv.wait_ready()
        s = connect(lab, st, 7303)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        assert len(got) == 3000
        s.close()
        assert wait_for(lambda: injected(tracer), 3.0)
        rst = injected(tracer)[0]
        # the RST carries our final SND.NXT (FIN + 1): the kernel's TIME-WAIT RCV.NXT
        assert rst["flags"] == "R" and rst["seq"] == s.tcb.snd_nxt % 2**32
        if rfc1337 == 0:
            assert wait_for(lambda: not kernel_conns(lab, 7303), 2.0)
        else:
            time.sleep(0.5)   # nothing to await: the socket must still be there afterwards
            assert [k["state"] for k in kernel_conns(lab, 7303)] == ["TIME_WAIT"]
