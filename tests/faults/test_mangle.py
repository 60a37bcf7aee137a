"""The mangle action: every field it rewrites, on the engine and in the simulator, both
directions; checksums recomputed unless ``corrupt``; every mistake one RuleError line."""

from __future__ import annotations

import pytest

from rawtcp.core.config import SEC
from rawtcp.core.segment import ACK, FIN, PSH, RST, Options, Packet, Segment
from rawtcp.faults import FaultEngine, RuleError, parse_action_rule
from rawtcp.sim import Sim, transfer
from rawtcp.trace import encode_packet
from rawtcp.wire import ParseError, decode_ip, encode_ip

OPTS = Options(mss=1460, wscale=7, sack_permitted=True, sack_blocks=((10, 20),),
               timestamps=(111, 222))


def pkt(**kw) -> Packet:
    base = dict(src_port=1000, dst_port=80, seq=5000, ack=7000, flags=ACK | PSH, window=1000,
                options=OPTS, payload=b"x" * 300)
    base.update(kw)
    return Packet("10.0.0.1", "10.0.0.2", Segment(**base))


def mangle(rule: str, p: Packet, direction: str = "out") -> tuple[FaultEngine, list]:
    events: list[dict] = []
    eng = FaultEngine([parse_action_rule(rule)], tracer=events.append)
    out = eng.process(direction, p, 0)
    eng.events = events   # type: ignore[attr-defined]
    return eng, out


@pytest.mark.parametrize("changes,field,expected", [
    ("win=0", "window", 0),
    ("win=65535", "window", 65535),
    ("win*=0.5", "window", 500),
    ("win*=1000", "window", 65535),            # clipped to the 16-bit field
    ("win+=24", "window", 1024),
    ("win-=2000", "window", 0),                # never below 0
    ("seq+=1000", "seq", 6000),
    ("seq-=5001", "seq", 2**32 - 1),           # sequence space wraps (RFC 9293 3.4)
    ("seq=42", "seq", 42),
    ("ack-=1", "ack", 6999),
    ("ack+=4294967295", "ack", 6999),
    ("ack=0", "ack", 0),
    ("flags+=R", "flags", ACK | PSH | RST),
    ("flags-=A", "flags", PSH),
    ("flags=FA", "flags", FIN | ACK),
    ("flags=none", "flags", 0),
    ("urg=7", "urgent", 7),
])
def test_header_fields(changes: str, field: str, expected: int) -> None:
    _eng, out = mangle(f"mangle out set {changes}", pkt())
    assert len(out) == 1
    assert getattr(out[0][1].segment, field) == expected


@pytest.mark.parametrize("changes,expected", [
    ("-sack", OPTS._replace(sack_permitted=False, sack_blocks=())),
    ("-ts", OPTS._replace(timestamps=None)),
    ("-wscale", OPTS._replace(wscale=None)),
    ("-mss", OPTS._replace(mss=None)),
    ("-opts", Options()),
    ("mss=536", OPTS._replace(mss=536)),
    ("wscale=14", OPTS._replace(wscale=14)),
    ("ts.ecr=0", OPTS._replace(timestamps=(111, 0))),
    ("ts.val+=9", OPTS._replace(timestamps=(120, 222))),
    ("-sack -ts mss=536", Options(mss=536, wscale=7)),
])
def test_options_removed_and_inserted(changes: str, expected: Options) -> None:
    _eng, out = mangle(f"mangle out set {changes}", pkt())
    assert out[0][1].segment.options == expected


def test_options_inserted_where_there_were_none() -> None:
    p = pkt(options=Options())
    _eng, out = mangle("mangle out set mss=536 wscale=3 +sack ts.ecr=5", p)
    assert out[0][1].segment.options == Options(mss=536, wscale=3, sack_permitted=True,
                                                timestamps=(0, 5))


@pytest.mark.parametrize("changes,n", [("len=100", 100), ("len=0", 0), ("len=5000", 300),
                                       ("len-=50", 250), ("len-=999", 0)])
def test_payload_cut(changes: str, n: int) -> None:
    p = pkt(payload=bytes(range(256)) + bytes(44))
    _eng, out = mangle(f"mangle in set {changes}", p, "in")
    assert out[0][1].segment.payload == p.segment.payload[:n]


def test_ttl_is_kept_for_the_encoder() -> None:
    eng, out = mangle("mangle out flags=+A set ttl=1", pkt())
    q = out[0][1]
    assert eng.ttl_for(q) == 1
    assert eng.ttl_for(q) == 1             # every copy (duplicate) asks again
    assert eng.ttl_for(pkt()) is None      # an untouched packet: the default TTL


def test_checksums_are_recomputed_unless_corrupt() -> None:
    """The rewritten segment is encoded afresh: its TCP checksum is valid for the new
    contents (the decoder verifies it). With ``corrupt`` the delivery is marked and its
    encoding fails the check."""
    _eng, out = mangle("mangle out set win=0 seq+=1000 -ts len=10", pkt())
    _t, q, corrupt = out[0]
    assert not corrupt
    assert decode_ip(encode_ip(q), True) == q
    _eng, out = mangle("mangle out set win=0 corrupt", pkt())
    _t, q, corrupt = out[0]
    assert corrupt
    with pytest.raises(ParseError):
        decode_ip(encode_packet(q, True), True)


def test_only_matching_segments_and_both_directions() -> None:
    eng = FaultEngine([parse_action_rule("mangle in flags=A len=0 set win=0")])
    pure = pkt(flags=ACK, payload=b"")
    assert eng.process("in", pure, 0)[0][1].segment.window == 0
    assert eng.process("out", pure, 0)[0][1] is pure            # other direction
    data = pkt()
    assert eng.process("in", data, 0)[0][1] is data             # flags/len do not match
    assert eng.stats()[0]["applied"] == 1


def test_later_rules_see_the_mangled_segment() -> None:
    eng = FaultEngine([parse_action_rule("mangle out set flags+=F"),
                       parse_action_rule("drop out flags=+F")])
    assert eng.process("out", pkt(), 0) == []


def test_trace_says_what_changed() -> None:
    eng, _out = mangle("mangle out set win=0 seq+=1 flags-=P -ts", pkt())
    ev = eng.events[0]   # type: ignore[attr-defined]
    assert ev["action"] == "mangle" and ev["win"] == 0 and ev["win_was"] == 1000
    assert ev["seq"] == 5001 and ev["seq_was"] == 5000 and ev["flags_was"] == "PA"
    assert "ts" not in ev["options"]
    assert ev["rule"] == "out set win=0 seq+=1 flags-=P -ts"


@pytest.mark.parametrize("text,message", [
    ("mangle in flags=A", "mangle needs 'set' and changes"),
    ("mangle in set", "nothing after 'set'"),
    ("mangle set win=0", "nothing before 'set'"),
    ("mangle in set win=70000", "win must be within 0..65535, got 70000"),
    ("mangle in set win=-1", "win needs a whole number within 0..65535"),
    ("mangle in set win*=1001", "win*= factor must be within 0..1000"),
    ("mangle in set seq=4294967296", "seq must be within 0..4294967295"),
    ("mangle in set ttl=0", "ttl must be within 1..255, got 0"),
    ("mangle in set ttl=256", "ttl must be within 1..255, got 256"),
    ("mangle in set mss=0", "mss must be within 1..65535"),
    ("mangle in set wscale=15", "wscale must be within 0..14, got 15"),
    ("mangle in set len=65536", "len must be within 0..65535"),
    ("mangle in set ts.ecr=4294967296", "ts.ecr must be within 0..4294967295"),
    ("mangle in set flags+=Q", "unknown TCP flag letter 'Q'"),
    ("mangle in set ttl+=1", "ttl takes ="),
    ("mangle in set -foo", "unknown option"),
    ("mangle in set +mss", "only +sack inserts"),
    ("mangle in set colour=red", "unknown field 'colour'"),
    ("mangle in set win", "cannot read 'win'"),
    ("mangle in set win=1 win=2", "win changed twice"),
    ("mangle in set -opts mss=5", "-opts removes every option"),
    ("mangle proto=udp set win=0", "TCP segments only"),
    ("drop in set win=0", "'set' belongs to mangle rules only"),
])
def test_every_mistake_is_one_line(text: str, message: str) -> None:
    with pytest.raises(RuleError) as ei:
        parse_action_rule(text)
    assert message in str(ei.value)
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("text", [
    "mangle in flags=A set win=0",
    "mangle out flags=S set -sack -ts -wscale mss=536",
    "mangle out len>0 nth=3 set len=100 corrupt",
    "mangle any state=ESTABLISHED p=0.5 seed=3 set win*=0.5 seq+=1000 ack-=1 flags+=R ttl=1",
    "mangle out set ts.ecr=0 wscale=2 flags-=A",
])
def test_text_round_trips(text: str) -> None:
    r = parse_action_rule(text)
    assert parse_action_rule(str(r)) == r


# ------------------------------------------------------------------------------- simulator
def test_sim_zero_window_in_makes_rawtcp_probe() -> None:
    """Every ACK from b arrives with window 0 (mangle in): a may send nothing new after the
    window it learnt from the SYN-ACK and probes with its persist timer (RFC 9293 3.8.6.1)."""
    evs: list[dict] = []
    sim = Sim(seed=1, faults=["mangle in flags=+A-S set win=0"], tracer=evs.append)
    res = transfer(sim, 200_000, max_time_us=10 * SEC)
    assert not res.ok
    probes = [e for e in evs if e.get("stack") == "a" and e.get("ev") == "timer"
              and e.get("name") == "persist" and e.get("action") == "fired"]
    assert len(probes) >= 3
    assert len(res.recv_ab) < 200_000


def test_sim_syn_options_stripped() -> None:
    """a's SYN loses SACK-permitted, timestamps and window scale and says MSS 536: b may
    use none of them (RFC 2018 2, RFC 7323 1.3) and sends segments of at most 536 bytes."""
    evs: list[dict] = []
    sim = Sim(seed=2, faults=["mangle out flags=S set -sack -ts -wscale mss=536"],
              tracer=evs.append)
    res = transfer(sim, 50_000)
    assert res.ok
    assert res.server is not None
    assert not res.server.sack_ok and not res.server.ts_ok and not res.server.ws_ok
    b_data = [e["len"] for e in evs if e.get("stack") == "b" and e.get("ev") == "seg"
              and e["dir"] == "out" and e["len"] > 0]
    assert b_data and max(b_data) == 536


def test_sim_truncated_segment_is_retransmitted() -> None:
    """The first data segment arrives cut to 100 bytes: b acknowledges those, a sends the
    rest again, the stream is intact."""
    evs: list[dict] = []
    sim = Sim(seed=3, faults=["mangle out len>0 nth=1 set len=100"], tracer=evs.append)
    res = transfer(sim, 20_000)
    assert res.ok
    f = [e for e in evs if e.get("ev") == "fault"]
    assert len(f) == 1 and f[0]["len"] == 100 and f[0]["len_was"] > 100


def test_sim_shifted_seq_puts_bytes_in_the_wrong_place() -> None:
    """The 2nd data segment (stream bytes 1448..2895) leaves with seq+=1000 and a valid
    checksum: b takes it as out-of-order data for bytes 2448..3895 and keeps the first copy
    of each byte it receives (the genuine bytes 2448..2895 had arrived, 2896..3895 had
    not). The connection completes normally, but 1000 bytes of the stream are wrong: what
    a data injection with a guessed in-window sequence number does (RFC 5961 1, 6)."""
    sim = Sim(seed=4, faults=["mangle out len>0 nth=2 set seq+=1000"])
    res = transfer(sim, 30_000)
    assert res.closed and res.recv_ba == res.sent_ba
    a, b = res.sent_ab, res.recv_ab
    assert len(b) == len(a)
    assert [i for i in range(len(a)) if a[i] != b[i]] == \
        [i for i in range(2896, 3896) if a[i] != a[i - 1000]]
    assert b[2896:3896] == a[1896:2896]


def test_sim_rst_bit_added_resets_the_receiver() -> None:
    """flags+=R on an in-order data segment: its sequence number is exactly b's RCV.NXT,
    so b resets the connection (RFC 9293 3.10.7.4, RFC 5961 3.2)."""
    sim = Sim(seed=5, faults=["mangle out len>0 nth=2 set flags+=R"])
    res = transfer(sim, 30_000, max_time_us=20 * SEC)
    assert not res.ok
    assert res.server is not None and res.server.error is not None


def test_sim_ack_bit_removed_from_the_final_handshake_ack() -> None:
    """A segment without ACK in SYN-RECEIVED is dropped (RFC 9293 3.10.7.4, fifth); b
    completes the handshake with the next segment from a, which carries ACK."""
    evs: list[dict] = []
    sim = Sim(seed=6, faults=["mangle out flags=A len=0 nth=1 set flags-=A"],
              tracer=evs.append)
    res = transfer(sim, 10_000)
    assert res.ok
    assert sim.faults is not None and sim.faults.stats()[0]["applied"] == 1


def test_sim_mangle_with_corrupt_is_dropped_by_the_receiver() -> None:
    sim = Sim(seed=7, faults=["mangle in len>0 nth=1 set win=0 corrupt"])
    res = transfer(sim, 10_000)
    assert res.ok
    assert sim.corrupted == 1


def test_sim_ts_ecr_zeroed_still_transfers() -> None:
    """RFC 7323 3.2: TSecr is only meaningful with ACK; a zero echo gives no RTT sample but
    breaks nothing."""
    sim = Sim(seed=8, faults=["mangle in flags=+A set ts.ecr=0"])
    assert transfer(sim, 30_000).ok


def test_no_injector_without_inject_rules() -> None:
    """mangle and the other actions leave the inject machinery out entirely."""
    eng = FaultEngine([parse_action_rule("mangle in set win=0"),
                       parse_action_rule("drop out nth=1")])
    assert eng.injector is None
    assert FaultEngine([]).injector is None
