"""The packetdrill language parser: every construct the runner needs, bad scripts, round trip."""

from __future__ import annotations

import random

import pytest

from rawtcp.packetdrill import parse_file, parse_script
from rawtcp.packetdrill.script import (
    FLAG_CHARS,
    Array,
    BitOr,
    Call,
    Code,
    Command,
    Option,
    Packet,
    ScriptError,
    Str,
    Struct,
    Symbol,
    Syscall,
    Time,
    format_expr,
    format_packet,
    format_time,
)


def one(text: str):
    """The single event of a one-event script."""
    events = parse_script(text).events
    assert len(events) == 1, events
    return events[0]


def error_of(text: str, path: str = "bad.pkt") -> ScriptError:
    with pytest.raises(ScriptError) as info:
        parse_script(text, path)
    return info.value


# --- whole scripts --------------------------------------------------------------------------

def test_header_options_untimed_command_and_comments() -> None:
    text = """// a test
/* a block comment
   over two lines */
--tolerance_usecs=10000
--ip_version=ipv6 --mtu=1520   // two on a line
--local_ip=fd3d:0a0b:17d6::1
--verbose

`../common/defaults.sh`

    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3   // trailing comment
   +0 close(3) = 0// no space before the comment
"""
    s = parse_script(text, "t.pkt")
    assert s.path == "t.pkt"
    assert s.options == {"tolerance_usecs": "10000", "ip_version": "ipv6", "mtu": "1520",
                         "local_ip": "fd3d:0a0b:17d6::1", "verbose": ""}
    cmd, sock, close = s.events
    assert cmd == Command(9, None, "../common/defaults.sh")
    assert sock == Syscall(11, Time("absolute", 0), "socket",
                           (..., Symbol("SOCK_STREAM"), Symbol("IPPROTO_TCP")), 3)
    assert close == Syscall(12, Time("relative", 0), "close", (3,), 0)


def test_line_numbers_after_block_comment_and_multiline_event() -> None:
    text = ("/*\n\n*/\n0 setsockopt(3,\n  SOL_SOCKET, SO_REUSEADDR,\n  [1], 4) = 0\n"
            "+0 close(3) = 0\n")
    a, b = parse_script(text).events
    assert (a.line, b.line) == (4, 7)
    assert a.args == (3, Symbol("SOL_SOCKET"), Symbol("SO_REUSEADDR"), Array((1,)), 4)


def test_parse_file(tmp_path) -> None:
    f = tmp_path / "x.pkt"
    f.write_text("0 < S 0:0(0) win 100\n")
    s = parse_file(f)
    assert s.path == str(f)
    assert s.events[0].win == 100


def test_empty_script() -> None:
    s = parse_script("// nothing\n\n")
    assert s.events == () and s.options == {}


# --- times ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "time"), [
    ("0", Time("absolute", 0)),
    ("+0", Time("relative", 0)),
    ("+.01", Time("relative", 10_000)),
    ("0.100", Time("absolute", 100_000)),
    ("1.5", Time("absolute", 1_500_000)),
    ("+2", Time("relative", 2_000_000)),
    ("0.000001", Time("absolute", 1)),
    ("*", Time("any", 0)),
    ("0.1~0.2", Time("absolute", 100_000, 200_000)),
    ("+.1~+.110", Time("relative", 100_000, 110_000)),
])
def test_times(text: str, time: Time) -> None:
    ev = one(f"{text} > . 1:1(0) ack 1\n")
    assert ev.time == time
    assert parse_script(f"{format_time(time)} > . 1:1(0) ack 1").events[0].time == time


def test_blocking_span_is_kept_as_written() -> None:
    # "+.01...0.011": starts 10 ms after the previous event, returns 11 ms after it.
    ev = one("+.01...0.011 connect(3, ..., ...) = 0\n")
    assert ev.time == Time("relative", 10_000)
    assert ev.end_time == 11_000
    ev = one("0.1...0.3 read(4, ..., 1000) = 1000")
    assert (ev.time, ev.end_time) == (Time("absolute", 100_000), 300_000)
    ev = one("+0...0.000 read(4, ..., 1000) = 1000")
    assert (ev.time, ev.end_time) == (Time("relative", 0), 0)


def test_leading_relative_time_counts_from_script_start() -> None:
    # packetdrill accepts a relative time on the first event: relative to time 0.
    ev = one("+0.5 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3")
    assert ev.time == Time("relative", 500_000)


# --- packets --------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", ["S", "S.", ".", "P.", "F.", "R", "R.", "FP.", "SEW", "SR",
                                   "F", "U.", "PW."])
def test_flags(flags: str) -> None:
    assert one(f"+0 < {flags} 0:0(0) win 1").flags == flags


def test_no_flags_dash() -> None:
    assert one("+0 < - 0:0(0) win 100").flags == ""


def test_packet_fields() -> None:
    p = one("  +.1 < P. 1:2001(2000) ack 1 win 257 urg 5 <nop,nop,TS val 100 ecr 0>\n")
    assert p == Packet(1, Time("relative", 100_000), "<", "P.", 1, 2001, 2000, 1, 257,
                       (Option("nop"), Option("nop"), Option("TS", (100, 0))), 5)


def test_outbound_without_ack_win_or_options() -> None:
    p = one("+0 > F. 1001:1001(0)")
    assert (p.direction, p.ack, p.win, p.options, p.urg) == (">", None, None, (), None)


def test_every_option_kind() -> None:
    p = one("0 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7,sackOK,TS val 1 ecr 2,"
            "sack 1:2 3:4,eol>")
    assert p.options == (Option("mss", (1000,)), Option("nop"), Option("wscale", (7,)),
                         Option("sackOK"), Option("TS", (1, 2)),
                         Option("sack", blocks=((1, 2), (3, 4))), Option("eol"))


def test_any_options_and_loose_spacing() -> None:
    p = one("+0 >  S 0:0(0) <...>")
    assert p.options is None
    p = one("+0 < S  0:0(0)       win 65535 <mss 1460 ,sackOK,eol,eol>")
    assert p.options == (Option("mss", (1460,)), Option("sackOK"), Option("eol"), Option("eol"))


def test_ecn_marker_and_hex_numbers() -> None:
    p = one("+0 < [ce] . 0x10:0x20(16) ack 0x1 win 0xffff")
    assert (p.ecn, p.seq_start, p.seq_end, p.ack, p.win) == ("ce", 16, 32, 1, 65535)


def test_sequence_range_at_the_top() -> None:
    p = one("+0 < . 4294966295:4294967295(1000) ack 1 win 1")
    assert (p.seq_start, p.seq_end, p.length) == (4294966295, 4294967295, 1000)


# --- system calls ---------------------------------------------------------------------------

def test_errno_result_and_text() -> None:
    ev = one("+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)")
    assert (ev.result, ev.errno_name, ev.errno_text) == (-1, "EINPROGRESS",
                                                         "Operation now in progress")


def test_annotation_after_result_is_text() -> None:
    ev = one("+0 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)")
    assert (ev.args, ev.result, ev.errno_name, ev.errno_text) == (
        (3, Symbol("F_GETFL")), 2, None, "flags O_RDWR")


def test_bit_or_with_and_without_spaces() -> None:
    want = BitOr((Symbol("O_RDWR"), Symbol("O_NONBLOCK")))
    assert one("+0 fcntl(3, F_SETFL, O_RDWR | O_NONBLOCK) = 0").args[2] == want
    assert one("+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0").args[2] == want


def test_arrays_structs_strings_calls() -> None:
    ev = one('+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0')
    assert ev.args[3:] == (Array((Symbol("ECONNRESET"),)), Array((4,)))
    ev = one("+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0")
    assert ev.args[3] == Struct((("l_onoff", 1), ("l_linger", 0)))
    ev = one("+0 poll([{fd=3, events=POLLIN|POLLOUT, revents=POLLIN}], 1, 0) = 1")
    assert ev.args[0] == Array((Struct((
        ("fd", 3), ("events", BitOr((Symbol("POLLIN"), Symbol("POLLOUT")))),
        ("revents", Symbol("POLLIN")))),))
    ev = one('+0 write(4, "hi\\n\\"x\\"", 5) = 5')
    assert ev.args[1] == Str('hi\n"x"')
    ev = one('+0 connect(3, inet_addr("192.0.2.1"), htons(8080)) = 0')
    assert ev.args[1:] == (Call("inet_addr", (Str("192.0.2.1"),)), Call("htons", (8080,)))
    ev = one("+0 getpid() = ...")
    assert (ev.args, ev.result) == ((), ...)
    ev = one("+0 read(4, [...], 10) = 10")
    assert ev.args[1] == Array((...,))
    ev = one('+0 write(4, "ab" "cd", 4) = 4')
    assert ev.args[1] == Str("abcd")
    ev = one('+0 read(4, "GET "..., 100) = 100')
    assert ev.args[1] == Str("GET ", partial=True)


def test_msghdr_style_keys() -> None:
    ev = one("+0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{iov_base=..., iov_len=1000}],"
             " msg_flags=0}, 0) = 1000")
    msg = ev.args[1]
    assert [k for k, _ in msg.fields] == ["msg_name(...)", "msg_iov(1)", "msg_flags"]
    assert msg.fields[1][1] == Array((Struct((("iov_base", ...), ("iov_len", 1000))),))


def test_format_expr_round_trip() -> None:
    text = ('{fd=3, events=POLLIN|POLLOUT}', '[1, -2, ...]', '"a\\"b"', 'htons(80)', '0',
            '"x"...', '[]', '{}')
    for t in text:
        ev = one(f"+0 f({t}) = 0")
        assert one(f"+0 f({format_expr(ev.args[0])}) = 0").args == ev.args


# --- commands and code ----------------------------------------------------------------------

def test_timed_command_and_code_block() -> None:
    s = parse_script("0 `sysctl -q net.ipv4.tcp_sack=1`\n"
                     "+0.2 %{\nassert tcpi_state == TCPI_CLOSE\n}%\n"
                     "+0 `echo a` \n")
    assert s.events == (
        Command(1, Time("absolute", 0), "sysctl -q net.ipv4.tcp_sack=1"),
        Code(2, Time("relative", 200_000), "assert tcpi_state == TCPI_CLOSE"),
        Command(5, Time("relative", 0), "echo a"),
    )


# --- bad scripts: ScriptError with the line and a clear message -----------------------------

@pytest.mark.parametrize(("text", "line", "words"), [
    # unknown flag
    ("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < SX 0:0(0) win 1\n", 2,
     "unknown TCP flags 'SX'"),
    ("+0 < SS 0:0(0) win 1", 1, "each once"),
    ("\n+0 < 0:0(0) win 1", 2, "expected TCP flags"),
    # bad sequence range
    ("\n\n+0 < P. 1:1001(999) ack 1 win 1\n", 3, "bad sequence range 1:1001(999)"),
    ("+0 < P. 1-1001(1000) ack 1", 1, "expected ':'"),
    ("+0 < . 4294967295:999(1000) ack 1 win 1", 1, "no wrap"),
    ("+0 < P. 1:1001 ack 1", 1, "expected '(' before the payload length"),
    # unterminated %{
    ("0 close(3) = 0\n+0 %{ assert 1\n\n", 2, "unterminated code block"),
    # missing '=' in a syscall
    ("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 close(3) 0\n", 2,
     "expected '=' and the result after close(...)"),
    ("+0 close(3)\n", 1, "expected '=' and the result after close(...), found the end"),
    # garbage option
    ("+0 < S 0:0(0) win 1 <mss 1000,bogus 3>\n", 1, "unknown TCP option 'bogus'"),
    ("+0 < S 0:0(0) win 1 <TS val 1 ecx 2>", 1, "expected 'ecr'"),
    ("+0 < . 1:1(0) win 1 <sack>", 1, "'sack' needs at least one block"),
    ("+0 < S 0:0(0) win 1 <mss 70000>", 1, "mss 70000 is out of range"),
    ("+0 < S 0:0(0) win 1 <mss 1000 nop>", 1, "expected ',' or '>' in the TCP options"),
    # unbalanced brackets: reported at the opening bracket
    ("0 close(3) = 0\n+0 < S 0:0(0) win 1 <mss 1000,nop\n+0 close(3) = 0\n", 2,
     "unbalanced '<'"),
    ("0 socket(..., SOCK_STREAM, IPPROTO_TCP = 3\n", 1, "expected ',' or ')'"),
    ("\n0 write(4, ..., 10\n+0 close(3) = 0\n", 2, "unbalanced '('"),
    ("0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0, [4]) = 0\n+1 close(3) = 0", 1,
     "expected ',' or ']'"),
    ("0 setsockopt(3, 1, 2, {a=1, b=2, 4) = 0\n\n", 1, "expected ',' or '}'"),
    ("0 setsockopt(3, 1, 2, {a=1\n", 1, "unbalanced '{'"),
    ("0 setsockopt(3, 1, 2, {a=1,\n\n", 1, "expected an argument, found the end"),
    ("+0 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR\n+0 close(3) = 0", 1, "unbalanced '('"),
    # other lexical trouble
    ("\n/* never closed\n0 close(3) = 0\n", 2, "unterminated comment"),
    ("0 `echo hi\n", 1, "unterminated command"),
    ('0 write(4, "abc, 3) = 3\n', 1, "unterminated string"),
    ("0 close(3) = 0 $\n", 1, "unexpected character '$'"),
    # structure
    ("0 close(3) = 0\n--mtu=1500\n", 2, "header options go at the top"),
    ("close(3) = 0\n", 1, "expected an event time"),
    ("0 close(3) = 0\nclose(4) = 0\n", 2, "expected an event time"),
    ("0 frobnicate\n", 1, "expected '(' after the system call name 'frobnicate'"),
    ("0 = 3\n", 1, "expected a packet ('<' or '>'), a system call"),
    ("+0...0.1 > S 0:0(0)\n", 1, "only system calls can block"),
    ("*...0.1 read(3, ..., 1) = 1\n", 1, "needs a plain start time"),
    ("0.5...0.1 read(3, ..., 1) = 1\n", 1, "ends before it starts"),
    ("+.1~.2 > S 0:0(0)\n", 1, "both ends relative"),
    ("0.2~0.1 > S 0:0(0)\n", 1, "range ends before it starts"),
    ("0.0000001 close(3) = 0\n", 1, "finer than a microsecond"),
    ("+0 < udp (100)\n", 1, "udp packets are not supported"),
    ("+0 < [ect2] . 1:1(0) win 1\n", 1, "unknown IP ECN marker 'ect2'"),
    ("+0 < [ect01] . 1:1(0) win 1\n", 1, "[ect01] (either ECT) is for outbound"),
    ("0 close(3) = 0\n+0 < S 0:0(0) win 1 <...>\n", 2, "<...> (any options) is for outbound"),
    ("0 close(3) = 0\n* < S 0:0(0) win 1\n", 2, "for outbound packets ('>') only"),
    ("0.1~0.2 < S 0:0(0) win 1\n", 1, "for outbound packets ('>') only"),
    ("\n* close(3) = 0\n", 2, "for outbound packets ('>') only"),
    ("+0~+1 `echo`\n", 1, "for outbound packets ('>') only"),
    ("+0 < . 1:1(0) ack 1 ack 2 win 1\n", 1, "'ack' given twice"),
    ("+0 < . 1:1(0) ack 1 wnd 1\n", 1, "unexpected 'wnd' in a packet"),
    ("+0 < . 1:1(0) ack 1.5 win 1\n", 1, "expected an integer for 'ack'"),
    ("+0 < . 1:1(0) ack 4294967296 win 1\n", 1, "out of range"),
    ("+0 < . 1:1(0) ack 1 win \u0661\u0660\n", 1, "unexpected character '\u0661'"),
    ("+0 < . 1:1(0) ack \uff11 win 1\n", 1, "unexpected character '\uff11'"),
    ("\u0661 close(3) = 0\n", 1, "unexpected character '\u0661'"),
    ("+0 read(4, ..., 1.5) = 1\n", 1, "expected an integer for an argument"),
    ("+0 read(4, ..., -x) = 1\n", 1, "expected a number after '-'"),
    ("--=3\n", 1, "bad option name"),
    ("0.2 close(3) = 0\n0.1 close(4) = 0\n", 2, "time goes backward: 0.100000 s after 0.200000"),
])
def test_bad_scripts(text: str, line: int, words: str) -> None:
    e = error_of(text)
    assert (e.path, e.line) == ("bad.pkt", line), str(e)
    assert words in e.message, str(e)
    assert str(e).startswith(f"bad.pkt:{line}: ")


def test_script_error_is_a_value_error() -> None:
    e = error_of("0 close(3)")
    assert isinstance(e, ValueError)


# --- round trip: format_packet then parse gives the same Packet ------------------------------

def _random_packet(rng: random.Random) -> Packet:
    direction = rng.choice("<>")
    outbound = direction == ">"
    kind = rng.choice(["absolute", "relative", "any"] if outbound else ["absolute", "relative"])
    start = 0 if kind == "any" else rng.choice([0, 1, 10_000, 123_456, 2_000_000,
                                               rng.randrange(10**8)])
    end = None
    if kind != "any" and outbound and rng.random() < 0.3:
        end = start + rng.randrange(1, 10**6)
    flags = "".join(c for c in FLAG_CHARS if rng.random() < 0.3)
    length = rng.choice([0, 1, 1000, 1460, rng.randrange(65536)])
    seq = rng.choice([0, 1, rng.randrange(2**32 - length)])
    options: tuple[Option, ...] | None
    if outbound and rng.random() < 0.2:
        options = None
    else:
        pool = [Option("nop"), Option("eol"), Option("sackOK"),
                Option("mss", (rng.randrange(65536),)), Option("wscale", (rng.randrange(15),)),
                Option("TS", (rng.randrange(2**32), rng.randrange(2**32))),
                Option("sack", blocks=tuple((rng.randrange(2**32), rng.randrange(2**32))
                                            for _ in range(rng.randrange(1, 4))))]
        options = tuple(rng.choice(pool) for _ in range(rng.randrange(0, 6)))
    ecns = [None, None, "ect0", "ect1", "ce", "noecn"] + (["ect01"] if outbound else [])
    return Packet(
        line=1, time=Time(kind, start, end), direction=direction, flags=flags,
        seq_start=seq, seq_end=seq + length, length=length,
        ack=rng.choice([None, rng.randrange(2**32)]),
        win=rng.choice([None, rng.randrange(65536)]),
        options=options,
        urg=rng.choice([None, None, None, rng.randrange(65536)]),
        ecn=rng.choice(ecns),
    )


def test_format_packet_round_trip() -> None:
    rng = random.Random(10)
    for _ in range(60):
        p = _random_packet(rng)
        text = format_packet(p)
        assert one(text) == p, text


def test_format_packet_text() -> None:
    p = Packet(3, Time("relative", 100_000), "<", "S.", 0, 0, 0, 1, 5792,
               (Option("mss", (1460,)), Option("nop"), Option("wscale", (2,))))
    assert format_packet(p) == "+0.1 < S. 0:0(0) ack 1 win 5792 <mss 1460,nop,wscale 2>"
    assert format_packet(Packet(1, Time("any", 0), ">", "", 1, 1, 0, options=None)) == \
        "* > - 1:1(0) <...>"


def test_untimed_cleanup_command_at_the_end() -> None:
    """packetdrill runs an untimed command after the last event as the cleanup command;
    anywhere else after the first timed event it needs a time."""
    s = parse_script("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n`echo done`\n")
    assert isinstance(s.events[-1], Command) and s.events[-1].time is None
    with pytest.raises(ScriptError) as e:
        parse_script("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n`echo a`\n+0 close(3) = 0\n")
    assert e.value.line == 2 and "cleanup" in str(e.value)
