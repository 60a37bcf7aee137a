"""`rawtcp peer-check`: the same checks as the lab experiments, against a remote kernel.

Used by docker/compose.yml: rawtcp (in its container) talks to a plain Linux TCP echo server
in another container over a raw IP socket on the container's own address. An nftables rule
keeps the container's kernel from answering the peer's segments with its own RSTs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import random
import socket as _socket
import subprocess
from collections.abc import Callable

from rawtcp.experiments.base import Check, is_subsequence, lab_config, read_to_eof

PORTS = range(41000, 41200)


def _route(peer: str) -> tuple[str, str]:
    """(our source address, interface) the kernel would use to reach ``peer``."""
    out = subprocess.run(["ip", "-o", "route", "get", peer], capture_output=True, text=True,
                         timeout=5)
    if out.returncode != 0:
        raise OSError(f"no route to {peer}: {out.stderr.strip()}")
    words = out.stdout.split()
    src = words[words.index("src") + 1] if "src" in words else None
    dev = words[words.index("dev") + 1] if "dev" in words else None
    if not src or not dev:
        raise OSError(f"cannot tell our address towards {peer} from: {out.stdout.strip()}")
    return src, dev


def _echo_once(st, peer: str, port: int, data: bytes, timeout: float = 10.0):
    s = st.socket(_socket.AF_INET6 if ":" in peer else _socket.AF_INET)
    s.settimeout(timeout)
    s.bind(("", random.choice(PORTS)))
    s.connect((peer, port))
    s.sendall(data)
    s.shutdown(_socket.SHUT_WR)
    return s, read_to_eof(s)


def peer_check(host: str, port: int, iface: str | None = None, pcap: str | None = None,
               progress: Callable[[str], None] = print) -> tuple[bool, str]:
    from rawtcp.faults import FaultEngine, parse_rule
    from rawtcp.link.rawip import RawIpLink
    from rawtcp.report.ladder import render_ladder
    from rawtcp.runtime import Stack
    from rawtcp.trace import Tracer

    try:
        peer = str(ipaddress.ip_address(host))
    except ValueError:
        try:
            peer = _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM)[0][4][0]
        except _socket.gaierror as e:
            raise OSError(f"cannot resolve the peer {host!r}: {e.strerror}") from None
    src, dev = _route(peer)
    progress(f"rawtcp peer-check: {host} = {peer}, our address {src} on {iface or dev}")
    checks: list[Check] = []

    def check(name: str, ok: bool, evidence: object = "") -> None:
        checks.append(Check(name, bool(ok), str(evidence)))
        progress(f"  [{'ok  ' if ok else 'FAIL'}] {name}" + (f"  ({evidence})" if evidence else ""))

    cfg = lab_config()
    data = os.urandom(200_000)
    # 1) handshake and data, no faults
    tr = Tracer()
    with Stack(RawIpLink([src], ports=PORTS, name=iface or dev), cfg, tracer=tr,
               pcap=pcap) as st:
        s, got = _echo_once(st, peer, port, data)
        check("handshake with the peer's kernel", any(e["flags"] == "SA" for e in
                                                        tr.events("seg")), "SYN-ACK received")
        check("200 kB echoed intact", hashlib.sha256(got).digest() == hashlib.sha256(data)
              .digest(), f"{len(got)} B back")
        s.close()
        closed = st.wait_for(lambda: s.tcb.state.name == "CLOSED", 15.0)
        check("close sequence completed (rawtcp CLOSED after TIME_WAIT)", closed,
              s.tcb.state.name)
    # 2) final-ACK drop: our ACK of the peer's FIN is lost once
    tr2 = Tracer()
    engine = FaultEngine([parse_rule("drop", "out flags=A state=TIME_WAIT nth=1")])
    with Stack(RawIpLink([src], ports=PORTS, name=iface or dev), cfg, tracer=tr2,
               faults=engine) as st:
        s, got = _echo_once(st, peer, port, b"final-ack-drop\n")
        s.close()
        closed = st.wait_for(lambda: s.tcb.state.name == "CLOSED", 15.0)
        segs = tr2.events("seg")
        fins = [e for e in segs if e["dir"] == "in" and "F" in e["flags"]]
        acks_tw = [e for e in segs if e["dir"] == "out" and e["flags"] == "A"
                   and e.get("state") == "TIME_WAIT"]
        states = [e["new"] for e in tr2.events("state")]
        check("our final ACK was dropped once", len(tr2.events("fault")) == 1)
        check("the peer's kernel retransmitted its FIN", len(fins) >= 2, f"{len(fins)} FINs")
        check("rawtcp re-ACKed it from TIME_WAIT", len(acks_tw) >= 2, f"{len(acks_tw)} ACKs")
        check("rawtcp ended CLOSED", closed and is_subsequence(["TIME_WAIT", "CLOSED"], states),
              states)
        ladder = render_ladder(tr2.events(), width=100, right="peer")
    ok = all(c.ok for c in checks)
    text = ladder + f"\nrawtcp peer-check: {'PASS' if ok else 'FAIL'} " \
                    f"({sum(c.ok for c in checks)}/{len(checks)} checks held)"
    return ok, text
