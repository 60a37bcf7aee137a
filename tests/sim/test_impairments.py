"""Two-stack runs with reordering, duplication, NewReno-only (no SACK/timestamps/window
scaling), serialization delay, determinism, and the close sequence on the simulated link."""

from __future__ import annotations

import pytest

from rawtcp.core.config import MS, SEC, Config
from rawtcp.core.tcb import State
from rawtcp.sim import A_ADDR, B_ADDR, Sim, transfer

MB = 1_000_000
PLAIN = dict(sack=False, timestamps=False, window_scaling=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reordering(seed: int) -> None:
    """RFC 9293 3.10.7.4 (reassembly of out-of-order segments), RFC 5681 4.2."""
    sim = Sim(seed=seed, reorder=0.2)
    res = transfer(sim, MB, seed=seed)
    assert res.ok and res.recv_ab == res.sent_ab and res.recv_ba == res.sent_ba


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplication(seed: int) -> None:
    """RFC 9293 3.10.7.4: duplicates are trimmed/ACKed, never delivered twice."""
    sim = Sim(seed=seed, duplicate=0.2)
    res = transfer(sim, MB, seed=seed)
    assert res.ok and res.recv_ab == res.sent_ab and res.recv_ba == res.sent_ba


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_everything_at_once(seed: int) -> None:
    """RFC 9293 3.10 + RFC 5681/6675: loss, reordering and duplication together."""
    sim = Sim(seed=seed, loss=0.05, reorder=0.1, duplicate=0.1)
    res = transfer(sim, MB, seed=seed)
    assert res.ok


@pytest.mark.parametrize("loss", [0.05, 0.2])
def test_newreno_without_sack(loss: float) -> None:
    """RFC 5681 + RFC 6582 (no SACK, no timestamps, no window scaling) under loss."""
    sim = Sim(seed=4, loss=loss, config=Config(**PLAIN))
    res = transfer(sim, MB, seed=4)
    assert res.ok
    assert not res.info["client"]["sack"] and not res.info["client"]["timestamps"]


def test_mixed_options_between_stacks() -> None:
    """RFC 7323 / RFC 2018: one side without options -> neither uses them."""
    sim = Sim(seed=9, loss=0.05, config=Config(), config_b=Config(**PLAIN))
    res = transfer(sim, 300_000, seed=9)
    assert res.ok
    assert not res.info["client"]["sack"] and res.info["client"]["snd_wscale"] == 0


def test_serialization_bandwidth_limits_throughput() -> None:
    """RFC 9293 3.10 over a slow link: 1 MB at 8 Mbit/s needs at least one second."""
    sim = Sim(seed=1, bandwidth_bps=8_000_000, config=Config(time_wait=1 * MS))
    res = transfer(sim, MB, seed=1)
    assert res.ok
    assert res.time_us >= 1 * SEC


def test_deterministic_for_a_seed() -> None:
    """RFC 9293 3.10 runs are reproducible: the same seed gives the same run, event for
    event."""
    runs = []
    for _ in range(2):
        ev: list[dict] = []
        sim = Sim(seed=11, loss=0.1, reorder=0.1, tracer=ev.append)
        res = transfer(sim, 200_000, seed=3)
        assert res.ok
        runs.append((res.time_us, sim.events, len(ev), ev[-1]))
    assert runs[0] == runs[1]


def test_close_sequence_both_sides() -> None:
    """RFC 9293 3.6: the client (first FIN) goes through TIME_WAIT, the server through
    LAST_ACK or TIME_WAIT; both reach CLOSED."""
    ev: list[dict] = []
    sim = Sim(seed=1, tracer=ev.append)
    res = transfer(sim, 10_000, seed=1)
    assert res.ok
    states = [(e["stack"], e["old"], e["new"]) for e in ev if e["ev"] == "state"
              and e.get("conn", "").count(">") == 1 and "*" not in e["conn"]]
    assert ("a", "CLOSED", "SYN_SENT") in states
    assert ("b", "SYN_RECEIVED", "ESTABLISHED") in states
    finals = {s: [x for x in states if x[0] == s][-1] for s in ("a", "b")}
    assert finals["a"][2] == "CLOSED" and finals["b"][2] == "CLOSED"
    assert any(new == "TIME_WAIT" for _, _, new in states)
    assert sim.a.connections() == [] and sim.b.connections() == []


def test_rst_to_closed_port_over_link() -> None:
    """RFC 9293 3.10.7.1 end to end: connect to a port nobody listens on -> ECONNREFUSED."""
    import errno

    sim = Sim(seed=1)
    t = sim.a.connect(None, A_ADDR, B_ADDR, 9, 0)
    assert sim.run_until(lambda: t.closed, 10 * SEC)
    assert t.error == errno.ECONNREFUSED and t.state is State.CLOSED


def test_syn_to_unreachable_peer_times_out() -> None:
    """RFC 9293 3.8.3 / Linux tcp_syn_retries: all SYNs lost -> ETIMEDOUT."""
    import errno

    sim = Sim(seed=1, loss=1.0, config=Config(syn_retries=2))
    t = sim.a.connect(None, A_ADDR, B_ADDR, 80, 0)
    assert sim.run_until(lambda: t.closed, 60 * SEC)
    assert t.error == errno.ETIMEDOUT
    assert 7 * SEC <= sim.now < 8 * SEC   # 1 + 2 + 4 s


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("loss", [0.0, 0.05])
def test_zero_window_then_resume(seed: int, loss: float) -> None:
    """RFC 9293 3.8.6.1: the applications read nothing for 3 s, the windows close, the
    senders probe (persist timer) and never send data into a zero window; the transfer
    completes once reading starts."""
    ev: list[dict] = []
    sim = Sim(seed=seed, loss=loss, config=Config(rcvbuf=16384, sndbuf=32768), tracer=ev.append)
    res = transfer(sim, 200_000, seed=seed, read_after_us=3 * SEC)
    assert res.ok
    assert any(e["ev"] == "timer" and e["name"] == "persist" and e["action"] == "fired"
               for e in ev)
    last_win = {"a": None, "b": None}
    # a segment the stack found unacceptable was dropped whole: its window never counted
    dropped = {(e["stack"], e["t"], e["seq"]) for e in ev
               if e["ev"] == "drop" and e.get("dir") == "in" and "seq" in e}
    for e in ev:
        if e["ev"] != "seg":
            continue
        if e["dir"] == "in" and e["flags"] != "S" and (e["stack"], e["t"], e["seq"]) not in dropped:
            last_win[e["stack"]] = e["win"]
        elif e["dir"] == "out" and e["len"] > 0:
            assert last_win[e["stack"]] != 0, f"data sent into a zero window: {e}"


@pytest.mark.parametrize("seed", [1, 2])
def test_slow_reader_flow_control(seed: int) -> None:
    """RFC 9293 3.8.6 flow control with a reader slower than the link."""
    sim = Sim(seed=seed, loss=0.02, config=Config(rcvbuf=16384, sndbuf=32768))
    res = transfer(sim, 200_000, seed=seed, read_chunk=500)
    assert res.ok
    assert res.time_us - 60 * SEC >= 200_000 // 500 * 5 * MS * 9 // 10


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("loss", [0.1, 0.2])
def test_close_sequence_under_loss(loss: float, seed: int) -> None:
    """RFC 9293 3.6 with lost FINs and ACKs: each side walks a legal close path (FIN_WAIT_1
    -> FIN_WAIT_2/CLOSING -> TIME_WAIT -> CLOSED, or CLOSE_WAIT -> LAST_ACK -> CLOSED) and
    ends CLOSED without an error; exactly the side(s) whose FIN went first pass TIME_WAIT."""
    ev: list[dict] = []
    sim = Sim(seed=seed, loss=loss, tracer=lambda e: ev.append(e) if e["ev"] == "state" else None)
    res = transfer(sim, 100_000, seed=seed)
    assert res.ok and sim.a.connections() == [] and sim.b.connections() == []
    legal = {
        ("ESTABLISHED", "FIN_WAIT_1"), ("ESTABLISHED", "CLOSE_WAIT"),
        ("FIN_WAIT_1", "FIN_WAIT_2"), ("FIN_WAIT_1", "CLOSING"), ("FIN_WAIT_1", "TIME_WAIT"),
        ("FIN_WAIT_2", "TIME_WAIT"), ("CLOSING", "TIME_WAIT"), ("TIME_WAIT", "CLOSED"),
        ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSED"),
    }
    for side in ("a", "b"):
        path = [(e["old"], e["new"]) for e in ev
                if e["stack"] == side and "*" not in e["conn"]]
        opened = path.index(("SYN_SENT" if side == "a" else "SYN_RECEIVED", "ESTABLISHED"))
        closing = path[opened + 1:]
        assert set(closing) <= legal, f"{side}: {closing}"
        assert closing[-1][1] == "CLOSED"
        active = closing[0] == ("ESTABLISHED", "FIN_WAIT_1")
        assert (("TIME_WAIT", "CLOSED") in closing) == active


@pytest.mark.parametrize("loss", [0.0, 0.05])
def test_sequence_numbers_wrap_around(loss: float) -> None:
    """RFC 9293 3.4 (sequence arithmetic modulo 2**32): both ISNs just below 2**32, so
    sequence numbers, ACKs and SACK blocks wrap in the middle of a 1 MB transfer."""
    sim = Sim(seed=5, loss=loss, isn=lambda *a: (1 << 32) - 300_000)
    res = transfer(sim, MB, seed=5)
    assert res.ok
    assert res.info["client"]["snd_max"] < res.info["client"]["iss"]   # it did wrap


# ---------------------------------------------------------------------------------------------
# one fault language: the simulator takes the rules a real link takes (docs/faults.md)
# ---------------------------------------------------------------------------------------------


def _faults_on_a_link(rule: str, nbytes: int) -> list[dict]:
    """``rule`` in the FaultEngine of a runtime stack on an in-process link: the stack
    (10.0.0.1) sends ``nbytes`` to a second stack; the fault events traced."""
    import hashlib

    from rawtcp.faults import FaultEngine, parse_action_rule
    from rawtcp.link.memory import MemoryLink
    from rawtcp.runtime import Stack as LinkStack
    from rawtcp.trace import Tracer

    la, lb = MemoryLink.pair(A_ADDR, B_ADDR)
    tr = Tracer()
    a = LinkStack(la, Config(), tracer=tr, faults=FaultEngine([parse_action_rule(rule)]))
    b = LinkStack(lb, Config())
    data = bytes(range(256)) * (nbytes // 256)
    try:
        ls = b.socket()
        ls.bind((B_ADDR, 5000))
        ls.listen(1)
        c = a.socket()
        c.settimeout(10)
        c.connect((B_ADDR, 5000))
        s, _ = ls.accept()
        s.settimeout(10)
        c.sendall(data)
        got = bytearray()
        while len(got) < len(data):
            chunk = s.recv(65536)
            assert chunk, "the receiver saw EOF before all the data"
            got += chunk
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        c.close()
        s.close()
        ls.close()
    finally:
        a.close()
        b.close()
    return tr.events("fault")


def test_a_rule_gives_the_same_verdict_in_the_simulator_and_on_a_link() -> None:
    """docs/faults.md: ``nth=3`` acts on the 3rd matching segment, wherever the engine runs:
    the third data segment rawtcp sends (relative seq 1 + 2 segments, RFC 9293 3.4) is
    dropped once, and the data still arrives whole (RFC 9293 3.10.7.4 retransmission)."""
    rule = "drop out len>0 nth=3"
    ev: list[dict] = []
    sim = Sim(seed=1, faults=[rule], tracer=ev.append)
    res = transfer(sim, 60_000, seed=1)
    assert res.ok
    in_sim = [(e["action"], e["dir"], e["rseq"], e["len"]) for e in ev if e["ev"] == "fault"]
    on_link = [(e["action"], e["dir"], e["rseq"], e["len"])
               for e in _faults_on_a_link(rule, 60_000)]
    assert len(in_sim) == 1 and in_sim == on_link
    _, _, rseq, seglen = in_sim[0]
    assert seglen > 0 and rseq == 1 + 2 * seglen


def test_impairment_parameters_are_rules() -> None:
    """``Sim(loss=P)`` is ``Sim(faults=["drop p=P"])``: the same run, event for event
    (RFC 9293 3.10 under the same seeded loss)."""
    runs = []
    for kw in ({"loss": 0.05, "duplicate": 0.05}, {"faults": ["drop p=0.05", "duplicate p=0.05"]}):
        ev: list[dict] = []
        sim = Sim(seed=7, tracer=ev.append, **kw)
        res = transfer(sim, 100_000, seed=7)
        assert res.ok
        runs.append((res.time_us, sim.lost, [(e["ev"], e.get("action"), e.get("rseq"))
                                             for e in ev if e["ev"] in ("seg", "fault")]))
    assert runs[0] == runs[1]
    assert any(a == "drop" for _ev, a, _r in runs[0][2])


def test_corrupted_segment_is_dropped_by_the_receiver() -> None:
    """RFC 9293 3.1 (checksum): a segment whose checksum is wrong is discarded; the sender
    retransmits it and the transfer completes."""
    ev: list[dict] = []
    sim = Sim(seed=2, faults=["corrupt out len>0 nth=2"], tracer=ev.append)
    res = transfer(sim, 50_000, seed=2)
    assert res.ok and sim.corrupted == 1
    drops = [e for e in ev if e["ev"] == "drop" and e.get("reason") == "bad-checksum"]
    assert [(e["stack"], e["dir"]) for e in drops] == [("b", "in")]


def test_reorder_rule_releases_after_the_next_segment() -> None:
    """docs/faults.md reorder: held until ``after`` later segments in its direction passed;
    RFC 9293 3.10.7.4 reassembly puts the data back in order."""
    ev: list[dict] = []
    sim = Sim(seed=3, faults=["reorder out len>0 nth=1 after=2"], tracer=ev.append)
    res = transfer(sim, 50_000, seed=3)
    assert res.ok
    held = [e for e in ev if e["ev"] == "fault" and e["action"] == "reorder"]
    released = [e for e in ev if e["ev"] == "fault_release"]
    assert len(held) == 1 and len(released) == 1 and released[0]["why"] == "after"
    assert released[0]["rseq"] == held[0]["rseq"] == 1
