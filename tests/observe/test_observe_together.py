"""The pieces together: packets through a FaultEngine, traced, captured and drawn."""

from __future__ import annotations

from rawtcp.core.segment import Flags, Packet, Segment, flags_str
from rawtcp.faults import FaultEngine, parse_rule
from rawtcp.report.ladder import ladder_from_pcap, render_ladder
from rawtcp.trace import PcapRecorder, Tracer, encode_packet, read_trace

US, PEER = "10.8.0.1", "10.8.0.2"
F, S, A, P = Flags.FIN, Flags.SYN, Flags.ACK, Flags.PSH


def _pkt(d: str, flags: Flags, seq: int, ack: int, data: bytes = b"") -> Packet:
    if d == "out":
        return Packet(US, PEER, Segment(40000, 80, seq, ack, flags, 1000, payload=data))
    return Packet(PEER, US, Segment(80, 40000, seq, ack, flags, 1000, payload=data))


def test_active_close_with_the_final_ack_dropped(tmp_path) -> None:
    """RFC 9293 3.6 / 3.10.7.4: a lost final ACK makes the peer retransmit its FIN; our
    TIME_WAIT answers with the ACK again. Driven by hand through the fault engine."""
    tr = Tracer(tmp_path / "trace.jsonl")
    state = {"s": "SYN_SENT"}
    eng = FaultEngine([parse_rule("drop", "out flags=A state=TIME_WAIT nth=1")], tracer=tr,
                      state_of=lambda pkt, d: state["s"])
    script = [  # (us, dir, flags, seq, ack, data, our state when it passes)
        (0, "out", S, 100, 0, b"", "SYN_SENT"),
        (1000, "in", S | A, 900, 101, b"", "SYN_SENT"),
        (1000, "out", A, 101, 901, b"", "ESTABLISHED"),
        (2000, "out", P | A, 101, 901, b"hello", "ESTABLISHED"),
        (3000, "in", A, 901, 106, b"", "ESTABLISHED"),
        (4000, "out", F | A, 106, 901, b"", "FIN_WAIT_1"),
        (5000, "in", F | A, 901, 107, b"", "FIN_WAIT_1"),
        (5000, "out", A, 107, 902, b"", "TIME_WAIT"),
        (205000, "in", F | A, 901, 107, b"", "TIME_WAIT"),
        (205000, "out", A, 107, 902, b"", "TIME_WAIT"),
    ]
    delivered: list[tuple[int, Packet]] = []
    with PcapRecorder(tmp_path / "wire.pcap") as pcap:
        for t, d, flags, seq, ack, data, st in script:
            if st != state["s"]:
                tr({"t": t, "ev": "state", "old": state["s"], "new": st, "reason": "script"})
                state["s"] = st
            pkt = _pkt(d, flags, seq, ack, data)
            s = pkt.segment
            if d == "out":  # the core traces what it sends, before the faults see it
                tr({"t": t, "ev": "seg", "dir": "out", "src": pkt.src, "dst": pkt.dst,
                    "sport": s.src_port, "dport": s.dst_port, "seq": seq, "ack": ack,
                    "flags": flags_str(flags), "win": 1000, "len": len(data), "state": st})
            for rt, p, corrupt in eng.process(d, pkt, t):
                assert rt == t and not corrupt
                delivered.append((rt, p))
                pcap.record(encode_packet(p), rt)
                if d == "in":
                    tr({"t": t, "ev": "seg", "dir": "in", "src": p.src, "dst": p.dst,
                        "sport": p.segment.src_port, "dport": p.segment.dst_port,
                        "seq": p.segment.seq, "ack": p.segment.ack,
                        "flags": flags_str(p.segment.flags), "win": 1000,
                        "len": len(p.segment.payload), "state": st})
    tr.close()
    assert len(delivered) == len(script) - 1
    assert eng.stats() == [{"rule": "drop out flags=A state=TIME_WAIT nth=1", "matched": 2,
                            "applied": 1}]
    evs = read_trace(tmp_path / "trace.jsonl")
    (fault,) = [e for e in evs if e["ev"] == "fault"]
    assert (fault["rseq"], fault["rack"], fault["t"]) == (7, 2, 5000)

    lines = render_ladder(evs).splitlines()
    x = [ln for ln in lines if ln.rstrip("| ").endswith("X")]
    assert len(x) == 1 and "A seq=7 ack=2 len=0" in x[0] and x[0].split()[0] == "5.000"
    rtx = [ln for ln in lines if "[rtx]" in ln]
    assert len(rtx) == 1 and rtx[0].split()[0] == "205.000" and "|<" in rtx[0]
    assert lines[-1].split()[0] == "205.000" and "A seq=7 ack=2 len=0 " in lines[-1]

    # the capture holds only what went on the wire: the dropped ACK is not in it
    wire = ladder_from_pcap(tmp_path / "wire.pcap")
    assert not any(ln.rstrip("| ").endswith("X") for ln in wire.splitlines())
    assert sum(1 for ln in wire.splitlines()[1:] if "seq=7 ack=2" in ln) == 1
