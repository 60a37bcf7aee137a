"""--peer-swap: rawtcp fault rules translated for a Linux socket (nftables text and the Python
model of the same tables), and the scenarios of the five close-sequence experiments. Pure."""

from __future__ import annotations

import pytest

from rawtcp.core.segment import Flags
from rawtcp.experiments import closing, lifecycle
from rawtcp.experiments.peerswap import SCENARIOS, Scenario
from rawtcp.experiments.peerswap_rules import (
    TableModel,
    nft_table_body,
    translate,
    translate_all,
)

A, F, S, P = int(Flags.ACK), int(Flags.FIN), int(Flags.SYN), int(Flags.PSH)
FLOW = ("10.77.0.2", 40000, "10.77.0.1", 7)


def test_the_five_close_sequence_experiments_have_scenarios() -> None:
    assert set(SCENARIOS) == {"lifecycle", "final-ack-drop", "final-ack-drop-passive",
                              "time-wait-ablation", "simultaneous-close"}
    assert all(isinstance(s, Scenario) and s.steps[0] == ("connect",) and s.steps[-1] ==
               ("end",) for s in SCENARIOS.values())
    # the bytes the experiments send, from their own modules
    assert SCENARIOS["lifecycle"].steps[1] == ("send", lifecycle.MESSAGE)
    assert SCENARIOS["time-wait-ablation"].faults == (
        f"drop out flags=A seq={len(closing.MESSAGE) + 2} nth=1",)
    assert SCENARIOS["time-wait-ablation"].config == {"time_wait": 0}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_rule_is_applied(name: str) -> None:
    sc = SCENARIOS[name]
    for t in translate_all(list(sc.faults), sc.out_bytes, sc.in_bytes):
        assert t.applied, t.notes


def test_time_wait_rule_becomes_their_fin_after_ours_on_the_peer_side() -> None:
    t = translate("drop out flags=A state=TIME_WAIT nth=1")
    assert (t.applied, t.exact, t.where, t.phase, t.nth) == (True, False, "peer", "fiafo", 1)
    assert "CLOSING" in t.notes[0]               # says why it is not exact
    body, comments = nft_table_body("peer", [t], "10.77.0.2", "10.77.0.1")
    assert comments == ["t0"]
    assert "tcp flags & (fin|syn|rst|psh|ack|urg|ecn|cwr) == ack" in body
    assert "ip saddr 10.77.0.2 ip daddr 10.77.0.1" in body
    assert "@fiafo" in body and 'counter drop comment "t0"' in body
    body, comments = nft_table_body("linux", [t], "10.77.0.2", "10.77.0.1")
    assert comments == [] and "drop" not in body         # out rules live on the peer side


def test_seq_after_our_fin_is_exact_other_seqs_are_refused() -> None:
    t = translate("drop out flags=A seq=66 nth=1", out_bytes=64)
    assert (t.applied, t.exact, t.phase) == (True, True, "fo")
    t = translate("drop out seq=10", out_bytes=64)
    assert not t.applied and "ISN" in t.notes[0]
    assert translate("drop out seq=0").syn_only


@pytest.mark.parametrize("text, why", [
    ("drop out len>0 nth=1", "len"),
    ("drop out state=SYN_SENT", "SYN_SENT"),
    ("drop out state!=TIME_WAIT", "one state"),
    ("duplicate out flags=A", "duplicate"),
    ("delay out ms=10 nth=2", "delay with conditions"),
    ("drop out proto=udp", "proto=udp"),
    ("drop out count=2", "count"),
])
def test_untranslatable_rules_say_why(text: str, why: str) -> None:
    t = translate(text)
    assert not t.applied and not t.exact and t.where == ""
    assert why in t.notes[0] and t.notes[0].startswith("not translated")
    assert t.to_dict()["nft"] == "not applied"


def test_random_drop_is_approximate() -> None:
    t = translate("drop in p=0.25")
    assert t.applied and not t.exact and "numgen" in t.notes[0]
    body, _ = nft_table_body("linux", [t], "10.77.0.2", "10.77.0.1")
    assert "numgen random mod 10000 < 2500" in body


def test_model_final_ack_drop_drops_the_ack_of_their_fin_once() -> None:
    """rawtcp closes first; the Linux socket's ACK of the kernel's FIN (sent in TIME_WAIT,
    RFC 9293 3.10.7.4) is the one the rule eats, its re-ACK passes."""
    t = translate_all(["drop out flags=A state=TIME_WAIT nth=1"])
    peer, linux = TableModel("peer", t), TableModel("linux", t)

    def out(flags: int) -> int | None:
        linux.leaving(FLOW, flags)
        return peer.arriving(FLOW, flags)

    def inc(flags: int) -> int | None:
        peer.leaving(FLOW, flags)
        return linux.arriving(FLOW, flags)

    assert out(S) is None and inc(S | A) is None and out(A) is None
    assert out(P | A) is None and inc(A) is None and out(A) is None   # data, ACKs
    assert out(F | A) is None and inc(A) is None                        # our FIN, its ACK
    assert inc(F | A) is None
    assert out(A) == 0                       # the final ACK: dropped
    assert inc(F | A) is None and out(A) is None          # the FIN again, the re-ACK lives
    assert peer.dropped == {0: 1} and linux.dropped == {}


def test_model_last_ack_rule_waits_for_our_fin_after_theirs() -> None:
    t = translate_all(["drop in flags=A state=LAST_ACK nth=1"])
    peer, linux = TableModel("peer", t), TableModel("linux", t)
    peer.leaving(FLOW, P | A)
    assert linux.arriving(FLOW, A) is None           # an ACK in ESTABLISHED
    peer.leaving(FLOW, F | A)
    assert linux.arriving(FLOW, F | A) is None       # their FIN: we are in CLOSE_WAIT
    linux.leaving(FLOW, F | A)                       # our FIN: LAST_ACK
    peer.leaving(FLOW, A)
    assert linux.arriving(FLOW, A) == 0              # the ACK of our FIN
    assert linux.arriving(FLOW, A) is None           # nth=1: once


def test_model_a_dropped_fin_does_not_count_as_seen() -> None:
    t = translate_all(["drop in flags=FA nth=1", "drop in flags=A state=CLOSE_WAIT"])
    linux = TableModel("linux", t)
    assert linux.arriving(FLOW, F | A) == 0          # their FIN dies
    assert linux.arriving(FLOW, A) is None           # so we are not in CLOSE_WAIT
    assert linux.arriving(FLOW, F | A) is None       # the retransmission arrives
    assert linux.arriving(FLOW, A) == 1


def test_tcp_fields_of_an_ipv4_segment_and_nothing_else() -> None:
    import struct

    from rawtcp.experiments.peerswap_lab import tcp_fields

    tcp = struct.pack("!HHIIBBHHH", 40000, 7, 123, 456, 5 << 4, F | A, 100, 0, 0)
    ip = bytes([0x45, 0, 0, 20 + len(tcp), 0, 0, 0x40, 0, 64, 6, 0, 0,
                10, 77, 0, 2, 10, 77, 0, 1]) + tcp
    assert tcp_fields(ip) == ("10.77.0.2", 40000, "10.77.0.1", 7, 123, 456, F | A)
    assert tcp_fields(ip[:30]) is None                       # truncated
    assert tcp_fields(ip[:9] + b"\x11" + ip[10:]) is None    # UDP
    assert tcp_fields(b"\x60" + ip[1:]) is None              # not IPv4


def test_drop_marks_turn_an_incoming_segment_into_a_fault_and_follow_an_outgoing_one() -> None:
    from rawtcp.experiments.peerswap import _apply_marks

    t = translate_all(["drop in flags=A nth=1", "drop out flags=A nth=1"])
    seg_in = {"t": 10, "ev": "seg", "dir": "in", "seq": 1, "ack": 2, "flags": "A", "rtx": False}
    seg_out = {"t": 20, "ev": "seg", "dir": "out", "seq": 2, "ack": 1, "flags": "A"}
    other = {"t": 20, "ev": "seg", "dir": "out", "seq": 9, "ack": 1, "flags": "A"}
    marks = [{"t": 10, "dir": "in", "seq": 1, "ack": 2, "flags": A, "rule": 0},
             {"t": 20, "dir": "out", "seq": 2, "ack": 1, "flags": A, "rule": 1}]
    out, hit = _apply_marks([seg_in, seg_out, other], marks, t)
    assert hit == 2
    assert [(e["ev"], e["dir"], e.get("rule")) for e in out] == [
        ("fault", "in", "drop in flags=A nth=1 (nftables)"), ("seg", "out", None),
        ("fault", "out", "drop out flags=A nth=1 (nftables)"), ("seg", "out", None)]
    assert out[0]["action"] == "drop" and "rtx" not in out[0]
