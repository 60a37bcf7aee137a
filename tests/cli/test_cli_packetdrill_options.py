"""`rawtcp packetdrill` options found wanting by a black-box review: an address that is not
one, or not of --ip_version's family, is a usage error (exit 2, one line) rather than a FAIL
of every script; --tolerance_usecs, --tcp_ts_tick_usecs and -j have upper bounds, said in
the help."""

from __future__ import annotations

import os

import pytest
from test_cli_arguments import bad

from rawtcp.cli import build_parser, main

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "packetdrill", "scripts",
                      "close-active-client.pkt")


@pytest.mark.parametrize("argv,says", [
    (("--local_ip", "abc"), "argument --local_ip: not an IP address: 'abc'"),
    (("--remote_ip", "10.0.0.300"), "argument --remote_ip: not an IP address"),
    (("--local_ip", "fd00::1"), "--local_ip fd00::1 is not an IPv4 address"),
    (("--ip_version", "ipv6", "--remote_ip", "192.0.2.9"),
     "--remote_ip 192.0.2.9 is not an IPv6 address"),
    (("--tolerance_usecs", "100000000000000000000000"), "must be 0-10000000, got 1000"),
    (("--tolerance_usecs", "10000001"), "must be 0-10000000"),
    (("--tcp_ts_tick_usecs", "1000001"), "must be 0-1000000"),
    (("-j", "1000000"), "must be 1-64, got 1000000"),
    (("--jobs", "65"), "must be 1-64"),
    (("--mtu", "1_500"), "not an integer: '1_500'"),
    (("--mtu", " 1500"), "not an integer: ' 1500' (decimal digits or 0x hex)"),
    (("--mtu", "1500 "), "not an integer: '1500 '"),
    (("--bind_port", "+80"), "not an integer: '+80'"),
    (("--connect_port", "0o17"), "not an integer: '0o17'"),
    (("--tolerance_usecs", "\u0665"), "not an integer: '\u0665'"),
    (("--tolerance_usecs", " 0x10"), "not an integer: ' 0x10'"),
])
def test_packetdrill_bad_options_are_usage_errors_not_script_failures(capsys, argv, says):
    line = bad(capsys, "packetdrill", SCRIPT, *argv)
    assert line.startswith("rawtcp packetdrill") and says in line


def test_packetdrill_ranges_take_their_ends_and_say_them_in_help(capsys):
    args = build_parser().parse_args(["packetdrill", SCRIPT, "--tolerance_usecs", "10000000",
                                      "--tcp_ts_tick_usecs", "1000000", "-j", "64",
                                      "--local_ip", "10.0.0.1"])
    assert (args.tolerance_usecs, args.tcp_ts_tick_usecs, args.jobs) == (10**7, 10**6, 64)
    with pytest.raises(SystemExit):
        main(["packetdrill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0-10000000 (10 s" in text and "0-1000000 (1 s" in text and "1-64" in text


def test_packetdrill_integers_in_decimal_or_hex_are_still_taken():
    args = build_parser().parse_args(["packetdrill", SCRIPT, "--mtu", "0x5dc",
                                      "--tolerance_usecs", "0X10", "--bind_port", "8080",
                                      "--connect_port", "0050"])
    assert (args.mtu, args.tolerance_usecs, args.bind_port, args.connect_port) == \
        (1500, 16, 8080, 50)
