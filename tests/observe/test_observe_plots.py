"""Time/sequence and loss-sweep plots: files are real PNG/SVG and the series match the input."""

from __future__ import annotations

import struct

import pytest

from rawtcp.report.plots import sweep_plot, time_sequence

from .ladder_fixture import CONN, PEER, US, trace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ISS, IRS = 7000, 9000


def _seg(t_ms: float, d: str, flags: str, rseq: int, rack: int, n: int = 0) -> dict:
    t = int(5_000_000 + t_ms * 1000)
    if d == "out":
        return {"t": t, "ev": "seg", "conn": CONN, "dir": "out", "src": US, "dst": PEER,
                "sport": 40000, "dport": 80, "seq": ISS + rseq, "ack": IRS + rack,
                "flags": flags, "win": 100, "len": n}
    return {"t": t, "ev": "seg", "conn": CONN, "dir": "in", "src": PEER, "dst": US,
            "sport": 80, "dport": 40000, "seq": IRS + rseq, "ack": ISS + rack,
            "flags": flags, "win": 100, "len": n}


def transfer() -> list[dict]:
    """5 x 100 bytes; the third is dropped by a fault, then retransmitted at the RTO."""
    evs = [_seg(0, "out", "S", 0, 0), _seg(10, "in", "SA", 0, 1), _seg(10, "out", "A", 1, 1)]
    for i in range(5):
        evs.append(_seg(20 + i, "out", "PA", 1 + 100 * i, 1, 100))
        if i == 2:
            evs.append(dict(evs[-1], ev="fault", action="drop", rule="out len>0 nth=3"))
    evs += [_seg(30, "in", "A", 1, 101), _seg(31, "in", "A", 1, 201), _seg(32, "in", "A", 1, 201),
            _seg(33, "in", "A", 1, 201)]
    evs.append(_seg(250, "out", "PA", 201, 1, 100))  # the retransmission
    evs.append(_seg(260, "in", "A", 1, 501))
    return evs


@pytest.mark.parametrize("ext", ["png", "svg"])
def test_time_sequence_series_and_file(tmp_path, ext: str) -> None:
    p = tmp_path / f"ts.{ext}"
    s = time_sequence(transfer(), p)
    assert s["sent"] == [(20.0, 1, 100), (21.0, 101, 100), (22.0, 201, 100), (23.0, 301, 100),
                         (24.0, 401, 100)]
    assert s["retransmits"] == [(250.0, 201, 100)]
    assert s["drops"] == [(22.0, 201, 100)]
    # the SYN-ACK acknowledges our SYN (relative 1); the duplicate ACKs stay visible
    assert s["acks"] == [(10.0, 1), (30.0, 101), (31.0, 201), (32.0, 201), (33.0, 201),
                         (260.0, 501)]
    assert s["acks_dropped"] == []
    data = p.read_bytes()
    assert len(data) > 1000
    if ext == "png":
        assert data.startswith(PNG_MAGIC)
        w, h = struct.unpack(">II", data[16:24])
        assert w > 300 and h > 200
    else:
        text = data.decode()
        assert text.startswith("<?xml") and "<svg" in text and text.rstrip().endswith("</svg>")


def test_time_sequence_of_the_close_trace_has_one_data_segment(tmp_path) -> None:
    s = time_sequence(trace(), tmp_path / "c.svg")
    assert s["sent"] == [(2.0, 1, 100)] and s["retransmits"] == [] and s["drops"] == []
    assert [a for _t, a in s["acks"]] == [1, 101, 102, 102, 102]


def test_time_sequence_marks_dropped_incoming_acks(tmp_path) -> None:
    evs = transfer()
    ack = _seg(31, "in", "A", 1, 201)
    evs.append(dict(ack, ev="fault", action="drop"))
    s = time_sequence(evs, tmp_path / "x.png")
    assert s["acks_dropped"] == [(31.0, 201)]


def test_time_sequence_with_no_data_still_writes_a_file(tmp_path) -> None:
    p = tmp_path / "empty.png"
    s = time_sequence([], p)
    assert all(v == [] for v in s.values())
    assert p.read_bytes().startswith(PNG_MAGIC)


def test_sweep_series_are_mean_min_max_per_loss(tmp_path) -> None:
    results = [
        {"loss": 0.05, "seed": 1, "goodput_bps": 2e6, "retransmits": 30},
        {"loss": 0.0, "seed": 1, "goodput_bps": 10e6, "retransmits": 0},
        {"loss": 0.0, "seed": 2, "goodput_bps": 12e6, "retransmits": 0},
        {"loss": 0.01, "seed": 1, "goodput_bps": 6e6, "retransmits": 4},
        {"loss": 0.01, "seed": 2, "goodput_bps": 8e6, "retransmits": 8},
        {"loss": 0.05, "seed": 2, "goodput_bps": 1e6, "retransmits": 50},
        {"loss": 0.01, "seed": 3, "goodput_bps": 7e6, "retransmits": 6},
    ]
    for ext, magic in (("png", PNG_MAGIC), ("svg", b"<?xml")):
        p = tmp_path / f"sweep.{ext}"
        s = sweep_plot(results, p)
        assert p.read_bytes().startswith(magic) and p.stat().st_size > 1000
    assert s["loss"] == [0.0, 0.01, 0.05]
    assert s["runs"] == [2, 3, 2]
    assert s["goodput_mean"] == [11e6, 7e6, 1.5e6]
    assert s["goodput_min"] == [10e6, 6e6, 1e6]
    assert s["goodput_max"] == [12e6, 8e6, 2e6]
    assert s["retransmits_mean"] == [0, 6, 40]
    assert s["retransmits_min"] == [0, 4, 30] and s["retransmits_max"] == [0, 8, 50]


def test_svg_output_is_reproducible(tmp_path) -> None:
    r = [{"loss": 0.0, "seed": 0, "goodput_bps": 1000, "retransmits": 0}]
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    sweep_plot(r, a)
    sweep_plot(r, b)
    assert a.read_bytes() == b.read_bytes()


def test_bad_inputs_are_refused_with_einval(tmp_path) -> None:
    with pytest.raises(OSError) as ei:
        time_sequence([], tmp_path / "x.jpg")
    assert ei.value.errno == 22 and ".png or .svg" in str(ei.value)
    with pytest.raises(OSError, match="lacks goodput_bps"):
        sweep_plot([{"loss": 0.1, "retransmits": 1}], tmp_path / "x.png")
    with pytest.raises(OSError, match="at least one"):
        sweep_plot([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
