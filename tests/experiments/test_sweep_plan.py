"""The sweep without a kernel: planning (one rule per reference segment that hits exactly that
segment), reading facts from traces, classifying outcomes, and the command line's argument
errors. The runs here are two rawtcp stacks on the simulator's virtual clock (deterministic
for a seed): stack a plays rawtcp, stack b the peer, and the fault engine sits on a's side as
it does on a real link."""

from __future__ import annotations

import pytest

from rawtcp.core.config import Config
from rawtcp.experiments import sweep as sw
from rawtcp.faults import parse_action_rule
from rawtcp.sim import Sim, transfer

# The "experiment's own" rule: drop a's ACK of b's FIN once, so b retransmits its FIN and
# the same segment (in FA seq=3001) passes the engine twice.
OWN = "drop out flags=A seq=3002 len=0 nth=4"
NBYTES = 3000


def _run(extra: list[str] = ()) -> list[dict]:
    evs: list[dict] = []
    sim = Sim(seed=3, faults=[OWN, *extra], tracer=evs.append)
    transfer(sim, NBYTES, max_time_us=200_000_000)
    return [e for e in evs if e.get("stack") == "a"]


@pytest.fixture(scope="module")
def reference() -> list[dict]:
    return _run()


@pytest.fixture(scope="module")
def segments(reference) -> list[sw.Segment]:
    return sw.reference_segments(reference)


def _hit(events: list[dict], rule: str) -> list[dict]:
    text = parse_action_rule(rule).text
    return [e for e in events if e.get("ev") == "fault" and e.get("rule") == text]


# ------------------------------------------------------------------------------ planning
def test_reference_lists_what_the_engine_sees(reference, segments):
    """Outgoing segments the experiment's own rule dropped are not in the list (a later rule
    never sees them); incoming ones are listed as the core saw them; numbering is 1..N."""
    own = [e for e in reference if e.get("ev") == "fault"]
    assert len(own) == 1 and own[0]["dir"] == "out" and own[0]["flags"] == "A"
    outs = [e for e in reference if e.get("ev") == "seg" and e["dir"] == "out"]
    ins = [e for e in reference if e.get("ev") == "seg" and e["dir"] == "in"]
    assert len(segments) == len(outs) - 1 + len(ins)
    assert [s.index for s in segments] == list(range(1, len(segments) + 1))
    assert segments[0].dir == "out" and segments[0].flags == "S" and segments[0].nth == 1


def test_a_segment_sent_twice_gets_nth_2(segments):
    """The peer's FIN passes the engine twice (its first ACK was dropped): the second copy
    is nth=2 of the same rule conditions, and marked as a retransmission."""
    fins = [s for s in segments if s.dir == "in" and "F" in s.flags]
    assert [s.nth for s in fins] == [1, 2]
    assert fins[1].rtx and not fins[0].rtx
    assert fins[1].rule() == f"drop in flags=FA seq={NBYTES + 1} len=0 nth=2 count=1"


def test_every_rule_hits_exactly_its_reference_segment(segments):
    """For every reference segment, the sweep rule (added after the experiment's own rule)
    fires exactly once, on a segment with the reference's direction, flags, relative seq and
    length, at the reference's (virtual) time. (The simulator runs the engine when b sends,
    one link delay before a's core sees an incoming segment.)"""
    for s in segments:
        evs = _run([s.rule()])
        hits = _hit(evs, s.rule())
        assert len(hits) == 1, (s, hits)
        h = hits[0]
        assert (h["dir"], h["flags"], h["rseq"], h["len"]) == (s.dir, s.flags, s.rseq, s.len)
        t0 = min(e["t"] for e in evs if e.get("ev") == "seg")
        lag = Sim().delay_us if s.dir == "in" else 0
        assert (h["t"] + lag - t0) / 1000 == s.t_ms, s


def test_rules_for_duplicate_and_delay(segments):
    s = segments[3]
    assert s.rule(sw.Fault("duplicate")).endswith(f"nth={s.nth} count=1 copies=1")
    assert s.rule(sw.Fault("delay", 50)).endswith(f"nth={s.nth} count=1 ms=50")
    for f in (sw.Fault(), sw.Fault("duplicate"), sw.Fault("delay", 50)):
        assert str(parse_action_rule(s.rule(f))).startswith(f.action)


def test_plan_filters(segments):
    n = len(segments)
    assert sw.plan(segments) == segments
    assert all(s.dir == "in" for s in sw.plan(segments, "in"))
    assert all(s.dir == "out" for s in sw.plan(segments, "out"))
    assert [s.index for s in sw.plan(segments, max_segments=3)] == [1, 2, 3]
    assert [s.index for s in sw.plan(segments, "out", indices=[1, 2, 3])] == [1, 3]
    assert [s.index for s in sw.plan(segments, select=lambda s: "F" in s.flags)] == \
        [s.index for s in segments if "F" in s.flags]
    with pytest.raises(ValueError, match=f"segment {n + 1} is not in the reference run"):
        sw.plan(segments, indices=[1, n + 1])
    with pytest.raises(ValueError, match="direction must be one of"):
        sw.plan(segments, "sideways")
    with pytest.raises(ValueError, match="max-segments must be within 1..1000, got 0"):
        sw.plan(segments, max_segments=0)


def test_argument_parsing():
    assert sw.parse_indices("1-3,8,2") == [1, 2, 3, 8]
    for bad, msg in (("0", "segment must be within"), ("3-1", "empty range"),
                     ("x", "numbers and ranges"), ("1-2000", "longer than 1000"),
                     ("1- 3", "numbers and ranges"), ("+5", "numbers and ranges"),
                     ("\u0665", "numbers and ranges")):
        with pytest.raises(ValueError, match=msg):
            sw.parse_indices(bad)
    assert sw.Fault.parse("duplicate") == sw.Fault("duplicate")
    assert sw.Fault.parse("delay:250") == sw.Fault("delay", 250.0)
    assert sw.Fault.parse("delay:250").name == "delay 250ms"
    for bad, msg in (("delay:0", "delay-ms must be within 1..60000"), ("delay:x", "number"),
                     ("corrupt", "duplicate or delay:MS"), ("delay:1000000000", "within"),
                     ("delay:1e2", "digits 0-9"), ("delay: 5", "digits 0-9"),
                     ("delay:inf", "digits 0-9")):
        with pytest.raises(ValueError, match=msg):
            sw.Fault.parse(bad)
    with pytest.raises(ValueError, match="jobs must be within 1..32, got 33"):
        sw.check_limit("jobs", 33)


# ------------------------------------------------------------------------------ facts, classes
BIG = 20_000      # 14 segments each way: enough for three duplicate ACKs after a loss


def _plain(extra: list[str] = (), rack: bool = True) -> list[dict]:
    """A transfer of BIG bytes each way with only the sweep rule (RACK-TLP on, the
    default, or off: RFC 6675 duplicate ACKs and the RTO only)."""
    evs: list[dict] = []
    cfg = None if rack else Config(rack=False)
    transfer(Sim(seed=3, faults=list(extra), tracer=evs.append, config=cfg), BIG,
             max_time_us=200_000_000)
    return [e for e in evs if e.get("stack") == "a"]


@pytest.fixture(scope="module")
def plain() -> list[sw.Segment]:
    return sw.reference_segments(_plain())


def _facts(segs: list[sw.Segment], index: int, rack: bool = True
           ) -> tuple[sw.Facts, sw.Facts]:
    ref = sw.facts_from_events(_plain(rack=rack), passed=True)
    rule = segs[index - 1].rule()
    return ref, sw.facts_from_events(_plain([rule], rack=rack), rule=rule)


def test_lost_first_data_segment_is_repaired_by_fast_retransmit(plain):
    """RFC 5681 3.2: the peer's duplicate ACKs for the plain after the hole make rawtcp
    retransmit the lost one before its RTO."""
    data = [s for s in plain if s.dir == "out" and s.len > 0]
    ref, run = _facts(plain, data[0].index)
    o = sw.classify(ref, run)
    assert (o.kind, o.recovery, o.by) == ("recovered", "fast", "rawtcp"), o
    assert run.hit is not None and run.hit["rseq"] == 1


@pytest.mark.parametrize(("rack", "how"), [(True, "probe"), (False, "rto")])
def test_lost_last_data_segment(plain, rack, how):
    """A lost tail has no later segment to make duplicate ACKs: with RACK-TLP the tail loss
    probe repairs it (RFC 8985 7.3), without it the RTO (RFC 6298 5)."""
    data = [s for s in plain if s.dir == "out" and s.len > 0]
    ref, run = _facts(plain, data[-1].index, rack)
    o = sw.classify(ref, run)
    assert (o.kind, o.recovery, o.by) == ("recovered", how, "rawtcp"), o
    assert o.later_ms is not None and o.later_ms > 0


@pytest.mark.parametrize(("rack", "how"), [(True, "probe"), (False, "rto")])
def test_lost_peer_fin_is_retransmitted_by_the_peer(plain, rack, how):
    """RFC 9293 3.10.7.4: the peer's FIN is in its retransmission queue until ACKed; it is
    sent again by the peer's tail loss probe (RFC 8985 7.3) or, without RACK-TLP, its RTO."""
    fin = next(s for s in plain if s.dir == "in" and "F" in s.flags)
    ref, run = _facts(plain, fin.index, rack)
    o = sw.classify(ref, run)
    assert (o.kind, o.recovery, o.by) == ("recovered", how, "kernel"), o


def test_lost_pure_ack_needs_no_retransmission(plain):
    """A lost cumulative ACK is covered by the next one (RFC 9293 3.4)."""
    acks = [s for s in plain if s.dir == "out" and s.flags == "A" and s.len == 0
            and s.state == "FIN_WAIT_1"]
    ref, run = _facts(plain, acks[0].index)
    o = sw.classify(ref, run)
    assert (o.kind, o.recovery) == ("recovered", "none"), o


def _f(**kw) -> sw.Facts:
    base = dict(finish_ms=100.0, final_states=["CLOSED"], acked_out=146, acked_in=146,
                segments=11, hit={"t_ms": 5.0}, passed=True)
    base.update(kw)
    return sw.Facts(**base)


def test_classes_and_their_order():
    ref = _f(hit=None)
    assert sw.classify(ref, _f(error="the run failed: boom", segments=0, hit=None)).kind \
        == "error"
    assert sw.classify(ref, _f(hit=None)).kind == "not-reached"
    assert sw.classify(ref, _f(errors=[110], rst_out=1)).kind == "etimedout"
    o = sw.classify(ref, _f(rst_in=1, final_states=["FIN_WAIT_2"]))
    assert (o.kind, o.detail) == ("rst", "RST from kernel")
    o = sw.classify(ref, _f(final_states=["FIN_WAIT_2"]))
    assert o.kind == "stuck" and "FIN_WAIT_2" in o.detail
    assert sw.classify(ref, _f(acked_out=100)).kind == "data-mismatch"
    o = sw.classify(ref, _f(finish_ms=312.5, checks_failed=["no retransmissions"]))
    assert (o.kind, o.recovery, o.later_ms) == ("recovered", "none", 212.5)
    assert o.checks_failed == ["no retransmissions"]


def test_only_new_retransmissions_after_the_fault_count():
    """A retransmission the reference had too, or one before the fault, is not the repair."""
    old = sw.Retransmission(50.0, "kernel", "FA", 145, 0, "rto")
    ref = _f(retransmissions=[old])
    early = sw.Retransmission(1.0, "rawtcp", "S", 0, 0, "rto")
    new = sw.Retransmission(300.0, "rawtcp", "PA", 1, 144, "fast")
    o = sw.classify(ref, _f(retransmissions=[early, old, new]))
    assert (o.recovery, o.by) == ("fast", "rawtcp")
    o = sw.classify(ref, _f(retransmissions=[old]))
    assert o.recovery == "none"


def _seg(t: int, d: str, flags: str, rseq: int, length: int = 0, rack: int | None = None,
         **kw) -> dict:
    e = {"t": t, "ev": "seg", "dir": d, "conn": "c", "flags": flags, "seq": 1000 + rseq,
         "rseq": rseq, "len": length, "sport": 1, "dport": 2, "src": "x", "dst": "y"}
    if rack is not None:
        e["rack"] = rack
        e["ack"] = 5000 + rack
    e.update(kw)
    return e


def test_kernel_retransmission_causes():
    """The peer's retransmissions: three duplicate ACKs first = fast (RFC 5681 3.2); none
    and at least 100 ms (half Linux's 200 ms RTO floor) after the previous copy = rto; sooner
    = a probe (TLP). A copy a fault dropped counts as sent; a copy a duplicate fault made
    does not."""
    assert sw.RTO_FLOOR_MS == 100.0
    ms = 1000
    evs = [
        {"t": 0, "ev": "fault", "action": "drop", "dir": "in", "conn": "c", "flags": "PA",
         "seq": 1001, "rseq": 1, "len": 100},
        _seg(10 * ms, "in", "PA", 101, 100),
        *[_seg((11 + i) * ms, "out", "A", 1, rack=1) for i in range(3)],
        _seg(20 * ms, "in", "PA", 1, 100),                   # fast
        _seg(30 * ms, "in", "PA", 201, 100),
        _seg(130 * ms, "in", "PA", 201, 100),                # rto
        _seg(250 * ms, "in", "FA", 301, 0),
        _seg(340 * ms, "in", "FA", 301, 0),                  # probe
        {"t": 280 * ms, "ev": "fault", "action": "duplicate", "dir": "in", "conn": "c",
         "flags": "A", "seq": 1302, "rseq": 302, "len": 1, "copies": 1},
        _seg(280 * ms, "in", "A", 302, 1),
        _seg(280 * ms, "in", "A", 302, 1),                   # the duplicate's copy
    ]
    got = [(r.rseq, r.cause, r.by) for r in sw.facts_from_events(evs).retransmissions]
    assert got == [(1, "fast", "kernel"), (201, "rto", "kernel"), (301, "probe", "kernel")]


def test_a_delayed_segment_was_sent_when_the_fault_took_it():
    """The kernel's segment delayed 300 ms: its RTO retransmission arrives first, the delayed
    original after it; the retransmission is the one at the RTO, the original is none."""
    ms = 1000
    evs = [
        {"t": 0, "ev": "fault", "action": "delay", "dir": "in", "conn": "c", "flags": "PA",
         "seq": 1001, "rseq": 1, "len": 100, "ms": 300},
        _seg(210 * ms, "in", "PA", 1, 100),                  # the kernel's RTO copy
        _seg(300 * ms, "in", "PA", 1, 100),                  # the delayed original
    ]
    got = [(r.rseq, r.t_ms, r.cause) for r in sw.facts_from_events(evs).retransmissions]
    assert got == [(1, 0.0, "rto")]          # times count from the first segment seen


def test_rawtcp_retransmission_cause_from_the_timer():
    evs = [
        {"t": 1000, "ev": "timer", "conn": "c", "name": "rtx", "action": "fired", "at": 1000},
        {"t": 1000, "ev": "retransmit", "conn": "c", "rseq": 0, "len": 0, "flags": "S"},
        {"t": 9000, "ev": "retransmit", "conn": "c", "rseq": 1, "len": 10, "flags": "PA"},
        {"t": 9500, "ev": "timer", "conn": "c", "name": "tlp", "action": "fired", "at": 9500},
        {"t": 9500, "ev": "retransmit", "conn": "c", "rseq": 11, "len": 10, "flags": "PA"},
        _seg(0, "out", "S", 0),
    ]
    got = [(r.rseq, r.cause) for r in sw.facts_from_events(evs).retransmissions]
    assert got == [(0, "rto"), (1, "fast"), (11, "probe")]


def test_facts_round_trip_through_json():
    import json

    f = _f(retransmissions=[sw.Retransmission(1.0, "rawtcp", "S", 0, 0, "rto")])
    assert sw.Facts.from_dict(json.loads(json.dumps(f.to_dict()))) == f
    assert sw.Facts.from_dict({"error": "not run"}).error == "not run"
