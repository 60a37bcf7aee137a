"""Every persona experiment runs against the Linux kernel in a private lab and passes: the
kernel did what its verdict says (the checks cite RFC 9293 3.6 / 3.8.6, RFC 1122 4.2.2.17 /
4.2.3.5, RFC 5961 3.2 / 7, RFC 4987 3.6; the experiments' docstrings name them)."""

from __future__ import annotations

import pytest

from rawtcp.experiments import load_all, run_experiment
from rawtcp.faults.personas import PERSONAS

pytestmark = pytest.mark.kernel

#: a number each run must report, and a bound that shows the kernel's behaviour
METRIC = {
    "never-fin": ("fins_stripped", 1),
    "no-final-ack": ("kernel_fins", 3),
    "zero-window-forever": ("probes", 4),
    "shrinking-window": ("withdrawn_windows", 3),
    "slow-reader": ("kernel_segments", 16_000 // 512),
    "ack-withholder": ("spurious_retransmissions", 1),
    "rst-storm": ("challenge_acks", 1),
    "half-open": ("retransmissions", 2),
    "syn-flooder": ("syn_cookies", 1),
}


def test_every_persona_has_an_experiment() -> None:
    reg = load_all()
    assert set(METRIC) == set(PERSONAS)
    assert {f"persona-{n}" for n in PERSONAS} <= set(reg)


@pytest.mark.parametrize("name", list(PERSONAS))
def test_persona_experiment_passes(name: str) -> None:
    res = run_experiment(f"persona-{name}", seed=1, ladder=False)
    explain = "\n".join(f"{'ok' if c.ok else 'FAIL'} {c.name}: {c.evidence}"
                        for c in res.checks)
    assert res.passed, f"{res.error}\n{explain}"
    assert len(res.checks) >= 3
    key, least = METRIC[name]
    assert res.metrics[key] >= least, res.metrics
