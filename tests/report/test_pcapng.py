"""pcapng captures with a comment per packet (rawtcp's state, the fault rules that acted on
it): the writer's blocks, the annotation of a real run's capture from its trace, tshark
reading the comments back, and the ladder reading the pcapng."""

from __future__ import annotations

import errno
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from rawtcp.report.captures import read_capture
from rawtcp.report.ladder import ladder_from_pcap
from rawtcp.report.pcapng import (
    PcapngRecorder,
    annotate_capture,
    open_capture,
    packet_block,
    packet_comments,
)
from rawtcp.trace import PcapRecorder

from .report_fixture import IN_RULE, OUT_RULE, memory_run

TSHARK = shutil.which("tshark")


def _tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    assert TSHARK, "tshark is not installed (scripts/quickstart installs it)"
    args = [TSHARK, "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    return [line.split("|") for line in p.stdout.splitlines()]


def test_recorder_blocks_are_pcapng(tmp_path) -> None:
    """SHB (byte-order magic, version 1.0), IDB (LINKTYPE_RAW, if_tsresol 6), one EPB per
    packet; read back with its microsecond timestamp; comments and direction seen by tshark."""
    ip = bytes.fromhex("4500002800010000400600000a0000010a000002"
                       "04d2005000000001000000005002ffff00000000")
    p = tmp_path / "x.pcapng"
    with PcapngRecorder(p) as rec:
        rec.record(ip, 1_700_000_000_123_456, comment="first <b>& ünïcode", direction="out")
        rec.record(ip, 1_700_000_000_223_456)
    data = p.read_bytes()
    btype, blen, bom, major, minor = struct.unpack_from("<IIIHH", data)
    assert (btype, bom, major, minor) == (0x0A0D0D0A, 0x1A2B3C4D, 1, 0)
    assert struct.unpack_from("<I", data, blen)[0] == 1                  # then an IDB
    assert struct.unpack_from("<H", data, blen + 8)[0] == 101            # LINKTYPE_RAW
    assert read_capture(p) == [(1_700_000_000_123_456, 101, ip),
                               (1_700_000_000_223_456, 101, ip)]
    rows = _tshark_fields(p, "frame.comment", "frame.time_epoch", "ip.src")
    assert rows[0][0] == "first <b>& ünïcode" and rows[0][1].startswith("1700000000.123456")
    assert rows[1][0] == "" and rows[1][2] == "10.0.0.1"


def test_open_capture_follows_the_extension(tmp_path) -> None:
    """`.pcap` stays classic pcap (what users asked for by name); anything else is pcapng."""
    with open_capture(tmp_path / "a.pcap") as a, open_capture(tmp_path / "b.pcapng") as b:
        assert isinstance(a, PcapRecorder) and isinstance(b, PcapngRecorder)
    assert (tmp_path / "a.pcap").read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"
    assert (tmp_path / "b.pcapng").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"


def test_bad_input_raises_oserror(tmp_path) -> None:
    with pytest.raises(OSError) as e:
        packet_block(b"\x45", -1)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        PcapngRecorder(tmp_path / "x.pcapng", snaplen=0)
    assert e.value.errno == errno.EINVAL
    rec = PcapngRecorder(tmp_path / "y.pcapng")
    rec.close()
    with pytest.raises(OSError) as e:
        rec.record(b"\x45", 0)
    assert e.value.errno == errno.EBADF
    with pytest.raises(OSError) as e:
        annotate_capture(tmp_path / "y.pcapng.missing", [], tmp_path / "z.pcapng")


def test_real_run_annotated_and_read_back_by_tshark(tmp_path) -> None:
    """A transfer between two rawtcp stacks with a data segment and an incoming ACK dropped
    by fault rules: every captured packet gets rawtcp's state; the incoming ACK the rule
    dropped says so and that rawtcp never saw it; the retransmission is marked; tshark shows
    the comments and the direction flags; the ladder from the pcapng equals the pcap's."""
    events, pcap = memory_run(tmp_path)
    out = tmp_path / "a.pcapng"
    n = annotate_capture(pcap, events, out)
    segs_on_wire = [e for e in events if e["ev"] == "seg"]
    dropped_out = [e for e in events if e["ev"] == "fault" and e["dir"] == "out"]
    dropped_in = [e for e in events if e["ev"] == "fault" and e["dir"] == "in"]
    assert len(dropped_out) == 1 and len(dropped_in) == 1
    # on the wire: every seg except the one dropped on its way out, plus the dropped ACK in
    frames = read_capture(out)
    assert len(frames) == len(segs_on_wire) - 1 + 1 == len(read_capture(pcap))
    assert n == len(frames)                                   # every packet has a comment
    rows = _tshark_fields(out, "frame.comment", "tcp.flags.str", "frame.p2p_dir",
                          "tcp.len")
    comments = [r[0] for r in rows]
    assert all(c.startswith(("rawtcp sent in ", "rawtcp received in ", "rawtcp never"))
               for c in comments), comments
    lost = [c for c in comments if c.startswith("rawtcp never saw it")]
    assert lost == [f"rawtcp never saw it; fault drop: {IN_RULE}"]
    # the dropped data segment of each side came again (a loaded machine may add a probe or
    # a spurious timeout: real threads, rto_min 50 ms)
    assert sum(c.startswith("rawtcp sent") and "retransmission" in c for c in comments) >= 1
    assert sum(c.startswith("rawtcp received") and "retransmission" in c
               for c in comments) >= 1
    assert comments[0] == "rawtcp sent in SYN_SENT"
    assert comments[1] == "rawtcp received in SYN_SENT"            # the SYN-ACK
    # the out rule's segment never reached the wire: no comment names it
    assert not any(OUT_RULE in c for c in comments)
    # direction: epb_flags 2 = outbound, 1 = inbound (Wireshark's p2p_dir 0 = sent, 1 = recv)
    sent = [r for r in rows if r[0].startswith("rawtcp sent")]
    assert sent and all(r[2] == "0" for r in sent)
    assert all(r[2] == "1" for r in rows if not r[0].startswith("rawtcp sent"))
    assert ladder_from_pcap(out) == ladder_from_pcap(pcap)


def test_comments_match_events_without_a_shared_clock(tmp_path) -> None:
    """The capture is stamped with wall-clock time, the trace with the stack's clock: the
    offset is found from the packets, so the comments are the same whatever the origin."""
    events, pcap = memory_run(tmp_path)
    shifted = [dict(e, t=e["t"] + 5_000_000) if "t" in e else e for e in events]
    a = [c for *_x, c, _d in packet_comments(pcap, events)]
    b = [c for *_x, c, _d in packet_comments(pcap, shifted)]
    assert a == b and all(a)


def test_comments_of_packets_a_rule_held(tmp_path) -> None:
    """A rule that delays one of rawtcp's data segments: the capture has it when it left,
    with the state it was sent in, how long it was held and the rule that released it; the
    peer's reply delayed on the way in is captured on arrival, said to be held (not lost)."""
    out_rule, in_rule = "out len>0 nth=3 ms=30", "in len>0 nth=1 ms=20"
    events, pcap = memory_run(tmp_path, rules=[("delay", out_rule), ("delay", in_rule)])
    rows = packet_comments(pcap, events)
    comments = [c for *_x, c, _d in rows]
    held_out = [c for c in comments if "held" in c and c.startswith("rawtcp sent")]
    assert len(held_out) == 1, comments
    assert held_out[0].startswith("rawtcp sent in ")
    assert held_out[0].endswith(f"by a fault rule; fault delay: {out_rule}")
    assert all(comments)
    ms = float(held_out[0].split("held ")[1].split(" ms")[0])
    assert 30 <= ms < 1000
    held_in = [c for c in comments if c.startswith("held by a fault rule before rawtcp")]
    assert held_in == [f"held by a fault rule before rawtcp (it came later); fault delay: "
                       f"{in_rule}"]
    assert not any("never saw" in c for c in comments)
