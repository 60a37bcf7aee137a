"""`rawtcp bench` is wired to rawtcp.bench (configure_parser, main): its options are the
command's, a bad argument is one line and exit 2, a failure one line and exit 1."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rawtcp import bench, commands
from rawtcp.cli import build_parser, main
from rawtcp.cli_support import CliError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("RAWTCP_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_bench_help_shows_the_bench_options():
    r = run("bench", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: rawtcp bench")
    for opt in ("--tests", "--size", "--json"):
        assert opt in r.stdout, opt
    assert "bench" in run("--help").stdout


def test_bench_bad_argument_is_one_line_and_exit_2():
    r = run("bench", "--size", "lots")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--size" in lines[0] and "Traceback" not in r.stderr


@pytest.mark.parametrize("exc, code", [(ValueError("--mtu must be 1280..65000"), 2),
                                       (OSError(1, "Operation not permitted"), 1),
                                       (ValueError("rawtcp bench: no such test 'x'"), 2)])
def test_bench_errors_from_main_become_one_line_cli_errors(monkeypatch, exc, code):
    def fail(args):
        raise exc

    monkeypatch.setattr(bench, "main", fail)
    args = build_parser().parse_args(["bench"])
    with pytest.raises(CliError) as e:
        commands.dispatch(args)
    assert e.value.code == code
    msg = str(e.value)
    assert msg.startswith("rawtcp bench: ") and msg.count("rawtcp bench:") == 1, msg
    assert "\n" not in msg


def test_bench_exit_status_is_what_main_returns(monkeypatch):
    seen = []
    monkeypatch.setattr(bench, "main", lambda args: seen.append(args) or 3)
    args = build_parser().parse_args(["bench", "--json"])
    assert commands.dispatch(args) == 3
    assert seen[0].json is True


@pytest.mark.parametrize("option, text", [
    ("--conns", "1_000"), ("--size", " 5"), ("--size", "5 "), ("--size", "\u0665"),
    ("--repeat", "+2"), ("--conns", "0x10"), ("--mtu", "1_500"), ("--mtu", "9000,1_500"),
    ("--timeout", "1_0"), ("--timeout", " 60"), ("--timeout", "1e2"), ("--timeout", "inf"),
    ("--timeout", "nan"), ("--timeout", "+60"),
])
def test_bench_numbers_are_plain_decimal_digits(monkeypatch, capsys, option, text):
    """int() and float() take '1_000', blanks, other scripts' digits, '1e2' and 'inf':
    `rawtcp bench` takes plain digits (a '.' fraction for --timeout), as `rawtcp connect`'s
    ports; anything else is one line naming the option and the text, exit 2, and nothing
    runs."""
    ran = []
    monkeypatch.setattr(bench, "main", lambda args: ran.append(args) or 0)
    code = main(["bench", option, text])
    out, err = capsys.readouterr()
    assert (code, ran, out) == (2, [], ""), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"argument {option}: " in err and repr(text.split(",")[-1]) in err, err


def test_bench_numbers_in_plain_digits_are_still_taken():
    args = build_parser().parse_args(["bench", "--conns", "1000", "--size", "5", "--mtu",
                                      "9000, 1500", "--timeout", "2.5", "--repeat", "3"])
    assert (args.conns, args.size, args.mtu, args.timeout, args.repeat) == \
        (1000, 5, [9000, 1500], 2.5, 3)
    assert build_parser().parse_args(["bench", "--timeout", "60"]).timeout == 60.0
