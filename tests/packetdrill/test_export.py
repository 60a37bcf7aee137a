"""The exporter: a rawtcp trace of one connection as a packetdrill script, in both views.

The scenario runs in :class:`rawtcp.sim.Sim` (10 ms one-way delay): a connects to b, both
send 3000 bytes, shut down their sending side, read to the end and close; a's first data
segment is lost on the way (a fault rule). The exported scripts are parsed with the parser and
checked line by line, then replayed by the runner against rawtcp (the round trip).
"""

from __future__ import annotations

import re

import pytest

from rawtcp.core.config import MS
from rawtcp.packetdrill import parse_script
from rawtcp.packetdrill.export import ExportError, export_local, export_trace, write_script
from rawtcp.packetdrill.runner import run_script
from rawtcp.packetdrill.script import Packet, Syscall
from rawtcp.sim import A_ADDR, B_ADDR, Sim, transfer
from rawtcp.trace import Tracer, read_trace

LOST = "drop out len>0 nth=1"     # a's first data segment never reaches b


def run_transfer(faults: list[str], nbytes: int = 3000) -> list[dict]:
    tr = Tracer()
    sim = Sim(seed=1, tracer=tr, faults=faults)
    res = transfer(sim, nbytes)
    assert res.ok
    return tr.events()


@pytest.fixture(scope="module")
def lossy() -> list[dict]:
    return run_transfer([LOST])


def packets(text: str) -> list[Packet]:
    return [e for e in parse_script(text, "x.pkt").events if isinstance(e, Packet)]


def calls(text: str) -> list[str]:
    return [e.name for e in parse_script(text, "x.pkt").events if isinstance(e, Syscall)]


def only_rawtcp(events: list[dict], stack: str) -> list[dict]:
    """What a single-stack trace would hold: rawtcp's events and the faults on its link."""
    return [e for e in events if e.get("stack") == stack or e.get("ev") == "fault"]


def replay(text: str, name: str = "export.pkt") -> None:
    res = run_script(parse_script(text, name))
    assert res.status == "PASS", "\n".join(res.diagnostics()) + "\n" + text


# ----------------------------------------------------------------------------- the lines
def test_local_view_of_the_connecting_side(lossy: list[dict]) -> None:
    text = export_local(lossy, ours="a")
    assert calls(text)[:3] == ["socket", "fcntl", "connect"]
    assert calls(text).count("write") >= 1 and "shutdown" in calls(text)
    ps = packets(text)
    # the handshake, with packetdrill's relative numbers (SYNs 0:0, then 1 on both sides)
    assert (ps[0].direction, ps[0].flags, ps[0].seq_start, ps[0].ack) == (">", "S", 0, None)
    assert (ps[1].direction, ps[1].flags, ps[1].ack) == ("<", "S.", 1)
    assert (ps[2].direction, ps[2].flags, ps[2].seq_start, ps[2].ack) == (">", ".", 1, 1)
    # rawtcp's own segments are all there, the lost one included: 1:1449 goes out twice
    ours = [(p.seq_start, p.length) for p in ps if p.direction == ">" and p.length]
    assert ours.count((1, 1448)) == 2
    assert (1449, 1448) in ours and (2897, 104) in ours
    fins = [p for p in ps if "F" in p.flags]
    assert [(p.direction, p.seq_start) for p in fins] == [(">", 3001), ("<", 3001)]
    # windows are given on inbound lines only; outbound options exactly (timestamps on)
    assert all(p.win is not None for p in ps if p.direction == "<")
    assert all(p.win is None for p in ps if p.direction == ">")
    assert ps[0].options is not None and [o.kind for o in ps[0].options] == \
        ["mss", "sackOK", "TS", "nop", "wscale"]
    # the peer's SACK of its out-of-order data is relative to a's ISN: 1449:2897 missing 1:1449
    sacks = [o.blocks for p in ps if p.direction == "<" for o in p.options or ()
             if o.kind == "sack"]
    assert ((1449, 2897),) in sacks


def test_peer_view_of_the_connecting_side(lossy: list[dict]) -> None:
    text = export_trace(lossy, ours="a")
    assert "--local_ip=192.168.0.1 --remote_ip=192.0.2.1" in text   # how to replay on Linux
    assert calls(text)[:5] == ["socket", "setsockopt", "bind", "listen", "accept"]
    ps = packets(text)
    # rawtcp's segments are inbound now; the peer's outbound
    assert (ps[0].direction, ps[0].flags) == ("<", "S")
    assert (ps[1].direction, ps[1].flags) == (">", "S.")
    # the lost segment never reached the peer: 1:1449 arrives once (the retransmission)
    inbound_data = [(p.seq_start, p.length) for p in ps if p.direction == "<" and p.length]
    assert inbound_data.count((1, 1448)) == 1
    assert inbound_data.index((1449, 1448)) < inbound_data.index((1, 1448))
    # the peer's clock: its SYN-ACK when the SYN arrived, rawtcp's ACK one round trip later
    events = parse_script(text, "x.pkt").events
    first = next(i for i, e in enumerate(events) if isinstance(e, Packet))
    assert events[first + 1].time.start == 0
    assert events[first + 2].time.start == 20 * MS


def test_peer_view_inferred_from_rawtcp_alone_matches_the_peers_own(lossy: list[dict]) -> None:
    """Without the peer's events the peer's side is reconstructed from rawtcp's record
    (one-way delay = half the handshake round trip): the same segments and calls."""
    exact = export_trace(lossy, ours="a")
    inferred = export_trace(only_rawtcp(lossy, "a"), ours="a")
    assert "one-way delay of 10000 us" in inferred
    for text in (exact, inferred):       # the header names the peer's side first
        assert f"// Connection {B_ADDR}:5000 > {A_ADDR}:" in text
        assert "(the peer accepted)" in text

    def shape(text: str) -> list[str]:
        out = []
        for e in parse_script(text, "x.pkt").events:
            if isinstance(e, Packet):
                out.append(f"{e.direction}{e.flags}{e.seq_start}:{e.length}:{e.ack}")
            else:
                out.append(e.name)
        return out

    assert shape(inferred) == shape(exact)


def test_views_of_the_accepting_side(lossy: list[dict]) -> None:
    local = export_local(lossy, ours="b")
    assert calls(local)[:5] == ["socket", "setsockopt", "bind", "listen", "accept"]
    ps = packets(local)
    assert [(p.direction, p.flags) for p in ps[:3]] == [("<", "S"), (">", "S."), ("<", ".")]
    # b never saw a's first data segment: it arrives once, after 1449:2897
    got = [(p.seq_start, p.length) for p in ps if p.direction == "<" and p.length]
    assert got.count((1, 1448)) == 1
    peer = export_trace(only_rawtcp(lossy, "b"), ours="b")
    pp = packets(peer)
    # ... and in b's peer's view, a sent it twice (the first copy known from the fault)
    sent = [(p.seq_start, p.length) for p in pp if p.direction == ">" and p.length]
    assert sent.count((1, 1448)) == 2
    assert any(p.options is None for p in pp if p.direction == ">")   # options unknown: <...>


def test_trace_file_round_trip(tmp_path, lossy: list[dict]) -> None:
    """A --trace file (JSON lines) exports the same as the in-memory events."""
    path = tmp_path / "run.jsonl"
    with Tracer(path) as tr:
        for e in lossy:
            tr(dict(e))
    assert export_local(read_trace(path), ours="a") == export_local(lossy, ours="a")
    out = tmp_path / "peer.pkt"
    text = write_script(str(out), read_trace(path), view="peer", ours="a")
    assert out.read_text() == text == export_trace(lossy, ours="a")


def test_bad_traces_are_refused(lossy: list[dict]) -> None:
    with pytest.raises(ExportError, match="ours="):
        export_trace(lossy)                     # two stacks: which one is rawtcp?
    with pytest.raises(ExportError, match="no SYN"):
        export_local([e for e in lossy if "S" not in str(e.get("flags", ""))], ours="a")
    with pytest.raises(ExportError, match="stack 'c'"):
        export_local(lossy, ours="c")
    with pytest.raises(ValueError, match="view"):
        write_script("/nonexistent/x.pkt", lossy, view="sideways", ours="a")


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("side", ["a", "b"])
def test_round_trip_local_view(side: str, lossy: list[dict]) -> None:
    """rawtcp replays its own exported run on the runner's virtual clock and does the same."""
    replay(export_local(lossy, ours=side), f"{side}-local.pkt")


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("inferred", [False, True], ids=["peer-events", "inferred"])
def test_round_trip_peer_view(side: str, inferred: bool, lossy: list[dict]) -> None:
    """The peer's view, replayed with rawtcp as the local stack (in the peer's role)."""
    events = only_rawtcp(lossy, side) if inferred else lossy
    replay(export_trace(events, ours=side), f"{side}-peer.pkt")


@pytest.mark.parametrize("rule", ["drop in len>0 nth=2", "drop out flags=F nth=1",
                                  "duplicate out len>0 nth=1", "delay in len>0 nth=1 ms=50",
                                  "reorder out len>0 nth=1", "drop in flags=S nth=1"])
def test_round_trip_under_other_faults(rule: str) -> None:
    events = run_transfer([rule])
    for side in "ab":
        replay(export_local(events, ours=side), f"{side}-local.pkt")
        replay(export_trace(only_rawtcp(events, side), ours=side), f"{side}-peer.pkt")


def test_round_trip_of_a_longer_transfer() -> None:
    """50 kB each way: congestion-window-limited flights; a write covers the queued data
    (no PSH until the buffer empties) and the FIN rides on the last data segment."""
    events = run_transfer([LOST], 50_000)
    text = export_local(events, ours="a")
    assert any("F" in p.flags and p.length for p in packets(text))
    replay(text, "long.pkt")
    replay(export_trace(events, ours="a"), "long-peer.pkt")


def test_round_trip_detects_a_changed_behaviour(lossy: list[dict]) -> None:
    """The replay is a real check: the exported run with one expected ACK number changed
    fails at that line."""
    text = export_local(lossy, ours="a")
    m = [x for x in re.finditer(r"^(\s*\S+ > \S+ [\d:()]+ ack )(\d+)", text, re.M)][-1]
    bad = text[:m.start(2)] + str(int(m.group(2)) + 1) + text[m.end(2):]
    res = run_script(parse_script(bad, "bad.pkt"))
    assert res.status == "FAIL"
    assert res.failure is not None and res.failure.line == text.count("\n", 0, m.start()) + 1


def test_close_with_unread_data_exports_a_reset() -> None:
    """b sends 500 bytes a never reads; a closes: RST (RFC 2525 2.17). The local view says
    close() and the R. segment, and replays."""
    tr = Tracer()
    sim = Sim(seed=2, tracer=tr)
    lst = sim.b.listen(sim.b.bind(B_ADDR, 7000), 4)
    a = sim.a.connect(None, A_ADDR, B_ADDR, 7000, sim.now)
    sim.run_until(lambda: lst.pending > 0, 1_000_000)
    b = lst.accept()
    assert b is not None
    b.send(b"x" * 500, sim.now)
    sim.run_until(lambda: a.readable == 500, 2_000_000)
    sim.run_for(100 * MS)
    a.close(sim.now)
    sim.run_for(100 * MS)
    text = export_local(tr.events(), ours="a")
    assert "close(3) = 0" in text and "read(" not in text
    assert [p.flags for p in packets(text) if p.direction == ">"][-1] == "R."
    replay(text, "rst.pkt")


# ----------------------------------------------------------------------------- a real kernel
@pytest.mark.parametrize("name", ["lifecycle", "final-ack-drop", "linger-abort"])
def test_round_trip_of_an_experiment_against_linux(name: str) -> None:
    """A run against the Linux kernel in a private lab (the experiment builds and removes it):
    rawtcp's view replays on the virtual clock; the peer's view has the kernel's calls and
    segments (replayable with the real packetdrill against Linux)."""
    from rawtcp.experiments import run_experiment

    res = run_experiment(name, ladder=False)
    assert res.passed, res.error
    replay(export_local(res.events), f"{name}-local.pkt")
    peer = export_trace(res.events)
    assert calls(peer)[:4] == ["socket", "setsockopt", "bind", "listen"]   # the kernel served
    ps = packets(peer)
    assert (ps[0].direction, ps[0].flags, ps[1].direction, ps[1].flags) == \
        ("<", "S", ">", "S.")
    flags = {p.flags for p in ps}
    assert ("R." in flags) == (name == "linger-abort")
