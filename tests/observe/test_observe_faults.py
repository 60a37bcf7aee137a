"""Fault rules (text grammar of docs/faults.md) and the FaultEngine (docs/contracts.md)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP

from rawtcp.core.segment import Flags, Packet, Segment
from rawtcp.faults import (
    FaultEngine,
    FlagMatch,
    ReleaseQueue,
    Rule,
    RuleError,
    corrupt_tcp_checksum,
    parse_rule,
)
from rawtcp.trace import Tracer, encode_packet

US, PEER = "10.7.0.1", "10.7.0.2"
ISS, IRS = 1_000_000, 4_000_000_000  # the peer's ISN is near the wrap on purpose


def out(flags: str, rseq: int = 1, rack: int = 1, data: bytes = b"") -> Packet:
    from rawtcp.core.segment import parse_flags

    return Packet(US, PEER, Segment(40000, 80, (ISS + rseq) % 2**32, (IRS + rack) % 2**32,
                                    parse_flags(flags), 1000, payload=data))


def inp(flags: str, rseq: int = 1, rack: int = 1, data: bytes = b"") -> Packet:
    from rawtcp.core.segment import parse_flags

    return Packet(PEER, US, Segment(80, 40000, (IRS + rseq) % 2**32, (ISS + rack) % 2**32,
                                    parse_flags(flags), 1000, payload=data))


SYN = out("S", rseq=0, rack=0)
SYNACK = inp("SA", rseq=0, rack=1)


def engine(*rules: tuple[str, str] | Rule, **kw) -> FaultEngine:
    rs = [r if isinstance(r, Rule) else parse_rule(*r) for r in rules]
    return FaultEngine(rs, **kw)


def handshake(e: FaultEngine, now: int = 0) -> None:
    assert e.process("out", SYN, now) and e.process("in", SYNACK, now)


# ---------------------------------------------------------------------------------------------
# grammar
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action,text",
    [
        ("drop", "out flags=A state=TIME_WAIT nth=1"),
        ("drop", "in p=0.05 seed=7"),
        ("delay", "out flags=S ms=300"),
        ("duplicate", "in len>0 p=0.1"),
        ("reorder", "out len>0 nth=3"),
        ("corrupt", "in nth=2"),
        ("drop", "flags=+F-A state!=ESTABLISHED,TIME_WAIT seq=abs:5-10"),
        ("duplicate", "out copies=3 count=2"),
        ("reorder", "in after=2 ms=50 seq>=1000"),
        ("drop", "any"),
    ],
)
def test_text_form_round_trips(action: str, text: str) -> None:
    r = parse_rule(action, text)
    assert parse_rule(action, r.text) == r
    assert str(r) == f"{action} {r.text}"


def test_text_form_is_canonical() -> None:
    r = parse_rule("drop", "  dir=OUT  state=time-wait  flags=af nth=1 ")
    assert r.text == "out flags=FA state=TIME_WAIT nth=1"


@pytest.mark.parametrize(
    "action,text,message",
    [
        ("drop", "out flgs=A", ("bad rule 'out flgs=A': unknown key 'flgs' (known: dir, proto, "
                                "flags, state, seq, len, nth, count, p, seed, ms, copies, "
                                "after)")),
        ("drop", "out flags=AX", "unknown TCP flag letter 'X'"),
        ("drop", "flags=S+A", "mixes an exact set"),
        ("drop", "flags=+S-S", "both required and excluded"),
        ("drop", "state=TIMEWAIT", "unknown state 'TIMEWAIT'"),
        ("drop", "len>=x", "'len>=x'"),
        ("drop", "seq<1-5", "a range needs '='"),
        ("drop", "len=abs:5", "'abs:' applies to seq only"),
        ("drop", "nth=0", "nth must be within 1..1000000000, got 0"),
        ("drop", "count=-1", "count must be within 1..1000000000, got -1"),
        # every number has a range (issue 9): no unbounded copies or delays, no seq that can
        # never match
        ("duplicate", "copies=1000000000", "copies must be within 1..100, got 1000000000"),
        ("delay", "ms=1000000000000", "ms must be within 0..3600000, got 1000000000000"),
        ("drop", "seq=abs:99999999999", "seq must be within 0..4294967295, got 99999999999"),
        ("drop", "seq=5-4294967296", "seq must be within 0..4294967295"),
        ("drop", "len>70000", "len must be within 0..65535, got 70000"),
        ("reorder", "after=10001", "after must be within 1..10000"),
        ("drop", "p=0.5 seed=-1", "seed must be within 0..9223372036854775807"),
        ("drop", "p=1.5", "p must be within 0..1"),
        ("drop", "seed=3", "seed only makes sense with p="),
        ("drop", "ms=5", "ms applies to delay and reorder only"),
        ("delay", "out", "delay needs ms=N"),
        ("duplicate", "after=2", "after applies to reorder only"),
        ("reorder", "copies=2", "copies applies to duplicate only"),
        ("drop", "in out", "'dir' given twice"),
        ("drop", "nth>2", "nth takes '=' only"),
        ("drop", "wat", "cannot read 'wat'"),
        ("drop", "flags=", "missing value"),
        ("explode", "in", "unknown action 'explode'"),
        # numbers are plain decimals in ASCII digits: what int()/float() would also take
        # (exponents, underscores, other scripts' digits, nan) is refused, naming the word
        ("delay", "ms=nan", "expected a number such as 40 or 0.5, got 'nan'"),
        ("delay", "ms=1e3", "expected a number such as 40 or 0.5, got '1e3'"),
        ("delay", "ms=1_000", "expected a number such as 40 or 0.5, got '1_000'"),
        ("delay", "ms=" + "9" * 400, "expected a number such as 40 or 0.5"),
        ("drop", "nth=\u0663", "expected an integer (digits 0-9), got '\u0663'"),
        ("drop", "nth=1_0", "expected an integer (digits 0-9), got '1_0'"),
        ("drop", "seq=\u0663", "seq needs a number or a range A-B"),
        ("mangle", "out set win*=1e1", "expected a number such as 0.5, got '1e1'"),
        ("mangle", "out set seq+=\u0661", "seq needs a whole number within 0..4294967295"),
    ],
)
def test_bad_rules_name_the_bad_part(action: str, text: str, message: str) -> None:
    with pytest.raises(RuleError) as ei:
        parse_rule(action, text)
    assert message in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_rule_objects_built_in_python_are_range_checked_too() -> None:
    """The API and the text grammar share the ranges: Rule(...) raises the same errors."""
    with pytest.raises(ValueError, match="copies must be within 1..100"):
        Rule("duplicate", copies=10**9)
    with pytest.raises(ValueError, match="ms must be within 0..3600000"):
        Rule("delay", ms=1e12)
    assert Rule("duplicate", copies=100).copies == 100        # the bounds themselves are fine
    assert parse_rule("drop", "seq=abs:4294967295").seq.lo == 2**32 - 1


def test_flag_match_exact_contains_excludes() -> None:
    fa = Flags.FIN | Flags.ACK
    assert FlagMatch.parse("FA")(fa) and not FlagMatch.parse("FA")(fa | Flags.PSH)
    assert FlagMatch.parse("+F")(fa) and FlagMatch.parse("+F")(Flags.FIN)
    assert not FlagMatch.parse("-A")(fa) and FlagMatch.parse("-A")(Flags.SYN)
    assert FlagMatch.parse("+F-R")(fa) and not FlagMatch.parse("+F-R")(fa | Flags.RST)
    assert FlagMatch.parse("none")(0) and not FlagMatch.parse("none")(Flags.ACK)


# ---------------------------------------------------------------------------------------------
# matching and actions
# ---------------------------------------------------------------------------------------------


def test_no_rules_passes_every_packet_unchanged_at_now() -> None:
    e = engine()
    assert e.process("out", SYN, 123) == [(123, SYN, False)]
    assert e.process("in", SYNACK, 124) == [(124, SYNACK, False)]


def test_drop_final_ack_in_time_wait_only_the_first_time() -> None:
    states = {"now": "ESTABLISHED"}
    tr = Tracer()
    e = engine(("drop", "out flags=A state=TIME_WAIT nth=1"), tracer=tr,
               state_of=lambda pkt, d: states["now"])
    handshake(e)
    ack = out("A", rseq=1, rack=1)
    assert e.process("out", ack, 10) == [(10, ack, False)]  # ESTABLISHED: no match
    states["now"] = "TIME_WAIT"
    final = out("A", rseq=2, rack=2)
    assert e.process("out", final, 20) == []  # dropped
    assert e.process("out", final, 30) == [(30, final, False)]  # the re-ACK goes through
    r = e.rules[0]
    assert (r.matched, r.applied) == (2, 1)
    (ev,) = tr.events("fault")
    assert ev == {
        "t": 20, "ev": "fault", "conn": "10.7.0.1:40000>10.7.0.2:80", "dir": "out",
        "src": US, "dst": PEER, "sport": 40000, "dport": 80,
        "seq": ISS + 2, "ack": (IRS + 2) % 2**32, "rseq": 2, "rack": 2, "flags": "A",
        "win": 1000, "len": 0, "action": "drop", "rule": "out flags=A state=TIME_WAIT nth=1",
        "state": "TIME_WAIT",
    }


def test_state_rules_never_match_without_state_of() -> None:
    e = engine(("drop", "state=ESTABLISHED"))
    assert e.process("out", SYN, 0) == [(0, SYN, False)]
    assert e.rules[0].matched == 0


def test_direction_filter() -> None:
    e = engine(("drop", "in"))
    assert e.process("out", SYN, 0) and e.process("in", SYNACK, 0) == []


def test_process_rejects_a_bad_direction() -> None:
    with pytest.raises(OSError) as ei:
        engine().process("sideways", SYN, 0)
    assert ei.value.errno == 22


def test_len_conditions() -> None:
    e = engine(("drop", "len=0"), ("delay", "len>=3 ms=1"))
    assert e.process("out", out("A"), 0) == []
    p2 = out("PA", data=b"ab")
    assert e.process("out", p2, 0) == [(0, p2, False)]
    p3 = out("PA", data=b"abc")
    assert e.process("out", p3, 0) == [(1000, p3, False)]


def test_relative_seq_uses_the_isn_seen_in_the_syn_and_wraps() -> None:
    e = engine(("drop", "in seq=1-100"))
    before = inp("A", rseq=5)
    assert e.process("in", before, 0) == [(0, before, False)]  # ISN unknown: no match
    handshake(e)
    assert e.process("in", inp("PA", rseq=1, data=b"x"), 0) == []  # IRS+1 wraps past 2**32
    late = inp("PA", rseq=101, data=b"x")
    assert e.process("in", late, 0) == [(0, late, False)]


def test_absolute_seq() -> None:
    e = engine(("drop", f"out seq=abs:{ISS + 1}"))
    assert e.process("out", out("A", rseq=1), 0) == []
    assert e.process("out", out("A", rseq=2), 0) != []


def test_nth_and_count() -> None:
    e = engine(("drop", "out len>0 nth=3"))
    res = [bool(e.process("out", out("PA", rseq=i, data=b"x"), 0)) for i in range(1, 6)]
    assert res == [True, True, False, True, True]
    e = engine(("drop", "out count=2"))
    res = [bool(e.process("out", out("A"), 0)) for _ in range(4)]
    assert res == [False, False, True, True]
    assert (e.rules[0].matched, e.rules[0].applied) == (4, 2)


def test_probability_is_deterministic_per_seed_and_near_p() -> None:
    def pattern(text: str, seed: int = 0) -> list[bool]:
        e = engine(("drop", text), seed=seed)
        return [not e.process("in", inp("A"), i) for i in range(2000)]

    a = pattern("in p=0.25 seed=7")
    assert a == pattern("in p=0.25 seed=7")
    assert a == pattern("in p=0.25 seed=7", seed=99)  # the rule's own seed wins
    assert a != pattern("in p=0.25 seed=8")
    assert 400 < sum(a) < 600
    b = pattern("in p=0.25", seed=1)
    assert b == pattern("in p=0.25", seed=1) and b != pattern("in p=0.25", seed=2)
    assert sum(pattern("in p=0")) == 0 and sum(pattern("in p=1")) == 2000


def test_two_engines_do_not_share_counters_or_randomness() -> None:
    r = parse_rule("drop", "p=0.5 seed=1")
    e1, e2 = FaultEngine([r]), FaultEngine([r])
    x = [bool(e1.process("out", SYN, i)) for i in range(50)]
    y = [bool(e2.process("out", SYN, i)) for i in range(50)]
    assert x == y and e1.rules[0].matched == 50 and r.matched == 0


def test_delay_and_duplicate_compose() -> None:
    tr = Tracer()
    e = engine(("delay", "out flags=S ms=300"), ("duplicate", "out copies=2"), tracer=tr)
    assert e.process("out", SYN, 1000) == [(301_000, SYN, False)] * 3
    assert [(ev["action"], ev.get("ms"), ev.get("copies")) for ev in tr.events("fault")] == [
        ("delay", 300, None), ("duplicate", None, 2)]


def test_corrupt_marks_copies_and_the_checksum_really_breaks() -> None:
    e = engine(("corrupt", "in nth=2"))
    a, b = inp("PA", data=b"one"), inp("PA", data=b"two")
    assert e.process("in", a, 0) == [(0, a, False)]
    assert e.process("in", b, 0) == [(0, b, True)]
    good = encode_packet(b)
    bad = corrupt_tcp_checksum(good)
    assert bad != good and len(bad) == len(good)
    # scapy recomputes the checksum when the field is deleted: the good one matches it
    want = IP(bytes(good))[TCP].chksum
    pkt = IP(bytes(good))
    del pkt[TCP].chksum
    assert IP(bytes(pkt))[TCP].chksum == want
    assert IP(bad)[TCP].chksum != want


def test_corrupt_tcp_checksum_ipv6_and_garbage() -> None:
    from scapy.layers.inet6 import IPv6

    p6 = Packet("fd00::1", "fd00::2", Segment(1, 2, 3, 4, Flags.ACK, 5))
    good = encode_packet(p6)
    bad = corrupt_tcp_checksum(good)
    assert IPv6(bad)[TCP].chksum == IPv6(good)[TCP].chksum ^ 1
    for junk in (b"", b"\x45", b"\x60" + b"\x00" * 10, b"\x99" * 60):
        assert corrupt_tcp_checksum(junk) == junk


def test_reorder_holds_until_k_packets_passed() -> None:
    tr = Tracer()
    e = engine(("reorder", "out len>0 nth=1 after=2"), tracer=tr)
    p1, p2, p3, p4 = (out("PA", rseq=1 + 10 * i, data=b"x" * 10) for i in range(4))
    assert e.process("out", p1, 100) == []  # held
    assert e.held == 1 and e.pending_release_at() == 100 + 1_000_000  # default 1000 ms
    assert e.process("in", inp("A"), 150) != []  # other direction: does not count
    assert e.process("out", p2, 200) == [(200, p2, False)]
    assert e.process("out", p3, 300) == [(300, p3, False), (300, p1, False)]
    assert e.process("out", p4, 400) == [(400, p4, False)]
    assert e.held == 0 and e.pending_release_at() is None
    assert [ev["ev"] for ev in tr.events()] == ["fault", "fault_release"]
    assert tr.events("fault_release")[0]["why"] == "after"


def test_dropped_packets_do_not_count_as_passed_for_reorder() -> None:
    e = engine(("reorder", "out len>0 nth=1"), ("drop", "out flags=A"))
    p1 = out("PA", data=b"x")
    assert e.process("out", p1, 0) == []
    assert e.process("out", out("A"), 1) == []  # dropped, p1 still held
    p2 = out("PA", rseq=2, data=b"y")
    assert e.process("out", p2, 2) == [(2, p2, False), (2, p1, False)]


def test_reorder_releases_at_its_max_time_when_nothing_follows() -> None:
    e = engine(("reorder", "out flags=FA ms=50"))
    fin = out("FA")
    assert e.process("out", fin, 1000) == []
    assert e.pending_release_at() == 51_000
    assert e.release_due(50_999) == []
    assert e.release_due(51_000) == [(51_000, fin, False)]
    assert e.release_due(60_000) == [] and e.pending_release_at() is None


def test_flush_releases_everything_held() -> None:
    e = engine(("reorder", "out"))
    assert e.process("out", SYN, 0) == []
    assert e.flush(5) == [(5, SYN, False)] and e.held == 0


def test_drop_stops_later_rules() -> None:
    e = engine(("drop", "out"), ("duplicate", "out"))
    assert e.process("out", SYN, 0) == []
    assert e.rules[1].matched == 0
    assert e.stats() == [{"rule": "drop out", "matched": 1, "applied": 1},
                         {"rule": "duplicate out", "matched": 0, "applied": 0}]


def test_predicate_over_the_scapy_packet() -> None:
    def has_mss(p) -> bool:
        return any(k == "MSS" for k, _ in p[TCP].options)

    from rawtcp.core.segment import Options

    e = engine(Rule("drop", dir="out", predicate=has_mss))
    syn = Packet(US, PEER, Segment(40000, 80, ISS, 0, Flags.SYN, 1000, Options(mss=1460)))
    assert e.process("out", syn, 0) == []
    assert e.process("out", SYN, 0) == [(0, SYN, False)]
    assert e.rules[0].text == "out predicate=has_mss"


def test_a_raising_predicate_is_no_match_and_is_traced() -> None:
    def boom(p) -> bool:
        raise KeyError("oops")

    tr = Tracer()
    e = engine(Rule("drop", predicate=boom), tracer=tr)
    assert e.process("out", SYN, 7) == [(7, SYN, False)]
    assert e.rules[0].errors == 1
    (err,) = tr.events("error")
    assert err["t"] == 7 and "KeyError" in err["message"]


def test_engine_rejects_non_rules() -> None:
    with pytest.raises(OSError, match="parse_rule"):
        FaultEngine(["drop out"])  # type: ignore[list-item]


def test_release_queue_orders_by_time_then_fifo() -> None:
    q = ReleaseQueue()
    q.push([(5, SYN, False), (3, SYNACK, False), (5, SYNACK, True)])
    assert q.next_at() == 3 and len(q) == 3
    assert q.pop_due(4) == [(3, SYNACK, False)]
    assert q.pop_due(5) == [(5, SYN, False), (5, SYNACK, True)]
    assert q.next_at() is None


def test_empty_rule_is_refused_not_a_silent_blackhole():
    """An empty --drop '' (say, an unset shell variable) must not drop every packet."""
    from rawtcp.faults import RuleError, parse_rule

    for text in ("", "   "):
        with pytest.raises(RuleError) as e:
            parse_rule("drop", text)
        assert "empty" in str(e.value) and "'any'" in str(e.value)
    assert parse_rule("drop", "any").text  # matching everything is still possible, on purpose


def test_release_due_by_direction():
    """A reorder-held packet comes back from release_due() of its own direction only."""
    eng = FaultEngine([parse_rule("reorder", "any nth=1 ms=10"),
                       parse_rule("reorder", "any nth=2 ms=10")])
    out_pkt = Packet("10.0.0.1", "10.0.0.2", Segment(1, 2, 100, 0, Flags.ACK, 1000))
    in_pkt = Packet("10.0.0.2", "10.0.0.1", Segment(2, 1, 200, 0, Flags.ACK, 1000))
    assert eng.process("out", out_pkt, 0) == []
    assert eng.process("in", in_pkt, 0) == []
    assert [p for _, p, _ in eng.release_due(20_000, "in")] == [in_pkt]
    assert [p for _, p, _ in eng.release_due(20_000, "out")] == [out_pkt]
    assert eng.release_due(20_000) == []


# ---------------------------------------------------------------------------------------------
# the engine owns delayed packets too (hold_delays=True); the action-first text form
# ---------------------------------------------------------------------------------------------


def test_hold_delays_keeps_delayed_packets_until_their_time() -> None:
    e = engine(("delay", "out len>0 ms=5"), hold_delays=True)
    handshake(e)
    data = out("PA", data=b"x" * 10)
    assert e.process("out", data, 1000) == []
    assert e.held == 1 and e.pending_release_at() == 6000
    assert e.release_due(5999) == []
    assert e.release_due(6000, "in") == []          # only the direction asked for
    assert e.release_due(6000, "out") == [(6000, data, False)]
    assert e.held == 0 and e.pending_release_at() is None
    # without hold_delays the caller gets the future release time at once
    e2 = engine(("delay", "out len>0 ms=5"))
    handshake(e2)
    assert e2.process("out", data, 1000) == [(6000, data, False)] and e2.held == 0


def test_hold_delays_flush_hands_back_delayed_and_reordered() -> None:
    e = engine(("delay", "out len>0 ms=50"), ("reorder", "in len>0"), hold_delays=True)
    handshake(e)
    d_out, d_in = out("PA", data=b"a"), inp("PA", data=b"b")
    assert e.process("out", d_out, 0) == [] and e.process("in", d_in, 0) == []
    assert e.held == 2
    assert sorted(p is d_out for _t, p, _c in e.flush(10)) == [False, True]
    assert e.held == 0


def test_parse_action_rule_reads_the_action_first() -> None:
    from rawtcp.experiments.base import parse_action_rule as from_experiments
    from rawtcp.faults import parse_action_rule

    assert from_experiments is parse_action_rule
    r = parse_action_rule("drop out flags=A nth=1")
    assert r == parse_rule("drop", "out flags=A nth=1")
    assert parse_action_rule(r) is r
    with pytest.raises(RuleError, match=r"must start with one of drop, delay"):
        parse_action_rule("out flags=A")
    with pytest.raises(RuleError, match="give a Rule"):
        parse_action_rule(3)
