"""The packetdrill runner (rawtcp/packetdrill/runner.py) with scripts written here.

Each script plays the remote peer against rawtcp on the virtual clock. A passing script shows
the runner accepts what rawtcp does; a script altered at one line shows the runner notices,
at that line, with packetdrill's diagnostic. These tests do not use the shared corpus.
"""

from __future__ import annotations

import json

import pytest

from rawtcp import cli
from rawtcp.packetdrill.runner import RunOptions, run_script

SERVER = """
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
+0    < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
+0    > S. 0:0(0) ack 1 <...>
+.1   < . 1:1(0) ack 1 win 257
+0    accept(3, ..., ...) = 4
"""

# RFC 9293 3.5 (open), 3.6 (close): handshake, one segment each way, our close, theirs
LIFECYCLE = SERVER + """
+0    write(4, ..., 1000) = 1000
+0    > P. 1:1001(1000) ack 1
+.1   < P. 1:501(500) ack 1001 win 257
+0    read(4, ..., 500) = 500
+0    > . 1001:1001(0) ack 501
+0    close(4) = 0
+0    > F. 1001:1001(0) ack 501
+.1   < F. 501:501(0) ack 1002 win 257
+0    > . 1002:1002(0) ack 502
"""


def line_of(text: str, needle: str) -> int:
    """The script line (1-based, as the runner numbers them) that holds ``needle``."""
    lines = text.lstrip("\n").splitlines()
    return next(i for i, ln in enumerate(lines, 1) if needle in ln)


def test_lifecycle_passes(run) -> None:
    res = run(LIFECYCLE)
    assert res.status == "PASS", res.diagnostics()
    assert res.virtual_us == 300_000          # the last event (0.3 s), on the virtual clock


def test_runs_are_deterministic(run) -> None:
    a, b = run(LIFECYCLE), run(LIFECYCLE)
    segs = [[e for e in r.events if e["ev"] == "seg"] for r in (a, b)]
    assert segs[0] == segs[1] and len(segs[0]) == 9


def test_wrong_ack_fails_at_its_line_with_the_field(run) -> None:
    text = LIFECYCLE.replace("> P. 1:1001(1000) ack 1", "> P. 1:1001(1000) ack 2")
    res = run(text)
    assert res.status == "FAIL"
    f = res.failure
    assert f.line == line_of(text, "ack 2")
    assert "live packet field tcp_ack_seq: expected: 2 (0x2) vs actual: 1 (0x1)" in f.message
    assert f.expected == "0.100000 > P. 1:1001(1000) ack 2"
    assert f.actual.startswith("0.100000 P. 1:1001(1000) ack 1 win ")
    assert res.diagnostics()[0].startswith(f"t.pkt:{f.line}: error handling packet: live packet")


def test_late_packet_is_a_timing_error_saying_by_how_much(run) -> None:
    # rawtcp sends the data at once; the script says 50 ms later
    text = LIFECYCLE.replace("+0    > P. 1:1001", "+.05  > P. 1:1001")
    res = run(text)
    assert res.status == "FAIL" and res.failure.line == line_of(text, "+.05  > P.")
    assert res.failure.message.startswith(
        "timing error: expected outbound packet at 0.150000 sec but happened at 0.100000 sec")
    assert "off by -50.000 ms" in res.failure.message


def test_missing_packet_is_no_packet(run) -> None:
    # after the handshake rawtcp has nothing to send: nothing comes
    res = run(SERVER + "+.1 > . 1:1(0) ack 1\n")
    assert res.status == "FAIL" and res.failure.line == 9
    assert "no packet" in res.failure.message and res.failure.actual == "no packet"


def test_unexpected_packet_where_another_was_expected(run) -> None:
    # rawtcp sends data; the script expects a FIN first
    res = run(SERVER + "+0 write(4, ..., 10) = 10\n+0 > F. 1:1(0) ack 1\n")
    assert res.status == "FAIL" and res.failure.line == 10
    assert "live packet payload: expected 0 bytes vs actual 10 bytes" in res.failure.message
    assert " P. 1:11(10) ack 1 " in res.failure.actual


def test_extra_packets_after_the_last_event_are_not_checked(run) -> None:
    # as packetdrill: the ACK of the data is never expected, the script still passes
    res = run(SERVER + "+.1 < P. 1:11(10) ack 1 win 257\n")
    assert res.status == "PASS", res.diagnostics()
    assert any(e["ev"] == "seg" and e["dir"] == "out" and e["rack"] == 11 for e in res.events)


# ---------------------------------------------------------------------------- blocking calls
BLOCKING_ACCEPT = """
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
+0...0.200 accept(3, ..., ...) = 4
+.1   < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
+0    > S. 0:0(0) ack 1 <...>
+.1   < . 1:1(0) ack 1 win 257
+.1   write(4, ..., 100) = 100
+0    > P. 1:101(100) ack 1
"""


def test_blocking_accept_spans_the_handshake(run) -> None:
    res = run(BLOCKING_ACCEPT)
    assert res.status == "PASS", res.diagnostics()


def test_blocking_accept_returning_at_another_time_fails(run) -> None:
    res = run(BLOCKING_ACCEPT.replace("+0...0.200 accept", "+0...0.300 accept"))
    assert res.status == "FAIL" and res.failure.line == 5
    assert res.failure.message.startswith(
        "timing error: expected system call return at 0.300000 sec but happened at 0.200000")


def test_blocking_read_waits_for_data(run) -> None:
    res = run(SERVER + "+0...0.1 read(4, ..., 100) = 100\n"
                       "+.1 < P. 1:101(100) ack 1 win 257\n")
    assert res.status == "PASS", res.diagnostics()


def test_a_call_that_blocks_without_a_range_fails(run) -> None:
    res = run(SERVER + "+0 read(4, ..., 100) = 100\n")
    assert res.status == "FAIL" and res.failure.line == 9
    assert "blocks in rawtcp but the script gives it no time range" in res.failure.message


# ---------------------------------------------------------------------------- errnos
CLIENT = """
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)
+0    fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0    connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0    > S 0:0(0) <...>
"""


def test_errno_results(run) -> None:
    # RFC 9293 3.10.7.3: a RST acking our SYN refuses the connection
    res = run(CLIENT + """
+0    read(3, ..., 10) = -1 EAGAIN (Resource temporarily unavailable)
+.1   < R. 0:0(0) ack 1 win 0
+0    getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNREFUSED], [4]) = 0
+0    close(3) = 0
""")
    assert res.status == "PASS", res.diagnostics()


def test_getsockopt_reads_a_struct_linger(run) -> None:
    """getsockopt(SO_LINGER) with a struct expected reads the option's 8 bytes (the socket
    returns only l_onoff without a buflen, as Linux); a different struct fails."""
    script = """
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0
+0    getsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=SECONDS}, [8]) = 0
+0    close(3) = 0
"""
    res = run(script.replace("SECONDS", "0"))
    assert res.status == "PASS", res.diagnostics()
    res = run(script.replace("SECONDS", "5"))
    assert res.status == "FAIL" and res.failure.line == 3     # (the script's third line)
    assert "expected: (1, 5) actual: (1, 0)" in res.failure.message


def test_wrong_errno_fails(run) -> None:
    res = run(CLIENT.replace("-1 EINPROGRESS", "-1 EALREADY"))
    assert res.status == "FAIL" and res.failure.line == 4
    assert res.failure.message.startswith(
        "connect: Expected errno 114 (EALREADY) but got 115 (EINPROGRESS)")


def test_wrong_result_fails(run) -> None:
    res = run(CLIENT.replace("= 0x2 (flags O_RDWR)", "= 0x802"))
    assert res.status == "FAIL" and res.failure.line == 2
    assert res.failure.message == "fcntl: Expected result 2050 but got 2"


def test_active_open_with_relative_numbers(run) -> None:
    # the SYN-ACK's seq is the remote ISN: later numbers are relative to it
    res = run(CLIENT + """
+.1   < S. 5000:5000(0) ack 1 win 65535 <mss 1000>
+0    > . 1:1(0) ack 1 <...>
+0    write(3, ..., 10) = 10
+0    > P. 1:11(10) ack 1 <...>
+.1   < P. 1:5(4) ack 11 win 65535
+0    read(3, ..., 100) = 4
""")
    assert res.status == "PASS", res.diagnostics()
    syn_ack = [e for e in res.events if e["ev"] == "seg" and e["flags"] == "SA"][0]
    assert syn_ack["seq"] == 5000


# ---------------------------------------------------------------------------- TSO emulation
TSO = SERVER + """
+0    write(4, ..., 3000) = 3000
+0    > P. 1:3001(3000) ack 1
"""


def test_consecutive_segments_are_joined_as_tso_would_send_them(run) -> None:
    res = run(TSO)
    assert res.status == "PASS", res.diagnostics()
    sizes = [e["len"] for e in res.events if e["ev"] == "seg" and e["dir"] == "out"
             and e["len"]]
    assert sizes == [1000, 1000, 1000]     # rawtcp sent MSS-sized segments (peer MSS 1000)


def test_strict_segments_does_not_join(run) -> None:
    res = run(TSO, strict_segments=True)
    assert res.status == "FAIL" and res.failure.line == line_of(TSO, "> P. 1:3001")
    assert "live packet payload: expected 3000 bytes vs actual 1000 bytes" in res.failure.message


# ---------------------------------------------------------------------------- commands, code
SYN_ONLY_MSS = """
`sysctl -q net.ipv4.tcp_sack=0 net.ipv4.tcp_timestamps=0 net.ipv4.tcp_window_scaling=0`
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0    connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0    > S 0:0(0) <mss 1460>
"""


def test_sysctl_backtick_changes_the_syn(run) -> None:
    res = run(SYN_ONLY_MSS)
    assert res.status == "PASS", res.diagnostics()
    assert any("applied sack=False, timestamps=False, window_scaling=False" in n
               for n in res.notes)
    # without the sysctls rawtcp offers SACK, timestamps and window scale: the SYN differs
    res = run(SYN_ONLY_MSS.split("\n", 2)[2])
    assert res.status == "FAIL" and res.failure.line == 4
    assert res.failure.message == "error handling packet: bad outbound TCP options"
    assert "sackOK" in res.failure.actual


def test_other_commands_are_ignored_not_run(run, tmp_path) -> None:
    marker = tmp_path / "ran"
    res = run(f"`touch {marker}`\n" + SYN_ONLY_MSS.split("\n", 2)[2].replace(
        "<mss 1460>", "<...>"))
    assert res.status == "PASS" and not marker.exists()
    assert any("ignored, not executed" in n for n in res.notes)


def test_ss_count_and_tcpi_state(run) -> None:
    text = SERVER + """
+0    `ss -Htan state established '( sport = :8080 )' | wc -l | grep -qx 1`
+0    close(4) = 0
+0    > F. 1:1(0) ack 1
+.1   < F. 1:1(0) ack 2 win 257
+0    > . 2:2(0) ack 2
+0    `ss -Htan state time-wait | wc -l | grep -qx 1`
+0    %{ assert tcpi_state == TCPI_TIME_WAIT }%
"""
    res = run(text)
    assert res.status == "PASS", res.diagnostics()
    text = text.replace("state time-wait | wc -l | grep -qx 1", "state time-wait | wc -l "
                                                                "| grep -qx 2")
    bad = run(text)
    assert bad.status == "FAIL" and bad.failure.line == line_of(text, "grep -qx 2")
    assert "expected 2 connection(s) in TIME_WAIT, rawtcp has 1" in bad.failure.message


def test_tcpi_field_rawtcp_lacks_is_unsupported(run) -> None:
    res = run(SERVER + "+0 %{ assert tcpi_reordering == 3 }%\n")
    assert res.status == "UNSUPPORTED"
    assert res.reason == "tcpi_reordering has no rawtcp equivalent"


def test_ipv6(run) -> None:
    res = run("--ip_version=ipv6\n" + LIFECYCLE)
    assert res.status == "PASS", res.diagnostics()
    syn = [e for e in res.events if e["ev"] == "seg"][0]
    assert syn["src"] == "fd3d:fa7b:d17d::1" and syn["dst"] == "fd3d:a0b:17d6::1"


def test_timestamps_are_mapped(run) -> None:
    # the inbound TS ecr 100 names rawtcp's TS val of the SYN-ACK; its FIN's TS val is
    # checked one tick per ms (RFC 7323 5.4: a 1 ms timestamp clock)
    res = run("""
--tcp_ts_tick_usecs=1000
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
+0    < S 0:0(0) win 20000 <mss 1000,sackOK,TS val 100 ecr 0>
+0    > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 100>
+.1   < . 1:1(0) ack 1 win 20000 <nop,nop,TS val 200 ecr 100>
+0    accept(3, ..., ...) = 4
+1    close(4) = 0
+0    > F. 1:1(0) ack 1 <nop,nop,TS val 1200 ecr 200>
""")
    assert res.status == "PASS", res.diagnostics()
    bad = run("--tcp_ts_tick_usecs=1000\n" + "\n".join(
        ln.replace("TS val 1200", "TS val 1300") for ln in res_lines()))
    assert bad.status == "FAIL" and "bad outbound TCP timestamp value" in bad.failure.message


def res_lines() -> list[str]:
    return """0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 20000 <mss 1000,sackOK,TS val 100 ecr 0>
+0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 100>
+.1 < . 1:1(0) ack 1 win 20000 <nop,nop,TS val 200 ecr 100>
+0 accept(3, ..., ...) = 4
+1 close(4) = 0
+0 > F. 1:1(0) ack 1 <nop,nop,TS val 1200 ecr 200>""".splitlines()


# ---------------------------------------------------------------------------- the command
@pytest.fixture
def scripts(tmp_path):
    good = tmp_path / "good.pkt"
    good.write_text(LIFECYCLE.lstrip())
    bad = tmp_path / "bad.pkt"
    bad.write_text(LIFECYCLE.lstrip().replace("ack 1002 win 257", "ack 1003 win 257"))
    return good, bad


def test_cli_all_pass_exits_0(scripts, capsys) -> None:
    good, _bad = scripts
    assert cli.main(["packetdrill", "--config", "delayed_ack=0", str(good)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"PASS {good}", "1 passed, 0 failed"]


def test_cli_a_failure_exits_1_with_diagnostics(scripts, capsys) -> None:
    good, bad = scripts
    assert cli.main(["packetdrill", "--config", "delayed_ack=0", "-j", "2", str(good),
                     str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"PASS {good}" and out[1] == f"FAIL {bad}"
    line = line_of(LIFECYCLE, "ack 1002 win 257") + 1
    assert out[2].startswith(f"    {bad}:{line}: error handling packet: ")
    assert out[-1] == "1 passed, 1 failed"


def test_cli_directory_json_and_ladder(scripts, capsys) -> None:
    good, bad = scripts
    assert cli.main(["packetdrill", "--config", "delayed_ack=0", "--json", "--ladder",
                     str(good.parent)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["passed"], data["failed"], data["unsupported"]) == (1, 1, 0)
    failed = [r for r in data["results"] if r["status"] == "FAIL"][0]
    line = line_of(LIFECYCLE, "ack 1002 win 257") + 1
    assert failed["failure"]["line"] == line and "FIN_WAIT_1" in failed["ladder"]


def test_cli_unsupported_is_counted(tmp_path, capsys) -> None:
    p = tmp_path / "u.pkt"
    p.write_text(SERVER.lstrip() + "+0 %{ assert tcpi_reordering == 3 }%\n")
    assert cli.main(["packetdrill", "--config", "delayed_ack=0", str(p)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"UNSUPPORTED {p}: tcpi_reordering has no rawtcp equivalent"
    assert out[-1] == "0 passed, 0 failed, 1 unsupported"


@pytest.mark.parametrize("argv", [["packetdrill"], ["packetdrill", "/no/such.pkt"],
                                  ["packetdrill", "--tolerance_usecs", "x", "a.pkt"],
                                  ["packetdrill", "--realtime", "a.pkt"],
                                  ["packetdrill", "--config", "nope=1", "a.pkt"]])
def test_cli_bad_arguments_exit_2_with_one_line(argv, capsys) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_parse_error_is_a_failure_with_its_line(tmp_path, capsys) -> None:
    p = tmp_path / "broken.pkt"
    p.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 > Q 0:0(0)\n")
    assert cli.main(["packetdrill", "--config", "delayed_ack=0", str(p)]) == 1
    out = capsys.readouterr().out
    assert f"{p}:2:" in out and out.splitlines()[-1] == "0 passed, 1 failed"


def test_run_script_takes_a_parsed_script() -> None:
    from rawtcp.packetdrill.parser import parse_script
    from rawtcp.packetdrill.runner import RunOptions

    res = run_script(parse_script(LIFECYCLE.lstrip(), "x.pkt"),
                     RunOptions(config_overrides={"delayed_ack": 0}))
    assert res.passed and res.to_dict()["status"] == "PASS"


def test_so_rcvtimeo_times_out_on_the_virtual_clock(run) -> None:
    res = run(SERVER + "+0 setsockopt(4, SOL_SOCKET, SO_RCVTIMEO, {tv_sec=0, tv_usec=300000}, "
                       "16) = 0\n"
                       "+0...0.3 read(4, ..., 10) = -1 EAGAIN (Resource temporarily "
                       "unavailable)\n")
    assert res.status == "PASS", res.diagnostics()


def test_realtime_over_a_tun_link(run) -> None:
    """--realtime: the same script over a real TUN device in a private namespace (root).
    Outbound times are `*`: this checks the segments, not the machine's speed."""
    from rawtcp.host.netns import netns_exists

    text = """
--tolerance_usecs=1000000
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
+0    < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
*     > S. 0:0(0) ack 1 <...>
+.05  < . 1:1(0) ack 1 win 257
+0...1 accept(3, ..., ...) = 4
+0    write(4, ..., 100) = 100
*     > P. 1:101(100) ack 1
+.05  < F. 1:1(0) ack 101 win 257
*     > . 101:101(0) ack 2
+0    close(4) = 0
*     > F. 101:101(0) ack 2
"""
    res = run(text, realtime=True)
    assert res.status == "PASS", res.diagnostics()
    note = [n for n in res.notes if n.startswith("real time over a TUN link: rawtcp "
                                                 "10.77.0.2, script 10.77.0.3, namespace ")]
    assert len(note) == 1
    assert [e["flags"] for e in res.events if e["ev"] == "seg" and e["dir"] == "out"][:4] == \
        ["SA", "PA", "A", "FA"]
    assert not netns_exists(note[0].rsplit(" ", 1)[1])      # the lab is gone


def test_virtual_stack_parks_a_blocking_call_and_moves_time_only_on_demand() -> None:
    """vstack: a blocking connect parks in a worker; the clock moves only in advance_to, and
    the SYN is retransmitted at exactly 1 s and 3 s (RFC 6298 2.1 initial RTO of 1 s, 5.5
    doubling)."""
    import socket as pysocket

    from rawtcp.packetdrill.vstack import VirtualStack

    vs = VirtualStack(addresses=["192.168.0.1"])
    s = vs.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
    job = vs.start(lambda: s.connect(("192.0.2.1", 8080)), "connect")
    assert job.parked and not job.done and vs.now == 0
    assert [(t, p.segment.flags) for t, p in vs.sent] == [(0, 2)]
    vs.advance_to(3_500_000)
    assert vs.now == 3_500_000 and job.parked
    assert [t for t, _p in vs.sent] == [0, 1_000_000, 3_000_000]
    assert len({p.segment.seq for _t, p in vs.sent}) == 1
    vs.close()
    assert job.done and isinstance(job.exc, OSError)


def test_poll_and_vector_calls(run) -> None:
    res = run(SERVER + """
+0    poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1
+0...0.1 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 1000) = 1
+.1   < P. 1:11(10) ack 1 win 257
+0    readv(4, [{iov_base=..., iov_len=4}, {iov_base=..., iov_len=2}], 2) = 6
+0    recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 10}], msg_flags=0}, 0) = 4
+0    writev(4, [{..., 3}, {..., 2}], 2) = 5
+0    > P. 1:6(5) ack 11
+.01  < . 11:11(0) ack 6 win 257
+0    sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 7}], msg_flags=0}, 0) = 7
+0    > P. 6:13(7) ack 11
""")
    assert res.status == "PASS", res.diagnostics()
    bad = run(SERVER + "+0 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 0) = 0\n")
    assert bad.status == "FAIL"
    assert bad.failure.message == "poll: Expected revents of POLLIN but got 0 for pollfd 0"


def test_a_block_of_commands_is_taken_one_by_one(run) -> None:
    # as Google's scripts write it: defaults, then set_sysctls.py turning timestamps off
    text = ("`../common/defaults.sh\n ../common/set_sysctls.py "
            "/proc/sys/net/ipv4/tcp_timestamps=0 \\\n /proc/sys/net/ipv4/tcp_sack=0`\n"
            + SYN_ONLY_MSS.split("\n", 2)[2].replace("<mss 1460>", "<...>"))
    res = run(text)
    assert res.status == "PASS", res.diagnostics()
    note = res.notes[0]
    assert "applied Linux defaults" in note and "applied timestamps=False, sack=False" in note
    syn = [e for e in res.events if e["ev"] == "seg"][0]
    assert syn["flags"] == "S" and set(syn["opts"]) == {"mss", "wscale"}   # no TS, no SACK


def test_header_options_out_of_range_fail_with_the_range(run) -> None:
    """A script's header options have the command line's ranges (a tolerance up to 10 s, a
    timestamp tick up to 1 s, ports 1..65535): outside, the script fails saying which option
    and its range, before anything runs (they were taken unbounded)."""
    for opt, rng in (("--tolerance_usecs=99999999999", "0..10000000"),
                     ("--tcp_ts_tick_usecs=1000001", "0..1000000"),
                     ("--bind_port=0", "1..65535")):
        res = run(opt + "\n" + LIFECYCLE)
        assert res.status == "FAIL", (opt, res)
        assert opt in res.failure.message and rng in res.failure.message, res.failure
    assert run("--tolerance_usecs=10000000\n" + LIFECYCLE).passed


def test_header_integer_options_are_decimal_digits_or_hex(run) -> None:
    """A header option's integer was read with int(text, 0), which took ' 5', '1_500', '+5',
    '0o17' and other scripts' digits: now decimal digits or 0x hex, else the script fails
    naming the option and the text (the command line's options say the same)."""
    for opt in ("--mtu=1_500", "--tolerance_usecs=+4000", "--bind_port=0o17",
                "--connect_port=\u0668\u0660"):
        res = run(opt + "\n" + LIFECYCLE)
        assert res.status == "FAIL", (opt, res)
        name, text = opt.split("=")
        assert f"{name}={text!r}: not an integer (decimal digits or 0x hex)" in \
            res.failure.message, res.failure
    with pytest.raises(ValueError, match=r"--mtu=' 1500': not an integer"):
        RunOptions().with_script_options({"mtu": " 1500"})   # a blank (not from a header)
    o, unknown = RunOptions().with_script_options({"mtu": "0x5dc", "tolerance_usecs": "0X10",
                                                   "bind_port": "08080"})
    assert (o.mtu, o.tolerance_usecs, o.bind_port, unknown) == (1500, 16, 8080, [])
    assert run("--tolerance_usecs=0x2710\n" + LIFECYCLE).passed
