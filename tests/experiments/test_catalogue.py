"""Every catalogue experiment runs for real, against the Linux kernel in a private lab, and
passes; the registry holds all of them."""

from __future__ import annotations

import os
import subprocess

import pytest

from rawtcp.experiments import load_all, run_experiment
from rawtcp.host import registry

pytestmark = pytest.mark.kernel

CATALOGUE = [
    "handshake", "lifecycle", "final-ack-drop", "final-ack-drop-passive",
    "time-wait-ablation", "simultaneous-close", "syn-drop", "refused", "linger-abort",
    "time-wait-assassination", "close-wait-leak", "backlog-overflow", "zero-window",
    "urgent-data", "loss-sweep", "kernel-time-wait", "network-loss", "congestion", "ecn",
] + [f"persona-{p}" for p in ("never-fin", "no-final-ack", "zero-window-forever",
                              "shrinking-window", "slow-reader", "ack-withholder", "rst-storm",
                              "half-open", "syn-flooder")]
# loss-sweep runs through the CLI (tests/cli: --json, --report, progress), network-loss below,
# congestion in test_congestion.py (smaller), ecn in test_ecn_experiment.py, the personas in
# test_persona_experiments.py
FAST = [n for n in CATALOGUE if n not in ("loss-sweep", "network-loss", "congestion", "ecn")
        and not n.startswith("persona-")]


def _ours() -> set[str]:
    """Kernel objects this test process registered (other tests may run at the same time, so
    the host-wide list is not ours to compare), and that still exist."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    live = {ln.split()[0] for ln in out.splitlines() if ln.strip()}
    return {f"{e.kind}:{e.name}" for e in registry.entries()
            if e.pid == os.getpid() and (e.kind != "netns" or e.name in live)}


def _explain(result) -> str:
    lines = [(f"{result.name}: {'PASS' if result.passed else 'FAIL'} in {result.duration_s:.2f} s"
             f" (error: {result.error})")]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.evidence}" for c in result.checks]
    lines.append(f"  metrics: {result.metrics}")
    if not result.passed and result.ladder:
        lines.append(result.ladder[-6000:])
    return "\n".join(lines)


def test_load_all_registers_the_whole_catalogue():
    reg = load_all()
    assert set(CATALOGUE) <= set(reg), sorted(set(CATALOGUE) - set(reg))
    for name in CATALOGUE:
        exp = reg[name]
        assert exp.title and exp.expect, name
        assert "RFC" in exp.doc or "rfc" in exp.doc.lower(), f"{name}: docstring cites no RFC"
    assert reg["loss-sweep"].slow and reg["kernel-time-wait"].slow


@pytest.mark.parametrize("name", FAST)
def test_experiment_passes_against_the_kernel(name):
    before = _ours()
    result = run_experiment(name)
    assert result.passed, _explain(result)
    assert result.checks and all(c.evidence for c in result.checks), _explain(result)
    assert _ours() <= before, f"{name} left kernel objects behind: {_ours() - before}"


def test_network_loss_counts_and_removes_its_nft_rules():
    """RFC 5681 3.2 / RFC 6298 5: the network (nftables, not rawtcp's fault engine) drops;
    both sides retransmit; the nft counters agree; the tables are gone afterwards."""
    result = run_experiment("network-loss")
    assert result.passed, _explain(result)
    m = result.metrics
    assert m["nft_dropped_in"] == m["flows"] == 2           # the n-th segment, once per flow
    assert m["rawtcp_retransmits"] >= m["nft_dropped_in"]
    # the kernel namespace's RetransSegs (exact; ss's total_retrans is sampled and can miss
    # the last retransmissions before the socket goes)
    assert m["kernel_retrans_segs"] >= m["nft_dropped_out"]
    assert not [e for e in result.events if e.get("ev") == "fault"]   # rawtcp dropped nothing
    removed = [c for c in result.checks if "removed afterwards" in c.name]
    assert len(removed) == 1 and removed[0].ok, removed     # checked before the netns went
