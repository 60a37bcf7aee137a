"""The `congestion` experiment against the kernel (root, lab namespaces), with a smaller
transfer: rawtcp CUBIC, rawtcp NewReno and Linux's CUBIC sender through 1 % nftables loss
(RFC 9438, RFC 5681, RFC 6582); every byte arrives, each window is cut by the losses, and the
report's cwnd plot holds the three curves."""

from __future__ import annotations

import pytest

from rawtcp.experiments import congestion as cong
from rawtcp.experiments import run_experiment
from rawtcp.report.ccplots import cwnd_series
from rawtcp.report.html_model import ladder_model


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(cong, "SIZE", 3_000_000)


def test_congestion_three_senders(tmp_path, small) -> None:
    res = run_experiment("congestion", report_dir=str(tmp_path))
    assert res.passed, [(c.name, c.ok, c.evidence) for c in res.checks]
    ran = res.metrics["algorithms_ran"]
    assert ran[-1] == "kernel cubic"
    assert ran[:-1] == [f"rawtcp {a}" for a in cong._algorithms()]
    flows = res.metrics["flows"]
    assert [f["bytes"] for f in flows] == [3_000_000] * len(flows)
    assert all(f["nft_drops"] > 0 and f["loss_reaction"] for f in flows)
    # the cwnd curves: one per rawtcp connection (cc events) and the kernel's sender
    conns = {f["conn"] for f in flows if f["sender"] == "rawtcp"}
    series = cwnd_series(res.events, align="flow")
    rawtcp_curves = [k for k, v in series.items() if v["who"] == "rawtcp"]
    kernel_curves = [k for k, v in series.items() if v["who"] == "kernel"]
    assert len(rawtcp_curves) == len(conns) and len(kernel_curves) == 1
    assert all(series[k]["t"][0] == 0.0 for k in series)
    assert res.files["cwnd"].endswith("congestion.cwnd.png")
    with open(res.files["cwnd"], "rb") as f:
        assert f.read(4) == b"\x89PNG"
    # the page and the captures of both rawtcp stacks
    assert res.files["report"].endswith("index.html")
    assert res.files["pcap"].endswith(".pcapng") and res.files["pcap.2"].endswith(".pcapng")
    page = open(res.files["report"], encoding="utf-8").read()
    assert "congestion window" in page and "kernel cubic" in page
    assert len(ladder_model(res.events)["segs"]) == sum(
        1 for e in res.events if e.get("ev") == "seg")


def test_algorithms_follow_the_config() -> None:
    """Both of rawtcp's algorithms run when Config.congestion offers them; a build without
    the field runs its one algorithm (the experiment says so)."""
    from rawtcp.core.config import Config

    algos = cong._algorithms()
    if "congestion" in Config.keys():
        assert algos[0] == "cubic" and set(algos) <= {"cubic", "reno"}
    else:
        assert algos == [""]
