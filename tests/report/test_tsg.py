"""The Stevens time-sequence graph (rawtcp.report.tsg): which segments, ACKs, SACK blocks,
window line and drops it draws, from trace events."""

from __future__ import annotations

import pytest

from rawtcp.report.tsg import pick_connection, time_sequence_graph, tsg_series

from .report_fixture import memory_run

ISN, IRS = 1000, 5000
US, PEER = "10.0.0.1", "10.0.0.2"
CONN = f"{US}:40000>{PEER}:80"


def _seg(t: int, d: str, flags: str, seq: int, ack: int, n: int = 0, win: int = 1000,
         **kw) -> dict:
    src, dst, sp, dp = (US, PEER, 40000, 80) if d == "out" else (PEER, US, 80, 40000)
    return {"t": t, "ev": "seg", "dir": d, "conn": CONN, "src": src, "dst": dst, "sport": sp,
            "dport": dp, "seq": seq, "ack": ack, "flags": flags, "win": win, "len": n, **kw}


def trace() -> list[dict]:
    """Handshake with window scaling (ours 7, the peer's 2), four data segments, the second
    lost (a fault drop), SACK for the third and fourth, then its retransmission."""
    return [
        _seg(0, "out", "S", ISN, 0, opts={"mss": 1000, "wscale": 7, "sack_perm": True}),
        _seg(1000, "in", "SA", IRS, ISN + 1, opts={"mss": 1000, "wscale": 2}),
        _seg(1100, "out", "A", ISN + 1, IRS + 1),
        _seg(2000, "out", "PA", ISN + 1, IRS + 1, 100),
        _seg(2000, "out", "PA", ISN + 101, IRS + 1, 100),
        {"t": 2000, "ev": "fault", "action": "drop", "rule": "out len>0 nth=2", "dir": "out",
         "conn": CONN, "src": US, "dst": PEER, "sport": 40000, "dport": 80,
         "seq": ISN + 101, "ack": IRS + 1, "flags": "PA", "len": 100},
        _seg(2000, "out", "PA", ISN + 201, IRS + 1, 100),
        _seg(2000, "out", "PA", ISN + 301, IRS + 1, 100),
        _seg(3000, "in", "A", IRS + 1, ISN + 101, win=500),
        _seg(3100, "in", "A", IRS + 1, ISN + 101, win=500,
             opts={"sack": [[ISN + 201, ISN + 301]]}),
        _seg(3200, "in", "A", IRS + 1, ISN + 101, win=500,
             opts={"sack": [[ISN + 201, ISN + 401]]}),
        _seg(3300, "out", "PA", ISN + 101, IRS + 1, 100),
        _seg(4300, "in", "A", IRS + 1, ISN + 401, win=500),
    ]


def test_series_of_our_data() -> None:
    """Data bars (rseq, len), the retransmission apart, the fault drop marked; the ACK line;
    the window line scaled by the peer's shift (2) once both SYNs offered scaling (RFC 7323
    2.3: never on the SYN itself); SACK blocks relative to our ISN (RFC 2018)."""
    s = tsg_series(trace())
    assert s["conn"] == CONN and s["direction"] == "out" and s["segments"] == 12
    assert s["sent"] == [(2.0, 1, 100), (2.0, 101, 100), (2.0, 201, 100), (2.0, 301, 100)]
    assert s["retransmits"] == [(3.3, 101, 100)]
    assert s["dropped"] == [(2.0, 101, 100)]
    assert s["acks"] == [(1.0, 1), (3.0, 101), (3.1, 101), (3.2, 101), (4.3, 401)]
    assert s["window"][0] == (1.0, 1 + 1000)          # the SYN-ACK's window is not scaled
    assert s["window"][1:] == [(3.0, 101 + 2000), (3.1, 2101), (3.2, 2101), (4.3, 401 + 2000)]
    assert s["sacks"] == [(3.1, 201, 301), (3.2, 201, 401)]


def test_series_of_the_peers_data_and_no_scaling_when_one_side_did_not_offer() -> None:
    ev = trace()
    ev[0] = dict(ev[0], opts={"mss": 1000})           # we did not offer window scaling
    ev.append(_seg(5000, "in", "PA", IRS + 1, ISN + 401, 50))
    ev.append(_seg(5100, "out", "A", ISN + 401, IRS + 51, win=300))
    s = tsg_series(ev, direction="in")
    assert s["sent"] == [(5.0, 1, 50)]
    assert s["acks"][-1] == (5.1, 51) and s["window"][-1] == (5.1, 51 + 300)
    with pytest.raises(ValueError):
        tsg_series(ev, direction="sideways")


def test_pick_connection_and_drawing(tmp_path) -> None:
    assert pick_connection(trace()) == CONN and pick_connection([]) is None
    for ext, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml")):
        p = tmp_path / f"g{ext}"
        s = time_sequence_graph(trace(), p)
        assert p.read_bytes().startswith(magic) and s["retransmits"]
    with pytest.raises(OSError):
        time_sequence_graph(trace(), tmp_path / "g.gif")


def test_real_run(tmp_path) -> None:
    """The memory run's dropped data segment comes back once, and the last ACK covers all
    the data."""
    events, _pcap = memory_run(tmp_path)
    s = time_sequence_graph(events, tmp_path / "tsg.png")
    assert len(s["retransmits"]) == 1 and len(s["dropped"]) == 1
    assert s["retransmits"][0][1:] == s["dropped"][0][1:]
    sent = sum(n for _t, _s, n in s["sent"])
    assert sent == 20480 and s["acks"][-1][1] >= 20480


def test_close_up_of_the_first_retransmission(tmp_path) -> None:
    """With a retransmission the graph gets a second panel around it (segments around the
    first retransmission, in time and sequence); without one, no close-up."""
    s = time_sequence_graph(trace(), tmp_path / "z.png")
    t0, t1, lo, hi = s["zoom"]
    assert t0 < 2.0 and t1 > 3.3 and lo < 1 and hi > 401
    no_rtx = [e for e in trace() if e["t"] != 3300]
    assert time_sequence_graph(no_rtx, tmp_path / "n.png")["zoom"] is None
    assert time_sequence_graph(trace(), tmp_path / "o.png", zoom=False)["zoom"] is None
