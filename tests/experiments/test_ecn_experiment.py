"""The `ecn` experiment against the kernel (root, a TUN lab namespace): rawtcp with
Config(ecn=1) and Linux with tcp_ecn=1 negotiate ECN (RFC 3168 6.1.1), nftables sets CE on
data both ways, both ends echo ECE until the other's CWR (6.1.3) and both cut their windows
(6.1.2); every echoed byte arrives."""

from __future__ import annotations

import pytest

from rawtcp.experiments import run_experiment
from rawtcp.experiments.ecn import NTH, PORT, mark_rules

pytestmark = pytest.mark.kernel


def test_ecn_marks_are_echoed_and_obeyed_both_ways(tmp_path) -> None:
    res = run_experiment("ecn", report_dir=str(tmp_path))
    assert res.passed, [(c.name, c.ok, c.evidence) for c in res.checks]
    m = res.metrics
    # the network marked both directions, and each receiver counted / echoed the marks
    assert m["ce_marked_kernel_out"] > 0 and m["ce_marked_rawtcp_out"] > 0
    assert m["delivered_ce"] >= m["ce_marked_kernel_out"]
    assert m["ece_acks_out"] > 0 and m["ece_runs"] > 0
    assert m["ece_in"] > 0 and m["kernel_delivered_ce"] > 0
    # each sender answered ECE with CWR, the kernel from its CWR state
    assert m["cwr_in"] > 0 and m["cwr_out"] > 0 and m["kernel_cwr_samples"] > 0
    assert m["kernel_tcpi_options"] & 8 and m["kernel_tcpi_options"] & 16
    assert m["kernel_ssthresh"] is not None
    assert res.files["pcap"] and res.files["trace"]


def test_mark_rules_match_ect0_data_in_both_hooks() -> None:
    body = mark_rules(PORT, NTH)
    assert "hook output" in body and "hook prerouting" in body
    assert body.count("ip ecn ect0") == 2 and body.count("ip ecn set ce") == 2
    assert f"tcp sport {PORT}" in body and f"tcp dport {PORT}" in body
    assert body.count(f"numgen inc mod {NTH} 0 counter") == 2
