"""diffladder: pairing two runs' segments, the differences, states inferred from the wire
(RFC 9293 3.6 and 3.10.7), and the side-by-side drawing. Pure: events in, rows out."""

from __future__ import annotations

from rawtcp.report.diffladder import (
    SegRow,
    align,
    compare,
    infer_states,
    render_side_by_side,
    seg_rows,
    state_timeline,
)


def R(t: float, d: str, flags: str, rseq: int, rack: int | None = None, n: int = 0,
      **kw) -> SegRow:
    return SegRow(t=t, dir=d, flags=flags, rseq=rseq, rack=rack, len=n, **kw)


def active_close() -> list[SegRow]:
    """RFC 9293 3.6 case 1 from the side that closes first, 10 bytes each way."""
    return [R(0, "out", "S", 0), R(1, "in", "SA", 0, 1), R(1, "out", "A", 1, 1),
            R(2, "out", "PA", 1, 1, 10), R(3, "in", "PA", 1, 11, 10), R(3, "out", "A", 11, 11),
            R(4, "out", "FA", 11, 11), R(50, "in", "A", 11, 12), R(200, "in", "FA", 11, 12),
            R(200, "out", "A", 12, 12)]


def ev(t_us: int, d: str, flags: str, rseq: int, rack: int | None, n: int = 0,
       kind: str = "seg", **kw) -> dict:
    e = {"t": t_us, "ev": kind, "dir": d, "flags": flags, "seq": 1000 + rseq, "rseq": rseq,
         "ack": 5000 + (rack or 0), "rack": rack, "len": n, "src": "10.0.0.2", "sport": 4000,
         "dst": "10.0.0.1", "dport": 7}
    if d == "in":
        e.update(src="10.0.0.1", sport=7, dst="10.0.0.2", dport=4000, seq=5000 + rseq,
                 ack=1000 + (rack or 0))
    e.update(kw)
    return e


# ----------------------------------------------------------------------------- rows
def test_seg_rows_times_from_first_segment_and_drops_marked() -> None:
    events = [
        {"t": 900, "ev": "state", "new": "SYN_SENT", "conn": "c"},
        ev(1000, "out", "S", 0, None, state="SYN_SENT"),
        ev(2000, "in", "SA", 0, 1, state="SYN_SENT"),
        ev(3000, "out", "A", 1, 1, state="ESTABLISHED"),
        ev(3000, "out", "A", 1, 1, kind="fault", action="drop"),
        ev(9000, "in", "FA", 1, 1, kind="fault", action="drop"),   # died before the core
    ]
    rows = seg_rows(events)
    assert [(r.t, r.dir, r.flags, r.dropped) for r in rows] == [
        (0.0, "out", "S", False), (1.0, "in", "SA", False), (2.0, "out", "A", True),
        (8.0, "in", "FA", True)]
    assert rows[0].rack is None and rows[1].rack == 1
    assert rows[2].state == "ESTABLISHED"


def test_seg_rows_marks_retransmissions() -> None:
    events = [ev(0, "out", "S", 0, None), ev(10, "in", "SA", 0, 1),
              ev(20, "out", "FA", 1, 1), ev(220_000, "out", "FA", 1, 1)]
    assert [r.rtx for r in seg_rows(events)] == [False, False, False, True]


def test_state_timeline_folds_repeats_and_skips_listeners() -> None:
    events = [ev(1000, "out", "S", 0, None),
              {"t": 1000, "ev": "state", "new": "SYN_SENT", "conn": "a>b"},
              {"t": 500, "ev": "state", "new": "LISTEN", "conn": "0.0.0.0:7>*:*"},
              {"t": 3000, "ev": "state", "new": "ESTABLISHED", "conn": "a>b"},
              {"t": 4000, "ev": "state", "new": "ESTABLISHED", "conn": "a>b"}]
    assert state_timeline(events) == [(0.0, "SYN_SENT"), (2.0, "ESTABLISHED")]
    kern = [ev(0, "out", "S", 0, None), {"t": 5000, "ev": "kernel", "state": "CLOSE_WAIT"}]
    assert state_timeline(kern, "kernel") == [(5.0, "CLOSE_WAIT")]


# ----------------------------------------------------------------------------- inference
def test_infer_active_close_rfc9293_3_6_case_1() -> None:
    rows = active_close()
    tl = infer_states(rows)
    assert [s for _, s in tl] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                  "TIME_WAIT"]
    # an outgoing row carries the state it was sent in, an incoming one the state it met
    assert [r.state for r in rows] == [
        "SYN_SENT", "SYN_SENT", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
        "FIN_WAIT_1", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert tl[3] == (50, "FIN_WAIT_2") and tl[4] == (200, "TIME_WAIT")


def test_infer_passive_close_rfc9293_3_6() -> None:
    rows = [R(0, "out", "S", 0), R(1, "in", "SA", 0, 1), R(1, "out", "A", 1, 1),
            R(2, "in", "FA", 1, 1), R(5, "out", "FA", 1, 2), R(6, "in", "A", 2, 2)]
    assert [s for _, s in infer_states(rows)] == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT",
                                                  "LAST_ACK", "CLOSED"]


def test_infer_simultaneous_close_goes_through_closing_rfc9293_3_6_case_2() -> None:
    rows = [R(0, "out", "S", 0), R(1, "in", "SA", 0, 1), R(1, "out", "A", 1, 1),
            R(30, "out", "FA", 1, 1), R(300, "in", "FA", 1, 1), R(300, "out", "A", 2, 2),
            R(330, "in", "A", 2, 2)]
    assert [s for _, s in infer_states(rows)] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1",
                                                  "CLOSING", "TIME_WAIT"]


def test_infer_dropped_incoming_segment_changes_nothing() -> None:
    rows = active_close()
    rows[8].dropped = True                      # the peer's FIN never arrived
    tl = infer_states(rows)
    assert tl[-1][1] == "FIN_WAIT_2"


def test_infer_rst_answer_means_no_connection_rfc9293_3_10_7_1() -> None:
    """An orphaned socket gone before the peer's FIN arrives: the FIN found CLOSED and the
    RST is the answer (not TIME_WAIT, which the FIN alone would imply)."""
    rows = active_close()[:8] + [R(60, "in", "FA", 11, 12), R(60, "out", "R", 12)]
    tl = infer_states(rows)
    assert [s for _, s in tl][-2:] == ["FIN_WAIT_2", "CLOSED"]
    assert rows[8].state == "CLOSED" and "TIME_WAIT" not in [s for _, s in tl]


# ----------------------------------------------------------------------------- alignment
def test_identical_runs_pair_one_to_one_without_differences() -> None:
    a, b = active_close(), active_close()
    infer_states(a)
    infer_states(b)
    pairs, diffs = compare(a, b)
    assert all(x is not None and y is not None for x, y in pairs) and len(pairs) == len(a)
    assert diffs == []


def test_timing_window_and_psh_do_not_prevent_pairing() -> None:
    a = active_close()
    b = [SegRow(**{**r.to_dict(), "t": r.t * 3 + 1, "win": 7}) for r in active_close()]
    b[3].flags = "A"                           # no PSH on the data segment
    infer_states(a)
    infer_states(b)
    pairs, diffs = compare(a, b)
    assert len(pairs) == len(a)
    assert [(d.kind, d.row) for d in diffs] == [("psh", 3)]


def test_segment_sent_by_one_side_only() -> None:
    a = active_close()
    b = [r for i, r in enumerate(active_close()) if i != 5]   # no separate ACK of the data
    infer_states(a)
    infer_states(b)
    pairs, diffs = compare(a, b)
    assert [(d.kind, d.row) for d in diffs] == [("only-rawtcp", 5)]
    assert pairs[5][1] is None and pairs[5][0] is a[5]
    assert "only rawtcp sent A seq=11 ack=11" in diffs[0].what
    _, diffs = compare(b, a, names=("linux", "rawtcp"))
    assert [d.kind for d in diffs] == ["only-rawtcp"]


def test_different_state_and_one_sided_drop_at_a_paired_segment() -> None:
    a, b = active_close(), active_close()
    infer_states(a)
    infer_states(b)
    b[8].state = "CLOSED"
    b[9].dropped = True
    _, diffs = compare(a, b)
    assert [(d.kind, d.row) for d in diffs] == [("state", 8), ("drop", 9)]
    assert "rawtcp in FIN_WAIT_2, linux in CLOSED" in diffs[0].what
    assert "dropped on the linux side only" in diffs[1].what


def test_retransmission_timer_compared_with_tolerance_rfc6298() -> None:
    def run(rto: float) -> list[SegRow]:
        rows = active_close()
        rows.insert(7, R(4 + rto, "out", "FA", 11, 11, rtx=True))
        infer_states(rows)
        return rows

    _, diffs = compare(run(200), run(230), tol_ms=50)
    assert diffs == []
    _, diffs = compare(run(200), run(400), tol_ms=50)
    assert [(d.kind, d.row) for d in diffs] == [("timer", 7)]
    assert diffs[0].data == {"rawtcp_ms": 200.0, "linux_ms": 400.0}


def test_time_wait_length_is_a_timer_difference_not_a_missing_state() -> None:
    left = [(0.0, "SYN_SENT"), (1.0, "ESTABLISHED"), (4.0, "FIN_WAIT_1"),
            (200.0, "TIME_WAIT"), (2200.0, "CLOSED")]
    right = left[:-1]                       # still in TIME_WAIT when watching stopped
    a, b = active_close(), active_close()
    _, diffs = compare(a, b, left_states=left, right_states=right, left_end=2200,
                       right_end=1200)
    assert diffs == []                       # watched 1000 ms of it: not longer than 2000 ms
    _, diffs = compare(a, b, left_states=left, right_states=right + [(60200.0, "CLOSED")],
                       left_end=2200, right_end=1200)
    assert [d.kind for d in diffs] == ["timer"]
    assert diffs[0].data["rawtcp_ms"] == 2000.0 and diffs[0].data["linux_ms"] == 60000.0
    _, diffs = compare(a, b, left_states=left, right_states=right, left_end=2200,
                       right_end=5200)
    assert [d.kind for d in diffs] == ["timer"]
    assert "linux was still in TIME_WAIT" in diffs[0].what


def test_state_sequence_difference() -> None:
    left = [(0.0, "SYN_SENT"), (1.0, "ESTABLISHED"), (4.0, "FIN_WAIT_1"), (50.0, "FIN_WAIT_2"),
            (60.0, "TIME_WAIT"), (60.5, "CLOSED")]
    right = [(0.0, "SYN_SENT"), (1.0, "ESTABLISHED"), (4.0, "FIN_WAIT_1"), (50.0, "FIN_WAIT_2"),
             (60.0, "CLOSED")]
    _, diffs = compare([], [], left_states=left, right_states=right)
    assert [d.kind for d in diffs] == ["state-sequence"]
    assert diffs[0].what == "rawtcp went through TIME_WAIT, linux did not"


def test_align_keeps_order_and_puts_left_first_in_a_changed_block() -> None:
    a = [R(0, "out", "S", 0), R(1, "out", "A", 1, 1)]
    b = [R(0, "out", "S", 0), R(1, "out", "R", 1)]
    pairs = align(a, b)
    assert [(x and x.flags, y and y.flags) for x, y in pairs] == [("S", "S"), ("A", None),
                                                                  (None, "R")]


# ----------------------------------------------------------------------------- drawing
def test_side_by_side_marks_rows_and_lists_differences() -> None:
    a = active_close()
    b = [r for i, r in enumerate(active_close()) if i != 5]
    b[-1].dropped = True
    infer_states(a)
    infer_states(b)
    pairs, diffs = compare(a, b)
    text = render_side_by_side(pairs, diffs)
    lines = text.splitlines()
    row6 = next(ln for ln in lines if ln.startswith("  6 "))
    assert " <  " in row6 and row6.count("|") == 2     # only the left ladder has an arrow
    last = next(ln for ln in lines if ln.startswith(" 10 "))
    assert " x  " in last and "X" in last.split(" x  ")[1]
    assert "[only-rawtcp] row 6: only rawtcp sent A seq=11 ack=11 len=0" in text
    assert "[drop] row 10:" in text
    same = render_side_by_side(*compare(active_close(), active_close()))
    assert "no differences" in same


def test_a_segment_in_another_order_is_paired_and_called_order() -> None:
    """The same segments, but one side ACKed the data before the peer's FIN came and the other
    after: one ``order`` difference, not a segment missing on each side."""
    head = [R(0, "out", "S", 0), R(1, "in", "SA", 0, 1), R(1, "out", "A", 1, 1),
            R(3, "in", "PA", 1, 1, 10)]
    a = head + [R(3, "out", "A", 1, 11), R(4, "in", "FA", 11, 1)]
    b = [SegRow(**r.to_dict()) for r in head] + [R(4, "in", "FA", 11, 1),
                                                 R(5, "out", "A", 1, 11)]
    pairs, diffs = compare(a, b)
    assert len(pairs) == 6 and all(x is not None and y is not None for x, y in pairs)
    assert [d.kind for d in diffs] == ["order"]
    assert " o " in render_side_by_side(pairs, diffs).splitlines()[diffs[0].row + 1]


def test_retransmission_delays_lists_every_paired_retransmission() -> None:
    from rawtcp.report.diffladder import retransmission_delays

    def run(rto: float) -> list[SegRow]:
        rows = active_close()
        rows.insert(7, R(4 + rto, "out", "FA", 11, 11, rtx=True))
        return rows

    a, b = run(200), run(212)
    pairs, _ = compare(a, b)
    assert retransmission_delays(pairs, a, b) == [
        {"row": 7, "segment": "FA seq=11 ack=11 len=0", "left_ms": 200.0, "right_ms": 212.0}]
