"""Ladder diagrams from trace events and from pcap files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rawtcp.core.segment import Packet, Segment, parse_flags
from rawtcp.report.ladder import ladder_from_pcap, render_ladder
from rawtcp.trace import PcapRecorder, encode_packet

from .ladder_fixture import CONN, PEER, US, trace

GOLDEN = Path(__file__).parent / "golden"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_golden_close_with_lost_final_ack() -> None:
    """RFC 9293 3.6: the peer in LAST_ACK retransmits its FIN when our final ACK is lost, and
    TIME_WAIT re-ACKs it. The diagram shows the drop, the [rtx] FIN and the re-ACK."""
    want = (GOLDEN / "close_lost_ack.txt").read_text()
    assert render_ladder(trace()) == want


def test_golden_facts_that_matter() -> None:
    lines = render_ladder(trace()).splitlines()
    dropped = [ln for ln in lines if "X" in ln]
    assert len(dropped) == 1
    # the dropped final ACK stops about half-way: it does not reach the peer's column
    assert re.search(r"\|--- A seq=102 ack=2 len=0 --X +\|$", dropped[0])
    rtx = [ln for ln in lines if "[rtx]" in ln]
    assert len(rtx) == 1 and "<" in rtx[0] and "FA seq=1 ack=102" in rtx[0]
    assert lines[-1].split() == ["60206.000", "CLOSED", "|", "|"]
    assert sum("ESTABLISHED" in ln and ln.endswith("ESTABLISHED") for ln in lines) == 1  # folded
    assert all(len(ln) <= 80 for ln in lines)


def test_relative_numbers_are_computed_when_the_events_lack_them() -> None:
    assert render_ladder(trace(rel=False)) == render_ladder(trace())


def test_width_is_honoured_and_too_narrow_is_refused() -> None:
    for width in (80, 120):
        lines = render_ladder(trace(), width=width).splitlines()
        assert max(len(ln) for ln in lines) <= width
        arrows = [ln for ln in lines if "->|" in ln or "|<-" in ln]
        assert arrows and all(len(ln) == width - 13 for ln in arrows)  # 13 = "| " + state
    with pytest.raises(OSError):
        render_ladder(trace(), width=30)


def test_color_adds_ansi_only() -> None:
    colored = render_ladder(trace(), color=True)
    assert "\x1b[" in colored
    assert ANSI.sub("", colored) == render_ladder(trace())


def _in_seg(t: int, flags: str, seq: int, ack: int, n: int = 0) -> dict:
    return {"t": t, "ev": "seg", "conn": CONN, "dir": "in", "src": PEER, "dst": US,
            "sport": 80, "dport": 40000, "seq": seq, "ack": ack, "flags": flags, "win": 100,
            "len": n}


def test_an_incoming_segment_dropped_by_a_fault_stops_short_of_rawtcp() -> None:
    ev = _in_seg(1000, "PA", 5001, 1001, 10)
    fault = dict(ev, ev="fault", action="drop", rule="in nth=1")
    out = render_ladder([fault])
    line = out.splitlines()[1]
    assert re.search(r"\| +X-+ PA seq=5001 ack=1001 len=10 ---\|$", line), line


def test_faults_on_outgoing_segments_are_tagged_and_corrupt_dies_at_the_peer() -> None:
    seg = {"t": 0, "ev": "seg", "conn": CONN, "dir": "out", "src": US, "dst": PEER,
           "sport": 40000, "dport": 80, "seq": 1, "ack": 2, "flags": "PA", "win": 1, "len": 3}
    evs = [seg,
           dict(seg, ev="fault", action="delay", ms=300),
           dict(seg, ev="fault", action="duplicate", copies=1),
           dict(seg, ev="fault", action="corrupt")]
    line = render_ladder(evs).splitlines()[1]
    assert "[delay 300ms] [dup] [corrupt]" in line
    assert line.endswith("X|")


def test_rawtcp_drops_and_incoming_faults_become_notes() -> None:
    ev = _in_seg(0, "A", 1, 1)
    evs = [dict(ev, ev="fault", action="delay", ms=50),
           {"t": 10, "ev": "drop", "conn": CONN, "dir": "in", "reason": "unacceptable",
            "flags": "A", "seq": 1}]
    lines = render_ladder(evs).splitlines()[1:]
    assert "~ fault delay 50ms in A seq=1 ack=1 len=0" in lines[0]
    assert "~ rawtcp dropped A seq=1: unacceptable" in lines[1]


def test_conn_filter() -> None:
    other = _in_seg(1_700_000_500, "S", 9, 0)
    other.update(conn="10.7.0.1:1>10.7.0.2:2", sport=2, dport=1)
    assert render_ladder(trace() + [other], conn=CONN) == render_ladder(trace())
    both = render_ladder(trace() + [other])
    assert both.count(" S seq=0 len=0 ") == 2
    assert any(ln.startswith("     0.500") and "|<" in ln for ln in both.splitlines())


# ---------------------------------------------------------------------------------------------
# from pcap
# ---------------------------------------------------------------------------------------------


def _pcap_of(events: list[dict], path: Path, v6: bool = False) -> list[dict]:
    """Record the seg events as packets; returns the seg events recorded."""
    segs = [e for e in events if e["ev"] == "seg"]
    m = {US: "fd00::1", PEER: "fd00::2"} if v6 else {US: US, PEER: PEER}
    with PcapRecorder(path) as rec:
        for e in segs:
            s = Segment(e["sport"], e["dport"], e["seq"], e["ack"], parse_flags(e["flags"]),
                        e["win"], payload=b"z" * e["len"])
            rec.record(encode_packet(Packet(m[e["src"]], m[e["dst"]], s)), e["t"])
    return segs


def _arrows(text: str) -> list[str]:
    return [ln.split("|", 1)[1] for ln in text.splitlines()[1:] if "--" in ln]


def test_ladder_from_pcap_matches_the_trace_ladder(tmp_path) -> None:
    p = tmp_path / "c.pcap"
    segs = _pcap_of(trace(), p)
    from_pcap = ladder_from_pcap(p)
    from_trace = render_ladder(segs)
    assert from_pcap == from_trace
    assert len(_arrows(from_pcap)) == len(segs) == 11
    assert "[rtx]" in from_pcap


def test_ladder_from_pcap_ipv6_and_chosen_side(tmp_path) -> None:
    p = tmp_path / "c6.pcap"
    _pcap_of(trace(), p, v6=True)
    ours = ladder_from_pcap(p)
    assert ours.splitlines()[0].split()[2:4] == ["[fd00::1]:40000", "[fd00::2]:80"] or (
        "fd00::1:40000" in ours.splitlines()[0])
    first = _arrows(ours)[0]
    assert first.rstrip("|").endswith(">") and " S seq=0 len=0 " in first
    theirs = ladder_from_pcap(p, our_addr="fd00::2")
    first = _arrows(theirs)[0]
    assert first.startswith("<") and " S seq=0 len=0 " in first
    with pytest.raises(OSError):
        ladder_from_pcap(p, our_addr="not-an-address")


def test_live_ladder_writes_rows_as_events_arrive_and_ends_like_the_full_one() -> None:
    """A row appears once the next event arrived (a fault may still mark it); at close the
    output is exactly the ladder drawn from the whole trace."""
    from rawtcp.report.ladder import LiveLadder

    events = trace()
    out: list[str] = []
    live = LiveLadder(out.append, width=100)
    seen_before_end = 0
    for i, ev in enumerate(events):
        live(ev)
        if i == len(events) // 2:
            seen_before_end = len("".join(out).splitlines())
    live.close()
    full = render_ladder(events, width=100)
    assert "".join(out) == full
    assert 3 <= seen_before_end < len(full.splitlines())
    # equal concatenation: no row was written early and then redrawn (the dropped final
    # ACK was written once, with its X)
    assert "".join(out).count("--X") == 1


# ---------------------------------------------------------------------------------------------
# a listening socket is not the connection
# ---------------------------------------------------------------------------------------------


def _server_trace() -> tuple[list[dict], str]:
    """rawtcp (stack b of the simulator) listens on 0.0.0.0:9000, accepts a connection and
    closes its listener while the connection stays ESTABLISHED (RFC 9293 3.10.4: closing a
    listener does not touch connections it already made)."""
    from rawtcp.core.config import SEC
    from rawtcp.sim import A_ADDR, B_ADDR, Sim

    evs: list[dict] = []
    sim = Sim(seed=1, tracer=evs.append)
    lst = sim.b.listen(sim.b.bind("0.0.0.0", 9000), 4)
    client = sim.a.connect(None, A_ADDR, B_ADDR, 9000, sim.now)
    assert sim.run_until(lambda: lst.pending > 0, 10 * SEC)
    server = lst.accept()
    assert server is not None
    client.send(b"hi", sim.now)
    sim.run_for(SEC)
    lst.close(sim.now)
    sim.run_for(SEC)
    assert server.state.name == "ESTABLISHED"
    ours = [e for e in evs if e["stack"] == "b"]
    assert [(e["old"], e["new"]) for e in ours if e.get("conn", "").endswith(">*:*")] == [
        ("CLOSED", "LISTEN"), ("LISTEN", "CLOSED")]
    return ours, f"{B_ADDR}:9000>{A_ADDR}:{client.local[1]}"


def _states(text: str) -> list[str]:
    """The rawtcp column: state names left of the first bar."""
    out = []
    for ln in text.splitlines()[1:]:
        left = ln.split("|", 1)[0].split()
        if len(left) == 2:
            out.append(left[1])
    return out


def test_closing_the_listener_is_not_drawn_as_the_connection_closing() -> None:
    evs, conn = _server_trace()
    text = render_ladder(evs)
    states = _states(text)
    assert "CLOSED" not in states, text
    assert states[0] == "LISTEN" and states[-1] == "ESTABLISHED", text
    assert states.count("LISTEN") == 1
    # the same with the connection picked out: the listener's LISTEN still leads
    assert _states(render_ladder(evs, conn=conn)) == states
    # a listener on another port is not drawn for this connection
    other = [dict(e, conn="0.0.0.0:7>*:*") if e.get("conn", "").endswith(">*:*") else e
             for e in evs]
    assert "LISTEN" not in _states(render_ladder(other, conn=conn))


def test_a_listen_after_the_connection_started_is_not_drawn() -> None:
    listen = {"t": 1_700_000_500, "ev": "state", "conn": "10.7.0.1:9000>*:*", "old": "CLOSED",
              "new": "LISTEN", "reason": "listen"}
    assert render_ladder(trace() + [listen]) == render_ladder(trace())
