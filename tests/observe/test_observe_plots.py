"""Loss-sweep plots: files are real PNG/SVG and the series match the input (the
time-sequence graph: tests/report/test_tsg.py)."""

from __future__ import annotations

import pytest

from rawtcp.report.plots import sweep_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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
        sweep_plot([{"loss": 0.0, "goodput_bps": 1, "retransmits": 0}], tmp_path / "x.jpg")
    assert ei.value.errno == 22 and ".png or .svg" in str(ei.value)
    with pytest.raises(OSError, match="lacks goodput_bps"):
        sweep_plot([{"loss": 0.1, "retransmits": 1}], tmp_path / "x.png")
    with pytest.raises(OSError, match="at least one"):
        sweep_plot([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
