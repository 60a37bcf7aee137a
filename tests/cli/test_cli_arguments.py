"""Bad arguments found by a black-box review of the command: each is one line on stderr and
exit 2, found before anything runs (no lab, no link, no script run); the good values next to
them are still taken. In process through rawtcp.cli.main (root, as the other CLI tests)."""

from __future__ import annotations

import argparse

import pytest

from rawtcp.cli import build_parser, main
from rawtcp.cli_support import host, port, seconds


def bad(capsys, *argv: str) -> str:
    """Run the command; it must end with exit 2, one line on stderr and nothing on stdout
    (so nothing ran: no experiment banner, no PASS/FAIL); returns the line. (Also used by
    test_cli_packetdrill_options.py.)"""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, (out, err)
    return err.strip()


# ------------------------------------------------------------------------------ hosts, ports
@pytest.mark.parametrize("name,says", [
    ("", "not an IP address or a host name: ''"),
    ("999.1.1.1", "not an IP address: '999.1.1.1'"),
    ("1.2.3", "not an IP address: '1.2.3'"),
    ("a b", "not an IP address or a host name: 'a b'"),
    ("a" * 300, "at most 253 characters, got 'aaaa"),
    ("a" * 64 + ".example", "not an IP address or a host name"),     # a label over 63
    ("a..b", "not an IP address or a host name"),
    ("a-.example", "not an IP address or a host name"),        # a label ends in -
    ("[::1]", "not an IP address or a host name"),
])
def test_a_host_that_could_never_resolve_is_exit_2_before_any_link(capsys, name, says):
    # --lab L does not exist: reaching the link would say so instead
    line = bad(capsys, "connect", name, "9", "--lab", "L")
    assert "argument host" in line and says in line and len(line) < 200
    line = bad(capsys, "peer-check", "--peer", name)
    assert "argument --peer" in line and says in line


@pytest.mark.parametrize("name", ["10.0.0.1", "fd00::1", "fe80::1%eth0", "localhost",
                                  "example.com.", "my-host_1.lab", "bücher.example",
                                  "a" * 63 + ".example"])
def test_addresses_and_names_are_still_hosts(name):
    assert host(name) == name


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662", "\uff18\uff10", " 80", "+80",
                                  "0x50", "-1"])
def test_a_port_is_plain_ascii_digits(capsys, text):
    line = bad(capsys, "connect", "10.0.0.1", text, "--lab", "L")
    assert "argument port" in line and repr(text) in line
    with pytest.raises(argparse.ArgumentTypeError):
        port(text)
    assert port("1000") == 1000 and port("65535") == 65535


# ------------------------------------------------------------------------------ timeouts
@pytest.mark.parametrize("cmd", [("connect", "10.0.0.1", "9"), ("listen", "9")])
@pytest.mark.parametrize("text", ["1_0", " 5", "5 ", "1e1", "inf", "nan", "+5", "-1", "0x10",
                                  "\u0665", "", "."])
def test_a_timeout_is_plain_decimal_seconds(capsys, cmd, text):
    """float() took '1_0', blanks, '1e1', 'inf' and 'nan' (and other scripts' digits): a
    timeout is digits with an optional '.' fraction, anything else one line naming the
    option and the text, before the link (the lab L does not exist)."""
    line = bad(capsys, *cmd, "--lab", "L", "--timeout", text)
    assert "argument --timeout: seconds must be a number (digits 0-9 and an optional '.' " \
           f"fraction), got {text!r}" in line, line
    with pytest.raises(argparse.ArgumentTypeError):
        seconds(text)


@pytest.mark.parametrize("cmd", [("connect", "10.0.0.1", "9"), ("listen", "9")])
@pytest.mark.parametrize("text", ["0", "0.0", "86400.5", "99999999999999999999"])
def test_a_timeout_keeps_its_range(capsys, cmd, text):
    line = bad(capsys, *cmd, "--lab", "L", "--timeout", text)
    assert f"argument --timeout: must be more than 0 and at most 86400 seconds, got {text} " \
           in line, line


def test_plain_timeouts_are_still_taken():
    assert (seconds("10"), seconds("2.5"), seconds("0.001"), seconds(".5"), seconds("5."),
            seconds("86400")) == (10.0, 2.5, 0.001, 0.5, 5.0, 86400.0)
    args = build_parser().parse_args(["connect", "10.0.0.1", "9", "--timeout", "2.5"])
    assert args.timeout == 2.5
    assert build_parser().parse_args(["listen", "9", "--timeout", "60"]).timeout == 60.0


# ------------------------------------------------------------------------------ output files
@pytest.mark.parametrize("cmd", [("connect", "10.0.0.1", "9"), ("listen", "9")])
@pytest.mark.parametrize("opt", ["--pcap", "--trace", "--packetdrill"])
def test_connect_and_listen_check_their_output_files_up_front(capsys, tmp_path, cmd, opt):
    """A missing directory or a directory given as the file: refused before the link (the
    lab L does not exist, so reaching it would be another message)."""
    line = bad(capsys, *cmd, "--lab", "L", opt, "/nonexistent/x.out")
    assert line == f"rawtcp: {opt} /nonexistent/x.out: cannot write there"
    line = bad(capsys, *cmd, "--lab", "L", opt, str(tmp_path))
    assert line == f"rawtcp: {opt} {tmp_path}: is a directory; give a file name"


def test_experiment_run_refuses_a_directory_as_its_packetdrill_file(capsys, tmp_path):
    line = bad(capsys, "experiment", "run", "handshake", "--packetdrill", str(tmp_path))
    assert line == f"rawtcp: --packetdrill {tmp_path}: is a directory; give a file name"


# ------------------------------------------------------------------------------ seeds, sweep
@pytest.mark.parametrize("seed", ["2147483648", "-1", "99999999999999999999"])
def test_experiment_run_seed_has_the_sweeps_range(capsys, seed):
    line = bad(capsys, "experiment", "run", "handshake", "--seed", seed)
    assert f"seed must be within 0..2147483647, got {seed}" in line


def test_experiment_run_seed_of_the_last_run_stays_in_range(capsys):
    line = bad(capsys, "experiment", "run", "handshake", "--seed", "2147483647", "--runs",
               "2")
    assert "--seed 2147483647 --runs 2" in line and "2147483647" in line
    args = build_parser().parse_args(["experiment", "run", "handshake", "--seed",
                                      "2147483647"])
    assert args.seed == 2147483647


@pytest.mark.parametrize("text", ["1_0", " 5", "5 ", "+5", "-1", "0x10", "1e1", "\u0665",
                                  ""])
def test_experiment_run_runs_is_plain_decimal_digits(capsys, text):
    """int() took '1_0', blanks, '+5' and other scripts' digits for --runs; refused when the
    arguments are parsed (before the experiment's name is looked up: 'nope' is none)."""
    line = bad(capsys, "experiment", "run", "nope", "--runs", text)
    assert f"argument --runs: runs must be a number (digits 0-9), got {text!r}" in line, line


@pytest.mark.parametrize("text", ["0", "1001", "99999999999999999999"])
def test_experiment_run_runs_has_a_range(capsys, text):
    line = bad(capsys, "experiment", "run", "nope", "--runs", text)
    assert f"argument --runs: runs must be within 1..1000, got {text} " in line, line


def test_experiment_run_runs_in_range_is_taken(capsys):
    for text, n in (("1", 1), ("1000", 1000), ("007", 7)):
        args = build_parser().parse_args(["experiment", "run", "handshake", "--runs", text])
        assert args.runs == n
    with pytest.raises(SystemExit):
        main(["experiment", "run", "--help"])
    assert "(1-1000, default 1)" in " ".join(capsys.readouterr().out.split())


def test_sweep_messages_show_integers_as_integers(capsys):
    line = bad(capsys, "experiment", "sweep", "handshake", "--seed", "2147483648")
    assert line.endswith("got 2147483648 (see rawtcp experiment sweep --help)"), line
    line = bad(capsys, "experiment", "sweep", "handshake", "--segments",
               "99999999999999999999")
    assert line == "rawtcp: segment must be within 1..100000, got 99999999999999999999"
    line = bad(capsys, "experiment", "sweep", "handshake", "--run-timeout",
               "100000000000000000000")
    assert "got 100000000000000000000 " in line
    line = bad(capsys, "experiment", "sweep", "handshake", "--jobs", "1_0")
    assert "jobs must be a number (digits 0-9), got '1_0'" in line
    line = bad(capsys, "experiment", "sweep", "handshake", "--segments", "1_0")
    assert "--segments takes numbers" in line


@pytest.mark.parametrize("argv, says", [
    (("--run-timeout", "1e2"), "argument --run-timeout: run-timeout must be a number (digits "
                               "0-9 and an optional '.' fraction), got '1e2'"),
    (("--run-timeout", " 60"), "got ' 60'"),
    (("--run-timeout", "6_0"), "got '6_0'"),
    (("--run-timeout", "+60"), "got '+60'"),
    (("--run-timeout", "inf"), "got 'inf'"),
    (("--also", "delay:1e2"), "rawtcp: --also delay:MS needs a number of ms (digits 0-9 and "
                              "an optional '.' fraction), got 'delay:1e2'"),
    (("--also", "delay: 5"), "got 'delay: 5'"),
    (("--also", "delay:1_0"), "got 'delay:1_0'"),
    (("--also", "delay:+5"), "got 'delay:+5'"),
    (("--segments", "1- 3"), "--segments takes numbers and ranges like 1-3,8, not '1- 3'"),
    (("--segments", "+5"), "not '+5'"),
    (("--segments", "1-+3"), "not '1-+3'"),
])
def test_sweep_numbers_are_plain_decimal(monkeypatch, capsys, argv, says):
    """float() took --run-timeout '1e2', ' 60' and '+60' and --also delay:'1e2' / ' 5' /
    '1_0'; int() took --segments '1- 3' and '+5': refused with one line, exit 2, and no
    sweep runs (it is replaced: reaching it would be exit 1 or a traceback)."""
    from rawtcp.experiments import sweep
    from rawtcp.host import privileges

    def no_sweep(*a, **kw):
        raise AssertionError("the sweep ran")

    monkeypatch.setattr(sweep, "sweep", no_sweep)
    monkeypatch.setattr(privileges, "check", lambda **kw: None)
    line = bad(capsys, "experiment", "sweep", "handshake", *argv)
    assert says in line, line


def test_sweep_numbers_in_plain_decimal_are_still_taken():
    from rawtcp.experiments.sweep import Fault, parse_indices

    args = build_parser().parse_args(["experiment", "sweep", "handshake", "--run-timeout",
                                      "7.5", "--also", "delay:2.5"])
    assert args.run_timeout == 7.5 and Fault.parse(args.also) == Fault("delay", 2.5)
    assert Fault.parse(" Delay:250") == Fault("delay", 250.0)     # the word: any case, blanks
    assert parse_indices("1-3, 8 ,2") == [1, 2, 3, 8]              # blanks around list items
