"""run_experiment(config_overrides=...): Config fields applied on top of the configuration of
every stack an experiment builds (the CLI's --config KEY=VALUE goes through it)."""

from __future__ import annotations

import contextlib

import pytest

from rawtcp.core.config import MS, SEC
from rawtcp.experiments.base import (
    REGISTRY,
    Experiment,
    Run,
    experiment,
    lab_config,
)
from rawtcp.experiments.runner import run_experiment
from rawtcp.link.memory import MemoryLink


class _MemoryLab:
    """A lab stand-in: open_link() gives one end of an in-process pair (no kernel)."""

    def __init__(self) -> None:
        self.links: list[MemoryLink] = []

    def open_link(self) -> MemoryLink:
        a, b = MemoryLink.pair("192.0.2.1", "192.0.2.2")
        self.links += [a, b]
        return a

    def close(self) -> None:
        for link in self.links:
            link.close()


@pytest.fixture
def probe():
    """A throwaway experiment that builds two stacks, one with its own config, and records
    the configuration each stack runs with."""
    name = "test-config-probe"

    @experiment(name, title="config probe", expect="records configs")
    def _probe(run: Run) -> None:
        """Records each stack's config (RFC 9293 3.8.1 rto)."""
        lab = _MemoryLab()
        try:
            plain = run.stack(lab, pcap=False)
            own = run.stack(lab, lab_config(time_wait=0, rto_initial=300 * MS), pcap=False)
            for key, st in (("plain", plain), ("own", own)):
                run.metrics[key] = {"rto_initial": st.config.rto_initial,
                                    "time_wait": st.config.time_wait,
                                    "sack": st.config.sack, "msl": st.config.msl}
            run.check("built", True)
        finally:
            run._teardown()
            lab.close()

    yield name
    REGISTRY.pop(name, None)


def test_overrides_apply_on_top_of_every_stack(probe):
    res = run_experiment(probe, ladder=False,
                         config_overrides={"rto_initial": 500 * MS, "sack": "off"})
    assert res.passed, res.error
    assert res.metrics["plain"] == {"rto_initial": 500 * MS, "time_wait": None, "sack": False,
                                    "msl": 1 * SEC}
    # the experiment's own fields stay unless overridden; the override wins over them
    assert res.metrics["own"] == {"rto_initial": 500 * MS, "time_wait": 0, "sack": False,
                                  "msl": 1 * SEC}


def test_no_overrides_leave_the_experiment_config(probe):
    res = run_experiment(probe, ladder=False)
    assert res.metrics["own"]["rto_initial"] == 300 * MS
    assert res.metrics["plain"]["sack"] is True


def test_unknown_field_names_the_valid_keys(probe):
    with pytest.raises(ValueError, match=r"unknown config key 'rto_inital'.*valid keys:.*rto_min"):
        run_experiment(probe, config_overrides={"rto_inital": 1})


def test_bad_value_is_a_value_error_before_the_run(probe):
    with pytest.raises(ValueError, match="sack"):
        run_experiment(probe, config_overrides={"sack": "maybe"})
    with pytest.raises(ValueError, match="mss"):
        run_experiment(probe, config_overrides={"mss": -5})


def test_run_config_without_overrides_is_the_given_config():
    run = Run(Experiment("dummy", "t", "e", lambda run: None))
    with contextlib.closing(run.tracer):
        cfg = lab_config(time_wait=0)
        assert run.config(cfg) is cfg
        assert run.config().msl == 1 * SEC
