"""The table of a run of `rawtcp bench --tests conn` says what was run and each error once
(no root: rawtcp.bench.main with the privilege check and the measurements replaced by
fakes; nothing is measured)."""

from __future__ import annotations

import argparse
import errno

import pytest

from rawtcp.bench import cli, configure_parser, run
from rawtcp.bench.common import ECHO_BYTES


def _measure(*a: object) -> run.Measure:
    return run.Measure(100.0, True, {"first_rate": 90.0, "last_rate": 110.0})


def _timeout(*a: object) -> run.Measure:
    raise OSError(errno.ETIMEDOUT, "no answer within 300 s")


def _table(monkeypatch, capsys, *argv: str, rawtcp=_measure) -> tuple[int, list[str]]:
    """main() on these arguments, the measurements faked: its status and its table."""
    monkeypatch.setattr(cli, "_check_privileges", lambda: None)
    for name in ("recv_rawtcp", "recv_bare", "recv_kernel", "conn_kernel", "conn_bare"):
        monkeypatch.setattr(run, name, _measure)
    monkeypatch.setattr(run, "conn_rawtcp", rawtcp)
    monkeypatch.setattr(run, "offload_available", lambda: False)
    p = argparse.ArgumentParser()
    configure_parser(p)
    status = cli.main(p.parse_args(list(argv)))
    out, err = capsys.readouterr()
    return status, out.splitlines()


@pytest.mark.parametrize("mtus", ["9000,1500", "9000"])
def test_a_connection_rate_run_names_only_what_it_ran(monkeypatch, capsys, mtus) -> None:
    """--tests conn: no bulk transfer ran, so the header names no MB per transfer, no
    offload and no MTU list; it names the connections and the MTU they ran at (the
    first)."""
    status, lines = _table(monkeypatch, capsys, "--tests", "conn", "--mtu", mtus,
                           "--conns", "5")
    assert status == 0, lines
    header = lines[0]
    assert header.startswith("rawtcp bench: 5 connections at TUN MTU 9000 ("), header
    for bulk_only in ("1500", "MB", "transfer", "offload"):
        assert bulk_only not in header, header


def test_a_bulk_run_with_the_connection_rate_still_names_both(monkeypatch, capsys) -> None:
    status, lines = _table(monkeypatch, capsys, "--tests", "recv,conn", "--mtu", "9000,1500",
                           "--size", "3", "--conns", "5", "--offload", "off")
    assert status == 0, lines
    assert lines[0].startswith("rawtcp bench: TUN MTU 9000, 1500, 3 MB per transfer, "
                               "5 connections at TUN MTU 9000 (MB = 10^6 bytes; "), lines[0]
    status, lines = _table(monkeypatch, capsys, "--tests", "recv", "--mtu", "1500",
                           "--size", "3", "--offload", "off")
    assert lines[0].startswith("rawtcp bench: TUN MTU 1500, 3 MB per transfer (MB = "), lines[0]


def test_a_connection_rate_error_is_printed_once(monkeypatch, capsys) -> None:
    """rawtcp's side timed out: the figure and its first and last 10 % rows all have no
    value and say "error" (exit status 1), but the error itself is one line, under the
    figure, not once per row."""
    status, lines = _table(monkeypatch, capsys, "--tests", "conn", "--conns", "5",
                           rawtcp=_timeout)
    assert status == 1
    rows = [ln for ln in lines if "conn/s" in ln]
    assert len(rows) == 3 and all(" error " in ln for ln in rows), lines
    errors = [ln for ln in lines if "no answer within 300 s" in ln]
    assert errors == [f"error: connect + {ECHO_BYTES} B echo + close, 5 in a row: rawtcp: "
                      "no answer within 300 s"], lines
