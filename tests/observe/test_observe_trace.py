"""Tracer (JSON-lines event log) and PcapRecorder (classic pcap, LINKTYPE_RAW)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from rawtcp.core.segment import Flags, Options, Packet, Segment
from rawtcp.report.captures import read_pcap
from rawtcp.trace import LINKTYPE_RAW, PcapRecorder, Tracer, encode_packet, read_trace


def test_tracer_keeps_events_and_filters_by_kind() -> None:
    tr = Tracer()
    tr({"t": 1, "ev": "seg", "dir": "out"})
    tr({"t": 2, "ev": "state", "old": "CLOSED", "new": "SYN_SENT"})
    tr({"t": 3, "ev": "seg", "dir": "in"})
    assert [e["t"] for e in tr.events()] == [1, 2, 3]
    assert [e["t"] for e in tr.events("seg")] == [1, 3]
    assert [e["t"] for e in tr.events(["state", "seg"])] == [1, 2, 3]
    assert tr.events("timer") == []
    assert tr.count == 3


def test_tracer_memory_is_bounded_and_counts_evictions() -> None:
    tr = Tracer(max_events=3)
    for i in range(10):
        tr({"t": i, "ev": "x"})
    assert [e["t"] for e in tr.events()] == [7, 8, 9]
    assert tr.evicted == 7
    assert tr.count == 10


def test_tracer_rejects_a_zero_bound() -> None:
    with pytest.raises(OSError):
        Tracer(max_events=0)


def test_tracer_writes_json_lines_that_read_trace_reads_back(tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    with Tracer(path, keep=False) as tr:
        tr({"t": 5, "ev": "seg", "opts": {"mss": 1460}, "payload": b"\x01\x02", "ts": (1, 2)})
        tr({"t": 6, "ev": "state", "old": "LISTEN", "new": "SYN_RECEIVED", "reason": "syn"})
        assert tr.events() == []  # keep=False
    evs = read_trace(path)
    assert evs == [
        {"t": 5, "ev": "seg", "opts": {"mss": 1460}, "payload": "0102", "ts": [1, 2]},
        {"t": 6, "ev": "state", "old": "LISTEN", "new": "SYN_RECEIVED", "reason": "syn"},
    ]
    # every line is one JSON object
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(isinstance(json.loads(s), dict) for s in lines)


def test_tracer_ignores_events_after_close(tmp_path) -> None:
    tr = Tracer(tmp_path / "t.jsonl")
    tr({"t": 1, "ev": "a"})
    tr.close()
    tr({"t": 2, "ev": "b"})
    tr.close()  # idempotent
    assert [e["t"] for e in read_trace(tmp_path / "t.jsonl")] == [1]


def test_read_trace_ignores_a_truncated_last_line_but_not_a_broken_middle(tmp_path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"t":1,"ev":"a"}\n{"t":2,"ev":"b"}\n{"t":3,"ev"')
    assert [e["t"] for e in read_trace(p)] == [1, 2]
    p.write_text('{"t":1,"ev":"a"}\nnot json\n{"t":3,"ev":"c"}\n')
    with pytest.raises(ValueError, match=":2:"):
        read_trace(p)


def test_tracer_adds_wall_clock_when_given_a_clock() -> None:
    ticks = iter([1000.5, 1001.25])
    tr = Tracer(clock=lambda: next(ticks))
    tr({"t": 0, "ev": "a"})
    tr({"t": 1, "ev": "b"})
    assert [e["wall"] for e in tr.events()] == [1000.5, 1001.25]
    plain = Tracer()
    plain({"t": 0, "ev": "c"})
    assert "wall" not in plain.events()[0]


def test_subscribers_get_every_event_and_a_raising_one_is_removed() -> None:
    got: list[dict] = []
    tr = Tracer(subscribers=[got.append])

    def broken(ev: dict) -> None:
        raise RuntimeError("observer bug")

    tr.subscribe(broken)
    late: list[dict] = []
    unsub = tr.subscribe(late.append)
    tr({"t": 1, "ev": "a"})
    unsub()
    tr({"t": 2, "ev": "b"})
    assert [e["t"] for e in got] == [1, 2]
    assert [e["t"] for e in late] == [1]
    assert tr.subscriber_errors == 1  # removed after the first failure, not called again


# ----------------------------------------------------------------------------------------------
# pcap
# ----------------------------------------------------------------------------------------------

V4 = Packet(
    "10.9.0.1",
    "10.9.0.2",
    Segment(40000, 80, 1000, 0, Flags.SYN, 64240, Options(mss=1460, wscale=7, sack_permitted=True)),
)
V4_DATA = Packet(
    "10.9.0.2",
    "10.9.0.1",
    Segment(80, 40000, 5000, 1001, Flags.ACK | Flags.PSH, 502, payload=b"hello"),
)
V6 = Packet("fd00::1", "fd00::2", Segment(40001, 443, 7, 9, Flags.FIN | Flags.ACK, 1000))


def _write(path, packets_with_ts) -> None:
    with PcapRecorder(path) as rec:
        for pkt, ts in packets_with_ts:
            rec.record(encode_packet(pkt), ts)


def test_pcap_global_header_is_classic_linktype_raw(tmp_path) -> None:
    p = tmp_path / "a.pcap"
    _write(p, [(V4, 1_700_000_000_123_456)])
    head = p.read_bytes()[:24]
    magic, major, minor, _tz, _sig, snaplen, link = struct.unpack("<IHHiIII", head)
    assert (magic, major, minor, snaplen, link) == (0xA1B2C3D4, 2, 4, 65535, LINKTYPE_RAW)


def test_scapy_reads_back_both_families_with_timestamps(tmp_path) -> None:
    p = tmp_path / "a.pcap"
    _write(p, [(V4, 1_700_000_000_123_456), (V4_DATA, 1_700_000_000_200_000),
               (V6, 1_700_000_001_000_000)])
    pkts = rdpcap(str(p))
    assert len(pkts) == 3
    a, b, c = pkts
    assert a.haslayer(IP) and a[IP].src == "10.9.0.1" and a[TCP].flags == "S"
    assert a[TCP].seq == 1000 and dict(a[TCP].options)["MSS"] == 1460
    assert bytes(b[TCP].payload) == b"hello" and b[TCP].flags == "PA"
    assert c.haslayer(IPv6) and c[IPv6].dst == "fd00::2" and c[TCP].flags == "FA"
    assert int(a.time * 1_000_000) in (1_700_000_000_123_455, 1_700_000_000_123_456)
    assert round(float(b.time) * 1_000_000) == 1_700_000_000_200_000


def test_read_pcap_round_trips_bytes_and_times(tmp_path) -> None:
    p = tmp_path / "a.pcap"
    raw = [encode_packet(V4), encode_packet(V6)]
    with PcapRecorder(p) as rec:
        rec.record(raw[0], 1_000_001)
        rec.record_packet(V6, 2_500_000)
        assert rec.count == 2
    link, frames = read_pcap(p)
    assert link == LINKTYPE_RAW
    assert frames == [(1_000_001, raw[0]), (2_500_000, raw[1])]


def test_snaplen_truncates_but_keeps_original_length(tmp_path) -> None:
    p = tmp_path / "a.pcap"
    data = encode_packet(V4_DATA)
    with PcapRecorder(p, snaplen=40) as rec:
        rec.record(data, 0)
    blob = p.read_bytes()
    _sec, _us, incl, orig = struct.unpack_from("<IIII", blob, 24)
    assert (incl, orig) == (40, len(data))
    assert len(blob) == 24 + 16 + 40


def test_record_after_close_is_ebadf(tmp_path) -> None:
    rec = PcapRecorder(tmp_path / "a.pcap")
    rec.close()
    with pytest.raises(OSError) as ei:
        rec.record(b"\x45", 0)
    assert ei.value.errno == 9


def test_tshark_opens_the_capture(tmp_path) -> None:
    p = tmp_path / "a.pcap"
    _write(p, [(V4, 1_000_000), (V4_DATA, 2_000_000), (V6, 3_000_000)])
    tshark = shutil.which("tshark")
    assert tshark is not None, "tshark is missing: scripts/quickstart installs it"
    out = subprocess.run(
        [tshark, "-r", str(p), "-T", "fields", "-e", "tcp.flags.str", "-e", "ip.src",
         "-e", "ipv6.src", "-e", "tcp.len"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()
    assert len(out) == 3
    fields = [line.split("\t") for line in out]
    assert fields[0][1] == "10.9.0.1" and fields[2][2] == "fd00::1"
    assert fields[1][3] == "5"
