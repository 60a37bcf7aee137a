"""mangle against the Linux kernel: what a rewritten SYN makes Linux agree to, and a TTL
set by a rule on the wire. Each test has its own TUN lab (a private namespace)."""

from __future__ import annotations

import pytest

from rawtcp.core.config import MS, Config
from rawtcp.faults import FaultEngine, parse_action_rule
from rawtcp.lab import TunLab
from rawtcp.runtime import Stack
from rawtcp.trace import Tracer
from rawtcp.wire import decode_ip

pytestmark = pytest.mark.kernel


class Capture:
    """A pcap stand-in: keeps every packet the runtime writes or reads, as bytes."""

    def __init__(self) -> None:
        self.raws: list[bytes] = []

    def record(self, raw: bytes, _ts_us: int) -> None:
        self.raws.append(bytes(raw))

    def close(self) -> None:
        pass


def _run(rules: list[str], port: int, count: int) -> tuple[bytes, Tracer, Capture, Stack]:
    cfg = Config(msl=500 * MS, rto_initial=300 * MS, rto_min=200 * MS)
    cap = Capture()
    with TunLab() as lab:
        srv = lab.server("source", port=port, count=count)
        srv.wait_ready()
        tracer = Tracer()
        engine = FaultEngine([parse_action_rule(r) for r in rules])
        with Stack(lab.open_link(), cfg, tracer=tracer, faults=engine, pcap=cap,
                   name="rawtcp-mangle") as st:
            s = st.socket()
            s.settimeout(5.0)
            s.connect((lab.kernel_addr, port))
            got = b""
            while chunk := s.recv(65536):
                got += chunk
            s.close()
            tcb = s.tcb
            return got, tracer, cap, tcb


def test_stripped_syn_options_make_linux_use_none_and_mss_536() -> None:
    """RFC 9293 3.7.1 (MSS), RFC 7323 1.3 (window scale, timestamps only when both SYNs
    carry them), RFC 2018 2 (SACK only when SACK-permitted was in the SYN): Linux answers a
    SYN without them with a SYN-ACK without them and sends segments of at most 536 bytes."""
    got, tracer, _cap, tcb = _run(["mangle out flags=S set -sack -ts -wscale mss=536"],
                                  7401, 20_000)
    assert len(got) == 20_000
    synack = [e for e in tracer.events("seg") if e["dir"] == "in" and e["flags"] == "SA"][0]
    assert set(synack["opts"]) == {"mss"}
    data = [e["len"] for e in tracer.events("seg") if e["dir"] == "in" and e["len"] > 0]
    assert max(data) == 536
    assert not tcb.ws_ok and not tcb.sack_ok and not tcb.ts_ok


def test_ttl_set_by_a_rule_is_on_the_wire() -> None:
    """mangle ... set ttl=1: our ACKs leave with IP TTL 1 (the kernel, the destination,
    still takes them: RFC 791 TTL matters to routers), the SYN with the default 64."""
    got, _tracer, cap, _tcb = _run(["mangle out flags=A len=0 set ttl=1"], 7402, 5000)
    assert len(got) == 5000
    ours = [r for r in cap.raws if r[12:16] == bytes([10, 77, 0, 2])]
    acks = [r for r in ours if decode_ip(r).segment.flags == 0x10
            and not decode_ip(r).segment.payload]
    syns = [r for r in ours if decode_ip(r).segment.flags & 0x02]
    assert acks and all(r[8] == 1 for r in acks)
    assert syns and syns[0][8] == 64
    for r in acks:              # the IPv4 header checksum was made for TTL 1 (RFC 791)
        words = sum(int.from_bytes(r[i:i + 2], "big") for i in range(0, 20, 2))
        while words >> 16:
            words = (words & 0xFFFF) + (words >> 16)
        assert words == 0xFFFF


def test_cli_experiment_takes_inject_and_mangle(tmp_path) -> None:
    """`rawtcp experiment run lifecycle --inject ... --mangle ...`: the rules act (one
    in-window RST, RFC 5961 3.2, which Linux answers with a challenge ACK; ACKs with a
    halved window) and the lifecycle still passes."""
    import json
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "rawtcp", "experiment", "run", "lifecycle",
                        "--inject", "on=ESTABLISHED send RST seq=snd_nxt+10",
                        "--mangle", "out flags=A len=0 set win*=0.5",
                        "--report", str(tmp_path), "--json", "-q"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["passed"]
    events = [json.loads(ln) for ln in
              (tmp_path / "lifecycle.trace.jsonl").read_text().splitlines()]
    faults = [e for e in events if e.get("ev") == "fault"]
    injected = [e for e in faults if e["action"] == "inject"]
    assert len(injected) == 1 and injected[0]["flags"] == "R"
    mangled = [e for e in faults if e["action"] == "mangle"]
    assert mangled and all(e["win"] == e["win_was"] // 2 for e in mangled)
