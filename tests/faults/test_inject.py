"""The inject action: triggers (segment, on=STATE, at=MS), the crafted segment's numbers
relative to the connection, count/every/step/sport+, both directions, in the simulator
(stack a is rawtcp, the engine on its side) and on the engine alone."""

from __future__ import annotations

import pytest

from rawtcp.core.config import MS, SEC, Config
from rawtcp.core.segment import ACK, SYN, Options, Packet, Segment
from rawtcp.core.tcb import State
from rawtcp.faults import FaultEngine, RuleError, parse_action_rule
from rawtcp.faults.inject import Conn
from rawtcp.sim import A_ADDR, B_ADDR, Sim, transfer


def run(rules: list[str], nbytes: int = 20_000, seed: int = 1,
        max_time_us: int = 3600 * SEC):
    evs: list[dict] = []
    sim = Sim(seed=seed, faults=rules, tracer=evs.append)
    res = transfer(sim, nbytes, max_time_us=max_time_us)
    return sim, res, evs


def injected(evs: list[dict]) -> list[dict]:
    return [e for e in evs if e.get("ev") == "fault" and e["action"] == "inject" and "i" in e]


def drops(evs: list[dict], stack: str, reason: str) -> list[dict]:
    return [e for e in evs if e.get("stack") == stack and e.get("ev") == "drop"
            and e.get("reason") == reason]


# ------------------------------------------------------------------ forged segments into a
def test_in_window_rst_gets_a_challenge_ack() -> None:
    """RFC 5961 3.2: an RST inside the window but not at RCV.NXT -> challenge ACK, the
    connection lives on. Forged as b's (send in) and handed to a."""
    sim, res, evs = run(["inject on=ESTABLISHED send in RST seq=rcv_nxt+10"])
    inj = injected(evs)
    assert len(inj) == 1 and inj[0]["dir"] == "in" and inj[0]["flags"] == "R"
    assert len(drops(evs, "a", "rst-in-window")) == 1
    assert res.ok


def test_exact_rst_resets() -> None:
    """RFC 5961 3.2 / RFC 9293 3.10.7.4: RST with SEG.SEQ = RCV.NXT resets."""
    _sim, res, evs = run(["inject on=ESTABLISHED send in RST seq=rcv_nxt"],
                         max_time_us=30 * SEC)
    assert len(injected(evs)) == 1
    assert not res.ok
    assert res.client is not None and res.client.error is not None


def test_syn_in_window_gets_a_challenge_ack() -> None:
    """RFC 5961 4.2: a SYN in a synchronized state -> challenge ACK, no reset."""
    _sim, res, evs = run(["inject on=ESTABLISHED send in SYN seq=rcv_nxt"])
    assert len(drops(evs, "a", "syn-in-window")) == 1
    assert res.ok


def test_old_ack_gets_a_challenge_ack() -> None:
    """RFC 5961 5.2: SEG.ACK below SND.UNA - MAX.SND.WND -> challenge ACK, segment dropped
    (its 10 bytes never reach the application)."""
    _sim, res, evs = run(["inject in len>0 nth=3 send in DATA len=10 ack=snd_una-2000000"])
    assert len(injected(evs)) == 1
    assert len(drops(evs, "a", "ack-too-old")) == 1
    assert res.ok


def test_data_beyond_the_window_is_unacceptable() -> None:
    """RFC 9293 3.10.7.4 first: data starting at RCV.NXT + RCV.WND is outside the window:
    dropped, answered with an ACK."""
    _sim, res, evs = run(["inject on=ESTABLISHED send in DATA len=100 seq=rcv_nxt+window"])
    inj = injected(evs)
    assert len(inj) == 1 and inj[0]["len"] == 100
    assert len(drops(evs, "a", "unacceptable")) == 1
    assert res.ok


# --------------------------------------------------------------- forged segments to the peer
def test_out_rst_reaches_the_peer() -> None:
    """send out: from a's address to b; b (a core stack too) answers the in-window RST with
    a challenge ACK (RFC 5961 3.2)."""
    _sim, res, evs = run(["inject on=ESTABLISHED send RST seq=snd_nxt+10"])
    inj = injected(evs)
    assert len(inj) == 1 and inj[0]["dir"] == "out"
    assert len(drops(evs, "b", "rst-in-window")) == 1
    assert res.ok


def test_count_every_step() -> None:
    """count=4 every=3 step=1000: four RSTs 3 ms apart, each 1000 further in sequence."""
    _sim, _res, evs = run(["inject on=ESTABLISHED send RST seq=snd_nxt+100 count=4 every=3 "
                           "step=1000"])
    inj = injected(evs)
    assert [e["i"] for e in inj] == [0, 1, 2, 3]
    assert [e["t"] - inj[0]["t"] for e in inj] == [0, 3 * MS, 6 * MS, 9 * MS]
    assert [(e["seq"] - inj[0]["seq"]) % 2**32 for e in inj] == [0, 1000, 2000, 3000]


def test_at_trigger_is_timed_from_the_first_segment() -> None:
    _sim, _res, evs = run(["inject at=50 send ACK"])
    first = min(e["t"] for e in evs if e.get("ev") == "seg" and e.get("stack") == "a")
    inj = injected(evs)
    assert len(inj) == 1 and inj[0]["t"] == first + 50 * MS and inj[0]["flags"] == "A"


def test_segment_trigger_fires_once_unless_count() -> None:
    _sim, _res, evs = run(["inject in flags=A len=0 send ACK"])
    assert len(injected(evs)) == 1
    _sim, _res, evs = run(["inject in flags=A len=0 count=3 send ACK"])
    assert len(injected(evs)) == 3


@pytest.mark.parametrize("rfc1337", [True, False])
def test_time_wait_assassination(rfc1337: bool) -> None:
    """RFC 1337 hazard H1 with a forged RST: b closes first and reaches TIME-WAIT on a's
    FIN; a (passive closer) sends, on entering LAST_ACK, a RST right behind its FIN, at its
    SND.NXT = FIN + 1 = b's RCV.NXT. RFC 9293 3.10.7.4 (TIME-WAIT, RST: enter CLOSED) kills
    b's TIME-WAIT; with RFC 1337's fix (Config.rfc1337) b ignores it."""
    evs: list[dict] = []
    sim = Sim(seed=1, faults=["inject on=LAST_ACK send RST"], tracer=evs.append,
              config_b=Config(rfc1337=rfc1337))
    lst = sim.a.listen(sim.a.bind(A_ADDR, 5000), 4)
    b = sim.b.connect(None, B_ADDR, A_ADDR, 5000, sim.now)
    assert sim.run_until(lambda: bool(lst.accept_queue), 5 * SEC)
    a = lst.accept()
    assert a is not None
    b.close(sim.now)
    assert sim.run_until(lambda: a.state is State.CLOSE_WAIT, 5 * SEC)
    a.close(sim.now)
    assert sim.run_until(lambda: a.closed and bool(injected(evs)), 5 * SEC)
    inj = injected(evs)
    assert len(inj) == 1 and inj[0]["flags"] == "R"
    assert inj[0]["seq"] == a.snd_nxt % 2**32           # FIN + 1
    sim.run_for(100 * MS)
    if rfc1337:
        assert b.state is State.TIME_WAIT
        assert len(drops(evs, "b", "rfc1337")) == 1
    else:
        assert b.closed
        closed = [e for e in evs if e.get("stack") == "b" and e.get("ev") == "state"
                  and e["new"] == "CLOSED"]
        assert closed and closed[0]["old"] == "TIME_WAIT"


# ------------------------------------------------------------------------ engine alone
def _pkt(flags: int, seq: int, ack: int = 0, sport: int = 1000, opts: Options = Options(),
         win: int = 100, payload: bytes = b"") -> Packet:
    return Packet("10.0.0.1", "10.0.0.2", Segment(sport, 80, seq, ack, flags, win, opts,
                                                   payload))


def test_sport_step_floods_from_other_ports() -> None:
    eng = FaultEngine([parse_action_rule("inject out flags=S send SYN seq=iss+5 count=3 "
                                         "step=10 sport+=1")])
    eng.process("out", _pkt(SYN, 1000), 0)
    got = eng.release_due(0, "out")
    assert [(p.segment.src_port, p.segment.seq, p.segment.flags) for _t, p, _c in got] == \
        [(1001, 1005, SYN), (1002, 1015, SYN), (1003, 1025, SYN)]


def test_injected_segments_wait_for_release_due() -> None:
    """The engine hands injected segments out through release_due (the runtime and the
    simulator already call it for held segments) and announces them in
    pending_release_at."""
    eng = FaultEngine([parse_action_rule("inject out flags=S send RST")])
    assert eng.process("out", _pkt(SYN, 1000), 7) == [(7, _pkt(SYN, 1000), False)]
    assert eng.pending_release_at() == 7
    assert eng.release_due(7, "in") == []
    (t, p, corrupt), = eng.release_due(7, "out")
    assert (t, p.segment.flags, p.segment.seq, corrupt) == (7, 4, 1001, False)
    assert eng.pending_release_at() is None


def test_connection_values_from_the_wire() -> None:
    """RFC 7323 2.3: windows are scaled once both SYNs carried wscale; the numbers follow
    the segments in both directions."""
    c = Conn(("10.0.0.1", 1000, "10.0.0.2", 80), 0)
    c.saw_out(Segment(1000, 80, 100, 0, SYN, 65535, Options(wscale=2)))
    c.saw_in(Segment(80, 1000, 5000, 101, SYN | ACK, 65535, Options(wscale=3)))
    c.saw_out(Segment(1000, 80, 101, 5001, ACK, 1000))
    c.saw_out(Segment(1000, 80, 101, 5001, ACK, 1000, payload=b"x" * 50))
    c.saw_in(Segment(80, 1000, 5001, 131, ACK, 20, payload=b"y" * 7))
    v = c.values()
    assert v == {"snd_una": 131, "snd_nxt": 151, "rcv_nxt": 5008, "rcv_wnd": 4000,
                 "window": 4000, "snd_wnd": 160, "iss": 100, "irs": 5000}
    c.saw_in(Segment(80, 1000, 9000, 131, ACK, 20, payload=b"z"))   # out of order: no move
    assert c.values()["rcv_nxt"] == 5008


def test_no_rules_no_work() -> None:
    """The hot path: with no rules process() returns the packet as it came, and without
    inject rules there is no injector at all."""
    p = _pkt(ACK, 1)
    eng = FaultEngine([])
    assert eng.process("out", p, 3) == [(3, p, False)] and eng.injector is None
    assert FaultEngine([parse_action_rule("drop in nth=1")]).injector is None


@pytest.mark.parametrize("text,message", [
    ("inject in flags=S", "inject needs 'send'"),
    ("inject send RST", "nothing before 'send'"),
    ("inject in send", "nothing after 'send'"),
    ("inject in send FOO", "needs a segment kind first"),
    ("inject in send RST seq=rcv_nxt+bogus", "unknown value 'bogus'"),
    ("inject in send RST seq=rcv_nxt+4294967296", "beyond 32 bits"),
    ("inject in send RST ack=1", "has no ACK flag"),
    ("inject in send DATA", "needs len=N"),
    ("inject in send DATA len=65536", "len must be within 0..65535"),
    ("inject in send RST count=0", "count must be within 1..10000"),
    ("inject in send RST count=10001", "count must be within 1..10000"),
    ("inject in send RST every=60001", "every must be within 0..60000"),
    ("inject in send RST every=1e3", "every needs milliseconds (a number such as 20 or 0.5), "
                                     "got '1e3'"),
    ("inject in send RST seq=snd_nxt+\u0661", "write a connection value or a number"),
    ("inject in send RST win=65536", "win must be within 0..65535"),
    ("inject in send RST sport+=0", "sport+ must be within 1..1000"),
    ("inject in send in RST sport+=1", "applies to 'send out' only"),
    ("inject in send RST colour=1", "unknown key 'colour'"),
    ("inject in send RST seq=1 seq=2", "given twice"),
    ("inject on=FOO send RST", "unknown state 'FOO'"),
    ("inject on=ESTABLISHED at=5 send RST", "give one trigger"),
    ("inject on=ESTABLISHED flags=A send RST", "an on=/at= trigger takes none"),
    ("inject at=5 count=2 send RST", "say count= after 'send'"),
    ("inject at=3600001 send RST", "at must be within 0..3600000"),
    ("drop on=ESTABLISHED", "inject triggers only"),
    ("drop in send RST", "'send' belongs to inject rules only"),
])
def test_every_mistake_is_one_line(text: str, message: str) -> None:
    with pytest.raises(RuleError) as ei:
        parse_action_rule(text)
    assert message in str(ei.value)
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("text", [
    "inject on=ESTABLISHED send RST seq=rcv_nxt+10",
    "inject in flags=+F send SYN seq=rcv_nxt",
    "inject at=500 send in ACK ack=snd_una-70000 count=3 every=10",
    "inject out flags=S send SYN seq=iss+1000 count=64 every=2 step=7919 sport+=1",
    "inject in len>0 nth=2 send DATA seq=rcv_nxt+window len=100 flags=PA win=5",
])
def test_text_round_trips(text: str) -> None:
    r = parse_action_rule(text)
    assert parse_action_rule(str(r)) == r
    assert str(r).startswith("inject ")


def test_ack_flag_needed_for_the_handshake_values() -> None:
    """A crafted segment without ACK carries ack 0; with ACK the default is RCV.NXT."""
    eng = FaultEngine([parse_action_rule("inject out flags=A send ACK")])
    eng.process("out", _pkt(SYN, 100), 0)
    eng.process("in", Packet("10.0.0.2", "10.0.0.1",
                             Segment(80, 1000, 5000, 101, SYN | ACK, 100)), 0)
    eng.process("out", _pkt(ACK, 101, 5001), 0)
    (_t, p, _c), = eng.release_due(0, "out")
    assert (p.segment.seq, p.segment.ack, p.segment.flags) == (101, 5001, ACK)


def test_every_example_in_the_docs_parses() -> None:
    """docs/faults.md: each rule line of its examples reads, and reads back the same."""
    import pathlib
    import re

    from rawtcp.faults import ACTIONS

    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "faults.md"
    blocks = re.findall(r"```\n(.*?)```", doc.read_text(), re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    rules = [ln for ln in lines if ln.split(" ", 1)[0] in ACTIONS and ":=" not in ln]
    assert sum(r.startswith("mangle ") for r in rules) >= 8
    assert sum(r.startswith("inject ") for r in rules) >= 8
    for text in rules:
        r = parse_action_rule(text)
        assert parse_action_rule(str(r)) == r, text


def test_on_closed_after_time_wait_is_seen_without_a_segment() -> None:
    """TIME_WAIT ends by a timer (RFC 9293 3.6.1, 2 MSL) and no segment passes: on= rules
    look at their connections every 10 ms, so on=CLOSED still fires, once, with the
    connection's last numbers."""
    evs: list[dict] = []
    sim = Sim(seed=1, faults=["inject on=CLOSED send RST"], tracer=evs.append,
              config=Config(msl=500 * MS))
    res = transfer(sim, 5000)
    assert res.ok and res.client is not None
    sim.run_for(100 * MS)
    inj = injected(evs)
    assert len(inj) == 1
    closed = [e["t"] for e in evs if e.get("stack") == "a" and e.get("ev") == "state"
              and e["new"] == "CLOSED"]
    assert closed and 0 <= inj[0]["t"] - closed[-1] <= 10 * MS
    assert inj[0]["seq"] == res.client.snd_nxt % 2**32
