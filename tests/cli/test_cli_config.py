"""`rawtcp config`, `--config KEY=VALUE` and `--config-file FILE` (issue 14, "Users feel this
too"): every Config field can be set from the command line, and a bad one is one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_cli_arguments import bad

from rawtcp.cli import build_parser
from rawtcp.core.config import Config

RAWTCP = [sys.executable, "-m", "rawtcp"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("RAWTCP_DEBUG", None)
    return subprocess.run(RAWTCP + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


def test_config_lists_every_field_with_default_unit_and_meaning():
    r = run("config")
    assert r.returncode == 0, r.stderr
    heads = [ln for ln in r.stdout.splitlines() if " = " in ln and not ln.startswith(" ")]
    assert [h.split(" = ")[0] for h in heads] == list(Config.keys())
    assert "msl = 30000000 us (30 s)  [0..3600000000]" in r.stdout
    assert "sack = on  [on/off]" in r.stdout
    for info in Config.fields_info():
        assert info.meaning in r.stdout, info.name


def test_config_json_and_the_values_overrides_give():
    r = run("config", "--json", "--config", "msl=1000000", "--config", "sack=off")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert list(rows) == list(Config.keys())
    assert rows["msl"]["default"] == 30_000_000 and rows["msl"]["value"] == 1_000_000
    assert rows["msl"]["unit"] == "us" and rows["msl"]["range"] == [0, 3_600_000_000]
    assert rows["sack"]["value"] is False and rows["mss"]["value"] == 1460
    assert "IFF_VNET_HDR" in rows["offload"]["meaning"]


@pytest.mark.parametrize("cmd", [
    ["config"],
    ["connect", "10.1.2.3", "7", "--link", "tun", "--addr", "10.9.9.2"],
    ["listen", "7", "--link", "tun", "--addr", "10.9.9.2"],
    ["experiment", "run", "handshake"],
])
@pytest.mark.parametrize("bad, words", [
    ("msll=1", ["'msll'", "valid keys", "time_wait", "offload"]),
    ("mss=20", ["mss=20", "88..65495"]),
    ("sack=maybe", ["sack", "boolean"]),
    ("msl", ["KEY=VALUE"]),
    ("rto_max=100000", ["above rto_max=100000"]),      # below rto_min's default
])
def test_a_bad_config_value_is_one_line_and_exit_2(cmd, bad, words):
    r = run(*cmd, "--config", bad)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = one_line(r.stderr)
    for w in words:
        assert w in line, line
    assert "===" not in r.stdout                   # refused before anything ran


def test_command_line_overrides_the_file_and_a_later_value_wins(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('msl = 1000000\nsack = false\ntime_wait = "none"\nrto_min = 100000\n')
    r = run("config", "--json", "--config-file", str(f), "--config", "msl=2000000",
            "--config", "rto_min=50000", "--config", "rto_min=60000")
    assert r.returncode == 0, r.stderr
    v = {row["name"]: row["value"] for row in json.loads(r.stdout)}
    assert (v["msl"], v["sack"], v["time_wait"], v["rto_min"]) == (2_000_000, False, None, 60_000)


def test_a_config_table_is_read_and_other_tables_ignored(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[config]\nnodelay = true\n\n[someone_else]\nnodelay = "whatever"\n')
    r = run("config", "--json", "--config-file", str(f))
    assert r.returncode == 0, r.stderr
    v = {row["name"]: row["value"] for row in json.loads(r.stdout)}
    assert v["nodelay"] is True


@pytest.mark.parametrize("cmd", [["config"], ["connect", "10.1.2.3", "7", "--lab", "L"]])
@pytest.mark.parametrize("value", ["1_000", " 5", "5 ", "+5", "-5", "0x10", "1e3", "\u0665",
                                   ""])
def test_an_integer_config_value_is_plain_decimal_digits(capsys, cmd, value):
    """int() took 'msl=1_000', 'msl= 5', '+5' and other scripts' digits: an integer field
    takes plain digits (no field's range goes below 0, so no '-' either), anything else is
    one line naming the field and the text, exit 2, before anything runs (the lab L does not
    exist). In process."""
    line = bad(capsys, *cmd, "--config", f"msl={value}")
    assert f"argument --config: config msl={value!r}: expected an integer in us " \
           "(digits 0-9)" in line, line
    line = bad(capsys, *cmd, "--config", f"time_wait={value}")
    assert f"config time_wait={value!r}: expected an integer in us (digits 0-9) or " \
           '"none"' in line, line


def test_plain_config_values_are_still_taken():
    args = build_parser().parse_args(["config", "--config", "msl=1000000", "--config",
                                      "sack= on ", "--config", "time_wait=NONE", "--config",
                                      " mss =1000"])
    assert args.config_items == [("msl", 1_000_000), ("sack", True), ("time_wait", None),
                                 ("mss", 1000)]

@pytest.mark.parametrize("text, words", [
    ("msl = 1.5\n", ["msl=1.5", "integer"]),
    ("msl = \n", ["not valid TOML"]),
    ("config = 5\n", ["'config' must be a table"]),
    ("nope = 1\n", ["'nope'", "valid keys"]),
    ("syn_retries = 1000\n", ["syn_retries=1000", "0..127"]),
    (b"\xff\xfe", ["not valid TOML"]),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, text, words):
    f = tmp_path / "c.toml"
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    r = run("connect", "10.1.2.3", "7", "--link", "tun", "--addr", "10.9.9.2",
            "--config-file", str(f))
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = one_line(r.stderr)
    assert str(f) in line
    for w in words:
        assert w in line, line


def test_a_missing_config_file_is_exit_2(tmp_path):
    r = run("config", "--config-file", str(tmp_path / "none.toml"))
    assert r.returncode == 2
    assert "No such file" in one_line(r.stderr)


def test_connect_uses_the_config_it_was_given(tmp_path):
    """The SYN rawtcp sends carries what --config-file and --config set (RFC 9293 3.7.1 MSS
    option, RFC 7323 2.2 window scale only when offered)."""
    from rawtcp.lab.peers import Server
    from rawtcp.lab.persistent import lab_record
    from rawtcp.trace import read_trace

    f = tmp_path / "c.toml"
    f.write_text("mss = 900\nwindow_scaling = false\n")
    up = run("lab", "up")
    assert up.returncode == 0, up.stderr
    rec = lab_record(up.stdout.split()[1]).to_dict()
    try:
        srv = Server(rec["kernel_netns"], "echo", port=7, bind="0.0.0.0").start()
        try:
            srv.wait_ready()
            trace = tmp_path / "c.jsonl"
            r = run("connect", "--lab", rec["name"], rec["kernel_addrs"][0], "7",
                    "--trace", str(trace), "--config-file", str(f), "--config", "mss=1000",
                    input="hello\n")
        finally:
            srv.stop()
    finally:
        run("lab", "down", rec["name"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"
    syn = [e for e in read_trace(trace) if e["ev"] == "seg" and e["dir"] == "out"
           and e["flags"] == "S"]
    assert len(syn) == 1
    assert syn[0]["opts"]["mss"] == 1000 and "wscale" not in syn[0]["opts"]


def test_experiment_run_applies_the_config_to_its_stacks(tmp_path):
    """`experiment run --config`: rawtcp's SYN in the handshake experiment carries the MSS
    given on the command line (RFC 9293 3.7.1) and no timestamps option (RFC 7323 3.2: only
    sent when offered)."""
    from rawtcp.trace import read_trace

    r = run("experiment", "run", "handshake", "--json", "--report", str(tmp_path),
            "--config", "mss=1000", "--config", "timestamps=off", timeout=120)
    res = json.loads(r.stdout)
    assert res["experiment"] == "handshake", r.stderr
    syn = [e for e in read_trace(res["files"]["trace"]) if e["ev"] == "seg"
           and e["dir"] == "out" and e["flags"] == "S"]
    assert syn and all(e["opts"]["mss"] == 1000 and "ts" not in e["opts"] for e in syn)
