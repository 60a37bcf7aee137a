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
