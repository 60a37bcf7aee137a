"""`rawtcp bench` and its bare Python endpoints, against the kernel in private labs (root)."""

from __future__ import annotations

import argparse
import errno
import hashlib
import importlib
import io
import json
import subprocess
import sys

import pytest

from rawtcp.bench import cli, configure_parser, main, run
from rawtcp.bench.common import CHUNK, MB, PERIOD, Progress, stream_chunks, stream_sha256
from rawtcp.bench.report import Figure, to_table

QUIET = Progress(enabled=False)
BULK = ("bulk_receive_1500", "bulk_send_1500", "bulk_receive_1500_offload",
        "bulk_send_1500_offload", "bulk_receive_65000", "bulk_send_65000")
FIGURES = (*BULK, "conn_rate", "conn_rate_first", "conn_rate_last")


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    configure_parser(p)
    return p.parse_args(list(argv))


def test_stream_is_periodic_and_its_digest_is_that_of_its_bytes() -> None:
    n = 3 * CHUNK + 12345
    data = b"".join(bytes(c) for c in stream_chunks(n, chunk=100_000))
    assert len(data) == n
    assert data[:PERIOD] == data[PERIOD:2 * PERIOD] != data[1:PERIOD + 1]
    assert stream_sha256(n) == hashlib.sha256(data).hexdigest()


def test_bare_receiver_takes_a_kernel_transfer_intact() -> None:
    """RFC 9293 3.5 (active open with MSS and window scale), 3.10.7.4 (in-order data,
    cumulative ACKs), 3.6 (passive close): every byte the kernel source sent arrives."""
    m = run.recv_bare(1500, 2 * MB, 30, QUIET)
    assert m.sha_ok is True
    assert m.details["bytes"] == 2 * MB
    assert m.value > 0
    for bad in ("dropped_ip_checksum", "dropped_tcp_checksum", "dropped_out_of_order"):
        assert m.details.get(bad, 0) == 0, m.details


def test_bare_sender_delivers_a_transfer_to_the_kernel_intact() -> None:
    """RFC 9293 3.8.6 (the peer's window bounds what is in flight), 3.6 (active close):
    the kernel sink reads exactly the stream and its sha256."""
    m = run.send_bare(1500, 2 * MB, stream_sha256(2 * MB), 30, QUIET)
    assert m.sha_ok is True
    assert m.details["bytes"] == 2 * MB
    assert m.value > 0
    assert m.details.get("dropped_tcp_checksum", 0) == 0, m.details


def test_bench_json_has_every_figure_positive_and_checked(capsys) -> None:
    status = main(parse("--size", "1", "--conns", "50", "--timeout", "60", "--json"))
    out = json.loads(capsys.readouterr().out)
    assert status == 0, out
    assert out["ok"] is True
    figs = {f["key"]: f for f in out["figures"]}
    assert tuple(figs) == FIGURES
    for f in figs.values():
        assert f["rawtcp"] > 0 and f["reference"] > 0, f
        assert f["ratio"] == pytest.approx(f["rawtcp"] / f["reference"], rel=0.01)
        assert f["rawtcp_check_ok"] is True and f["reference_check_ok"] is True, f
        assert f["errors"] == []
        # the other kind of reference, measured in the same run: the kernel for the bulk
        # figures, a bare Python client for the connection rate
        assert f["second_reference"] > 0, f
        assert f["second_ratio"] == pytest.approx(f["rawtcp"] / f["second_reference"],
                                                  rel=0.01)
    for key in BULK:
        assert figs[key]["second_reference_is"].startswith("kernel <-> kernel")
        assert figs[key]["second_check_ok"] is True      # sha256 of what the kernel got
        assert figs[key]["details"]["rawtcp"]["bytes"] == MB
        assert figs[key]["details"]["reference"]["bytes"] == MB
        # the offload rows ran over an offloading link, the others did not
        assert figs[key]["details"]["rawtcp"]["offload"] is key.endswith("_offload")
    assert figs["conn_rate"]["second_reference_is"].startswith("bare Python client")
    assert figs["conn_rate"]["details"]["rawtcp"]["conns"] == 50
    assert figs["conn_rate"]["details"]["reference"]["conns"] == 50


def test_bare_client_makes_connections_with_the_segments_of_rawtcps() -> None:
    """The connection-rate reference (bare Python, common.conn_loop over TUN) does what
    rawtcp's client does, per RFC 9293 3.5 and 3.6: SYN, ACK, request, ACK of the echo, FIN,
    ACK of the peer's FIN = 6 segments out; SYN-ACK, ACK, echo, FIN = 4 in."""
    m = run.conn_bare(1500, 30, 30, QUIET)
    assert m.details["conns"] == 30 and m.value > 0
    assert m.details["segments_out"] == 6 * 30, m.details
    assert m.details["segments_in"] == 4 * 30, m.details
    assert m.details.get("retransmits", 0) == 0


def test_kernel_bulk_references_move_the_whole_stream() -> None:
    sha = stream_sha256(2 * MB)
    for m in (run.recv_kernel(1500, 2 * MB, 30, QUIET),
              run.send_kernel(1500, 2 * MB, sha, 30, QUIET)):
        assert m.sha_ok is True and m.details["bytes"] == 2 * MB and m.value > 0


def test_repeat_alternates_the_sides_and_takes_the_median_of_the_rounds(monkeypatch,
                                                                       capsys) -> None:
    """--repeat 3: rawtcp, reference, rawtcp, reference, ... (a drift of the machine's speed
    hits both sides of a round); the ratio is the median of the three rounds' ratios and
    each side's value its median run; JSON lists the rounds, the table prints them."""
    order: list[str] = []
    real_recv, real_bare = run.recv_rawtcp, run.recv_bare

    def recv_rawtcp(*a, **k):
        order.append("rawtcp")
        return real_recv(*a, **k)

    def recv_bare(*a, **k):
        order.append("reference")
        return real_bare(*a, **k)

    real_kernel = run.recv_kernel

    def recv_kernel(*a, **k):
        order.append("second")
        return real_kernel(*a, **k)

    monkeypatch.setattr(run, "recv_rawtcp", recv_rawtcp)
    monkeypatch.setattr(run, "recv_bare", recv_bare)
    monkeypatch.setattr(run, "recv_kernel", recv_kernel)
    status = main(parse("--tests", "recv", "--mtu", "1500", "--offload", "off", "--size", "1",
                        "--timeout", "60", "--repeat", "3", "--json"))
    out = json.loads(capsys.readouterr().out)
    assert status == 0, out
    assert order == ["rawtcp", "reference", "second"] * 3
    [f] = out["figures"]
    runs = f["runs"]
    assert len(runs) == 3 and all(r["rawtcp"] > 0 and r["reference"] > 0 for r in runs)
    ratios = sorted(r["rawtcp"] / r["reference"] for r in runs)
    assert f["ratio"] == pytest.approx(ratios[1], rel=0.01)
    assert f["rawtcp"] == sorted(r["rawtcp"] for r in runs)[1]
    assert f["reference"] == sorted(r["reference"] for r in runs)[1]
    seconds = f["second_runs"]
    assert f["second_reference"] == sorted(seconds)[1]
    assert f["second_ratio"] == pytest.approx(
        sorted(r["rawtcp"] / k for r, k in zip(runs, seconds))[1], rel=0.01)
    assert out["settings"]["repeat"] == 3
    text = to_table([Figure("bulk_receive", "bulk receive", "MB/s", "bare", "sha256",
                            runs=[(run.Measure(30.0, True), run.Measure(60.0, True)),
                                  (run.Measure(40.0, True), run.Measure(50.0, True))])],
                    {"mtu": 1500, "size_mb": 1, "conns": 1, "repeat": 2})
    assert "bulk receive: 0.50 0.80" in text


def test_a_digest_mismatch_is_reported_and_exits_1(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "stream_sha256", lambda n: "0" * 64)
    status = main(parse("--tests", "send", "--mtu", "1500", "--offload", "off", "--size", "1",
                        "--timeout", "60"))
    out = capsys.readouterr().out
    assert status == 1
    assert "sha256 MISMATCH (rawtcp, reference, second reference)" in out


def test_table_lists_figures_with_ratio_and_errors() -> None:
    ok = Figure("bulk_receive", "bulk receive", "MB/s", "bare", "sha256",
                run.Measure(30.0, True), run.Measure(120.0, True))
    failed = Figure("bulk_send", "bulk send", "MB/s", "bare", "sha256",
                    reference=run.Measure(100.0, True), errors=["rawtcp: timed out"])
    text = to_table([ok, failed], {"mtu": 1500, "size_mb": 1, "conns": 1})
    assert "0.25" in text and "30.0 MB/s" in text and "120 MB/s" in text
    assert "error: bulk send: rawtcp: timed out" in text
    assert ok.ok and not failed.ok


@pytest.mark.parametrize("argv", [["--size", "0"], ["--size", "10001"], ["--conns", "x"],
                                  ["--tests", "recv,nope"], ["--timeout", "inf"],
                                  ["--mtu", "100"], ["--mtu", "1500,70000"], ["--mtu", ","],
                                  ["--offload", "maybe"], ["--repeat", "0"], ["--repeat", "21"],
                                  ["--repeat", "1.5"]])
def test_a_bad_argument_is_one_line_and_exit_2(argv: list[str]) -> None:
    p = subprocess.run([sys.executable, "-m", "rawtcp.bench", *argv], capture_output=True,
                       text=True, timeout=60, check=False)
    assert p.returncode == 2
    assert p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_main_checks_a_namespace_it_did_not_parse() -> None:
    args = parse()
    args.conns = 0
    with pytest.raises(ValueError, match="--conns must be between 1 and 1e"):
        main(args)


def test_offload_without_support_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(run, "offload_available", lambda: False)
    with pytest.raises(ValueError, match="not available yet"):
        main(parse("--offload"))


def test_without_privileges_the_message_names_what_is_needed(monkeypatch) -> None:
    try:
        priv = importlib.import_module("rawtcp.host.privileges")
    except ImportError:
        priv = importlib.import_module("rawtcp.privileges")
    monkeypatch.setattr(priv, "effective_caps", lambda *a: 0)
    with pytest.raises(PermissionError) as e:
        main(parse("--size", "1"))
    assert e.value.errno == errno.EPERM
    assert "CAP_NET_ADMIN" in str(e.value) and "root" in str(e.value)


def test_progress_is_shown_only_on_a_terminal() -> None:
    buf = io.StringIO()
    Progress(stream=buf).show("x", force=True)      # StringIO is not a terminal
    assert buf.getvalue() == ""
    p = Progress(enabled=True, stream=buf)
    p.show("bulk receive: 1 MB", force=True)
    p.done()
    assert "\rbulk receive: 1 MB" in buf.getvalue()


def test_progress_callbacks_format_a_line_only_when_one_is_shown() -> None:
    """A per-connection callback must not build a status line that nobody sees: off a
    terminal never, on one at most every 0.1 s (the loop it reports on is being timed)."""
    from rawtcp.bench.run import _conn_progress

    class Counting(Progress):
        def __init__(self, enabled: bool) -> None:
            super().__init__(enabled=enabled, stream=io.StringIO())
            self.shown = 0

        def show(self, text: str, force: bool = False) -> None:
            self.shown += 1
            super().show(text, force)

    quiet, tty = Counting(False), Counting(True)
    assert not quiet.due() and tty.due()
    for p in (quiet, tty):
        cb = _conn_progress(p, "connection rate", 1000)
        for i in range(1000):
            cb(i + 1)
    assert quiet.shown == 0
    assert tty.shown == 1 and not tty.due()          # 1,000 steps well inside 0.1 s
    assert "connection rate: 1 / 1,000 connections" in tty.stream.getvalue()


def test_bulk_configurations_cover_both_mtus_with_and_without_offload() -> None:
    """The issue's matrix by default: MTU 1500 and 65000, offload where it adds something
    (TUN MTUs up to OFFLOAD_MTU_MAX); --offload on/off select one side."""
    assert cli.bulk_configs([1500, 65000], "both") == [(1500, False), (1500, True),
                                                       (65000, False)]
    assert cli.bulk_configs([1500, 65000], "on") == [(1500, True), (65000, True)]
    assert cli.bulk_configs([9000], "off") == [(9000, False)]
    args = parse("--mtu", "9000,1500,9000")
    assert args.mtu == [9000, 1500] and args.offload == "both"
    assert parse("--offload").offload == "on"
