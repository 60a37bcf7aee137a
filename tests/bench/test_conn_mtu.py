"""The connection rate's references run at the MTU rawtcp's side runs at (no root: the labs
are replaced by fakes that record what they were asked for)."""

from __future__ import annotations

import argparse

from rawtcp.bench import cli, configure_parser, run
from rawtcp.bench.common import Progress


class _FakeLab:
    made: list[dict] = []

    def __init__(self, **kw: object) -> None:
        _FakeLab.made.append(kw)

    def __enter__(self) -> _FakeLab:
        raise OSError(5, "fake lab: not built")

    def __exit__(self, *exc: object) -> None:
        pass


def test_kernel_pair_of_the_connection_rate_uses_the_first_mtu(monkeypatch) -> None:
    """--mtu 9000,1500 --tests conn: rawtcp's TUN device has MTU 9000 ("the connection rate
    uses the first"), so the kernel <-> kernel veth must too."""
    _FakeLab.made = []
    seen: dict[str, int] = {}

    def rawtcp_side(mtu: int, *a: object) -> run.Measure:
        seen["rawtcp"] = mtu
        return run.Measure(1.0, True, {"first_rate": 1.0, "last_rate": 1.0})

    monkeypatch.setattr(run, "conn_rawtcp", rawtcp_side)
    monkeypatch.setattr(run, "conn_bare", rawtcp_side)
    monkeypatch.setattr(run, "VethLab", _FakeLab)
    p = argparse.ArgumentParser()
    configure_parser(p)
    args = p.parse_args(["--tests", "conn", "--mtu", "9000,1500", "--conns", "5"])
    figures = cli.run_tests(args, Progress(enabled=False))
    assert seen["rawtcp"] == 9000
    assert [lab.get("mtu") for lab in _FakeLab.made] == [9000]
    assert figures[0].errors == ["reference: fake lab: not built"]


def test_the_connection_rate_client_has_ports_for_its_time_wait_connections() -> None:
    """Each of rawtcp's connections sits in TIME_WAIT for 2*MSL (the default, measured as
    it is). With the default 28,232 ephemeral ports a run above 470 conn/s failed after
    ~28,000 connections ("no free ephemeral port") though --conns goes to 1,000,000: the
    client's ports must hold a run at rawtcp's rate (~1,000 conn/s) for a whole TIME_WAIT."""
    cfg = run._conn_config(1500)
    ports = cfg.ephemeral_high - cfg.ephemeral_low + 1
    time_wait_s = cfg.time_wait_duration / 1e6
    assert time_wait_s == run.Config().time_wait_duration / 1e6 == 60   # the default TIME_WAIT
    assert ports / time_wait_s >= 1000, (ports, time_wait_s)
    assert cfg.ephemeral_low >= 1024 and cfg.mss == 1460
