"""Config: every field documented as data, validated against its range, and settable from
"KEY=VALUE" text (what `rawtcp --config` and `rawtcp config` are built on)."""

from __future__ import annotations

import dataclasses

import pytest

from rawtcp.core.config import MS, SEC, Config, FieldInfo, check_value, parse_value


def test_every_field_is_described():
    infos = Config.fields_info()
    assert [i.name for i in infos] == [f.name for f in dataclasses.fields(Config)]
    for i in infos:
        assert isinstance(i, FieldInfo)
        assert i.meaning and i.type in ("int", "bool", "int | None", "str"), i
        if i.type == "str":
            assert i.range is None and i.choices and i.default in i.choices, i
        elif i.type == "bool":
            assert i.range is None and isinstance(i.default, bool), i
        else:
            lo, hi = i.range
            assert lo <= hi and i.unit, i
            assert i.default is None or lo <= i.default <= hi, i


def test_defaults_stay_close_to_linux_and_validate():
    """The defaults are Linux's: MSS 1460 (RFC 9293 3.7.1 on Ethernet), rto_min 200 ms (below
    RFC 6298 2.4's SHOULD of 1 s, as Linux), rto_max 120 s (RFC 6298 2.5: at least 60 s),
    syn_retries 6 and retries2 15 (RFC 9293 3.8.3 R2; Linux's 6 SYN retries last ~127 s,
    less than the 3 minutes 3.8.3 asks for a SYN), TIME-WAIT 2 MSL = 60 s; offload off."""
    c = Config()
    c.validate()
    assert (c.mss, c.rto_min, c.rto_max, c.syn_retries, c.retries2) == \
        (1460, 200 * MS, 120 * SEC, 6, 15)
    assert c.time_wait is None and c.time_wait_duration == 60 * SEC
    assert c.offload is False                     # per-segment realism unless asked for
    info = {i.name: i for i in Config.fields_info()}
    assert info["offload"].default is False and "IFF_VNET_HDR" in info["offload"].meaning
    assert info["msl"].unit == "us" and info["rcvbuf"].unit == "bytes"


def test_with_overrides_parses_text_and_returns_a_new_config():
    base = Config()
    c = base.with_overrides({"msl": "1000000", "sack": "off", "nodelay": "1",
                             "time_wait": "none", "rto_min": 100 * MS, "timestamps": False})
    assert (c.msl, c.sack, c.nodelay, c.time_wait, c.rto_min, c.timestamps) == \
        (1 * SEC, False, True, None, 100 * MS, False)
    assert base == Config()                       # the original is untouched
    assert Config(msl=5 * SEC).with_overrides({"time_wait": "0"}).time_wait_duration == 0


@pytest.mark.parametrize("overrides, words", [
    ({"mss": 20}, ["mss=20", "88..65495", "bytes"]),
    ({"rto_min": -1}, ["rto_min=-1", "out of range"]),
    ({"delayed_ack": 600 * MS}, ["delayed_ack", "0..500000 us"]),
    ({"sack": "maybe"}, ["sack", "boolean"]),
    ({"msl": "30s"}, ["msl", "integer in us"]),
    ({"msl": None}, ["msl", "integer"]),
    ({"sack": 1}, ["sack", "boolean"]),
    ({"mss": True}, ["mss", "integer"]),
    ({"rto_min": 2 * SEC, "rto_max": 1 * SEC}, ["rto_min=2000000", "above rto_max=1000000"]),
    ({"ephemeral_low": 61000}, ["ephemeral_low=61000", "above ephemeral_high=60999"]),
])
def test_bad_values_are_one_line_value_errors(overrides, words):
    with pytest.raises(ValueError) as e:
        Config().with_overrides(overrides)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_an_unknown_key_names_the_valid_keys():
    with pytest.raises(ValueError) as e:
        Config().with_overrides({"msll": 1})
    msg = str(e.value)
    assert "'msll'" in msg and "\n" not in msg
    assert all(k in msg for k in Config.keys())


def test_validate_catches_a_constructed_bad_value():
    Config(time_wait=0, delayed_ack=0, orphan_retries=0).validate()   # ablations are valid
    with pytest.raises(ValueError, match="keepalive_probes=0"):
        Config(keepalive_probes=0).validate()


def test_parse_assignments():
    got = Config.parse_assignments(["msl=1000000", " sack = on ", "time_wait=NONE",
                                    "msl=2000000"])
    assert got == {"msl": 2 * SEC, "sack": True, "time_wait": None}   # the later one wins
    for bad, word in (("msl", "KEY=VALUE"), ("=5", "KEY=VALUE"), ("nope=1", "valid keys"),
                      ("mss=1460.5", "integer")):
        with pytest.raises(ValueError, match=word):
            Config.parse_assignments([bad])


def test_parse_value_booleans_and_none():
    for t in ("1", "true", "On", "yes"):
        assert parse_value("sack", t) is True
    for t in ("0", "false", "OFF", "no"):
        assert parse_value("sack", t) is False
    assert parse_value("time_wait", "none") is None
    with pytest.raises(ValueError, match="integer"):
        parse_value("msl", "none")                # msl cannot be None


@pytest.mark.parametrize("text", ["1_000", " 5", "5 ", "+5", "-5", "0x10", "1e3", "5.0",
                                  "\u0665", "\uff15", ""])
def test_an_integer_field_takes_plain_decimal_digits(text):
    """int() took '1_000', blanks, '+5' and other scripts' digits as a field's text (--config,
    a TOML string, an experiment's overrides); a '-' only where the range goes below 0."""
    for call in (lambda: parse_value("msl", text), lambda: check_value("msl", text),
                 lambda: Config.parse_assignments([f"msl={text}"]),
                 lambda: Config().with_overrides({"msl": text})):
        with pytest.raises(ValueError) as e:
            call()
        assert f"config msl={text!r}: expected an integer in us (digits 0-9)" in str(e.value)
    with pytest.raises(ValueError, match=r"time_wait=' 5'.*\(digits 0-9\) or \"none\""):
        parse_value("time_wait", " 5")


def test_integer_text_in_plain_digits_and_python_values_are_still_taken():
    assert parse_value("msl", "1000000") == SEC and parse_value("msl", "0") == 0
    assert parse_value("mss", "01460") == 1460
    assert Config.parse_assignments([" msl =1000", "sack = on "]) == {"msl": 1000,
                                                                     "sack": True}
    assert parse_value("time_wait", " None ") is None          # a word, not a number
    assert Config(msl=1_000).msl == 1000                        # Python code: a value
    assert Config().with_overrides({"msl": 1_000}).msl == 1000


def test_a_leading_minus_only_where_the_range_goes_below_zero(monkeypatch):
    """No field takes a negative yet: a made-up one from -10 to 10 shows the rule."""
    from rawtcp.core import config

    info = FieldInfo("offset", "int", 0, "us", (-10, 10), "a made-up field")
    monkeypatch.setattr(config, "_info", lambda key: info)
    assert parse_value("offset", "-5") == -5 and parse_value("offset", "5") == 5
    for text in ("- 5", "+5", "--5", " -5"):
        with pytest.raises(ValueError, match="digits 0-9, a leading '-' for a negative"):
            parse_value("offset", text)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"msl='-5': expected an integer in us \(digits 0-9\)"):
        parse_value("msl", "-5")


def test_check_value_checks_one_field_alone():
    assert check_value("rto_max", "100000") == 100 * MS     # below rto_min's default: fine alone
    with pytest.raises(ValueError, match="above rto_max"):
        Config().with_overrides({"rto_max": 100 * MS})       # ... but not in a whole Config
    with pytest.raises(ValueError, match="out of range"):
        check_value("syn_retries", 128)


def test_a_stack_refuses_a_config_out_of_range() -> None:
    """The Python API checks a Config as the command line checks --config (each value in
    its documented range, lower bounds under upper ones): a Stack built with a bad one is a
    one-line ValueError naming the field, before anything runs. (Config(sndbuf=0) used to
    give a stack whose sendall() hung until its timeout.)"""
    import math

    from rawtcp.core.stack import Stack

    for bad, field in ((dict(msl=-1), "msl"), (dict(msl=math.nan), "msl"),
                       (dict(mss=0), "mss"), (dict(sndbuf=0), "sndbuf"),
                       (dict(mss="536"), "mss"),
                       (dict(rto_min=10**7, rto_max=10**6), "rto_min")):
        with pytest.raises(ValueError, match=field) as e:
            Stack(Config(**bad))
        assert "\n" not in str(e.value)
    Stack(Config(msl=1, mss=536, sndbuf=4096))            # in range: fine


def test_a_running_stack_refuses_a_bad_config_before_it_opens_anything(tmp_path) -> None:
    """rawtcp.runtime.Stack checks its Config first: no trace or pcap file is created and no
    thread is left behind when the Config is out of range."""
    import threading

    from rawtcp.link.memory import MemoryLink
    from rawtcp.runtime import Stack

    a, _b = MemoryLink.pair("10.9.0.1", "10.9.0.2")
    threads = threading.active_count()
    with pytest.raises(ValueError, match="sndbuf"):
        Stack(a, Config(sndbuf=0), trace=tmp_path / "t.jsonl", pcap=tmp_path / "p.pcapng")
    assert not list(tmp_path.iterdir())
    assert threading.active_count() == threads
