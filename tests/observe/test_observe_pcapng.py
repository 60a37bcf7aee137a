"""Ladders from the capture formats other tools write: pcapng (tshark's and Wireshark's
default), Ethernet and Linux cooked link types, big-endian and nanosecond pcap files; and
the errors a wrong ``--ours`` or an empty capture give."""

from __future__ import annotations

import errno
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether
from scapy.packet import Packet as ScapyPacket
from scapy.utils import PcapNgWriter, PcapWriter

from rawtcp.core.segment import Packet, Segment, parse_flags
from rawtcp.report.captures import is_capture, read_capture, read_pcap
from rawtcp.report.ladder import ladder_from_pcap, render_ladder
from rawtcp.trace import PcapRecorder, encode_packet

from .ladder_fixture import trace

SEGS = [e for e in trace() if e["ev"] == "seg"]  # handshake, data, close, the FIN again


def _ip(e: dict) -> bytes:
    s = Segment(e["sport"], e["dport"], e["seq"], e["ack"], parse_flags(e["flags"]), e["win"],
                payload=b"z" * e["len"])
    return encode_packet(Packet(e["src"], e["dst"], s))


def _raw_pcap(path: Path) -> Path:
    with PcapRecorder(path) as rec:
        for e in SEGS:
            rec.record(_ip(e), e["t"])
    return path


def _framed(frame: str) -> list[ScapyPacket]:
    out = []
    for e in SEGS:
        ip = IP(_ip(e))
        if frame == "ether":
            p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip
        elif frame == "vlan":
            p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=7) / ip
        elif frame == "sll":
            p = CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02" * 6) / ip
        else:
            p = CookedLinuxV2(proto=0x0800, ifindex=2, lladdrtype=1, lladdrlen=6,
                              src=b"\x02" * 6) / ip
        p.time = e["t"] / 1_000_000
        out.append(p)
    return out


def _want() -> str:
    return render_ladder(SEGS)


@pytest.mark.parametrize("frame", ["ether", "vlan", "sll", "sll2"])
def test_pcapng_from_scapy_with_each_link_type(tmp_path, frame) -> None:
    """A pcapng (magic 0x0A0D0D0A) holding the handshake and close, framed as Ethernet (with
    and without an 802.1Q tag), Linux cooked v1 (113) and v2 (276): same ladder as the trace."""
    p = tmp_path / f"{frame}.pcapng"
    w = PcapNgWriter(str(p))
    for pkt in _framed(frame):
        w.write(pkt)
    w.close()
    assert p.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert is_capture(p)
    got = ladder_from_pcap(p)
    assert got == _want()
    assert " S seq=0 len=0 " in got and "SA seq=0 ack=1 len=0" in got
    # Ethernet frames under 60 bytes carry padding: not counted as payload
    assert "len=6" not in got


@pytest.mark.parametrize("frame", ["ether", "sll"])
def test_classic_pcap_with_ethernet_and_cooked_link_types(tmp_path, frame) -> None:
    p = tmp_path / f"{frame}.pcap"
    w = PcapWriter(str(p))
    for pkt in _framed(frame):
        w.write(pkt)
    w.close()
    assert read_capture(p)[0][1] == (1 if frame == "ether" else 113)
    assert ladder_from_pcap(p) == _want()


def test_tshark_pcapng_with_nanosecond_timestamps(tmp_path) -> None:
    """tshark -F pcapng turns one of our pcaps into the format Wireshark writes by default;
    a nanosecond classic pcap becomes a pcapng with if_tsresol=9."""
    tshark = shutil.which("tshark")
    assert tshark, "tshark is part of the test environment (apt install tshark)"
    raw = _raw_pcap(tmp_path / "ours.pcap")
    ng = tmp_path / "ours.pcapng"
    subprocess.run([tshark, "-r", str(raw), "-F", "pcapng", "-w", str(ng)], check=True,
                   capture_output=True, timeout=60)
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert ladder_from_pcap(ng) == ladder_from_pcap(raw) == _want()

    nano = tmp_path / "nano.pcap"
    w = PcapWriter(str(nano), linktype=1, nano=True)
    for pkt in _framed("ether"):
        w.write(pkt)
    w.close()
    ngn = tmp_path / "nano.pcapng"
    subprocess.run([tshark, "-r", str(nano), "-F", "pcapng", "-w", str(ngn)], check=True,
                   capture_output=True, timeout=60)
    assert [t for t, _lt, _f in read_capture(ngn)] == [e["t"] for e in SEGS]
    assert ladder_from_pcap(nano) == ladder_from_pcap(ngn) == _want()


def test_big_endian_classic_pcap(tmp_path) -> None:
    linktype, recs = read_pcap(_raw_pcap(tmp_path / "le.pcap"))
    be = tmp_path / "be.pcap"
    with open(be, "wb") as f:
        f.write(struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for ts, data in recs:
            f.write(struct.pack(">IIII", ts // 1_000_000, ts % 1_000_000, len(data), len(data)))
            f.write(data)
    assert be.read_bytes()[:4] == b"\xa1\xb2\xc3\xd4"
    assert is_capture(be)
    assert ladder_from_pcap(be) == _want()


def test_truncated_pcapng_keeps_what_came_before(tmp_path) -> None:
    p = tmp_path / "cut.pcapng"
    w = PcapNgWriter(str(p))
    for pkt in _framed("ether"):
        w.write(pkt)
    w.close()
    cut = tmp_path / "cut2.pcapng"
    cut.write_bytes(p.read_bytes()[:-30])  # the last block cut short
    assert len(read_capture(cut)) == len(SEGS) - 1
    assert ladder_from_pcap(cut) == render_ladder(SEGS[:-1])


def test_is_capture(tmp_path) -> None:
    raw = _raw_pcap(tmp_path / "a.pcap")
    ng = tmp_path / "a.pcapng"
    w = PcapNgWriter(str(ng))
    w.write(_framed("ether")[0])
    w.close()
    nano = tmp_path / "n.pcap"
    w2 = PcapWriter(str(nano), linktype=1, nano=True)
    w2.write(_framed("ether")[0])
    w2.close()
    assert nano.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    assert is_capture(raw) and is_capture(ng) and is_capture(nano)
    jl = tmp_path / "t.jsonl"
    jl.write_text(json.dumps(SEGS[0]) + "\n")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    fake_ng = tmp_path / "fake.pcapng"  # the block type alone, no byte-order magic
    fake_ng.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 20)
    for p in (jl, empty, fake_ng, tmp_path / "missing"):
        assert not is_capture(p), p
    with pytest.raises(OSError) as ei:
        ladder_from_pcap(jl)
    assert ei.value.errno == errno.EINVAL and "pcapng" in str(ei.value)


# ---------------------------------------------------------------------------------------------
# --ours that matches nothing, a bad --ours, a capture without TCP
# ---------------------------------------------------------------------------------------------


def test_our_address_in_no_packet_is_an_error_that_lists_the_addresses(tmp_path) -> None:
    p = _raw_pcap(tmp_path / "c.pcap")
    with pytest.raises(OSError) as ei:
        ladder_from_pcap(p, our_addr="1.2.3.4")
    assert ei.value.errno == errno.EINVAL
    assert str(ei.value.strerror) == (
        f"no TCP segments from or to 1.2.3.4 in {p} (addresses in it: 10.7.0.1, 10.7.0.2)")
    with pytest.raises(OSError) as ei:   # the address is there, the port is not
        ladder_from_pcap(p, our_addr="10.7.0.1:9")
    assert "10.7.0.1:40000" in str(ei.value) and "10.7.0.2:80" in str(ei.value)
    # the right address with its port still works
    assert ladder_from_pcap(p, our_addr="10.7.0.1:40000") == _want()


@pytest.mark.parametrize("bad", ["notanip", "1.2.3.4:http", "1.2.3.4:70000", "[fd00::1]x", ""])
def test_bad_our_address(tmp_path, bad) -> None:
    p = _raw_pcap(tmp_path / "c.pcap")
    with pytest.raises(OSError) as ei:
        ladder_from_pcap(p, our_addr=bad)
    assert ei.value.errno == errno.EINVAL
    assert f"our address {bad!r} is not an IP address (or address:port)" in str(ei.value)


def test_v6_address_in_brackets_without_port(tmp_path) -> None:
    p = tmp_path / "6.pcap"
    with PcapRecorder(p) as rec:
        for e in SEGS:
            m = {"10.7.0.1": "fd00::1", "10.7.0.2": "fd00::2"}
            s = Segment(e["sport"], e["dport"], e["seq"], e["ack"], parse_flags(e["flags"]),
                        e["win"], payload=b"z" * e["len"])
            rec.record(encode_packet(Packet(m[e["src"]], m[e["dst"]], s)), e["t"])
    assert ladder_from_pcap(p, our_addr="[fd00::2]") == ladder_from_pcap(p, our_addr="fd00::2")


def test_a_capture_without_tcp_is_an_error(tmp_path) -> None:
    """Neither TCP nor UDP (here GRE): nothing to draw (UDP is drawn: test_pcap_udp_ladder)."""
    p = tmp_path / "gre.pcap"
    with PcapRecorder(p) as rec:
        rec.record(bytes(IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / (b"\0" * 8)), 0)
    with pytest.raises(OSError) as ei:
        ladder_from_pcap(p)
    assert ei.value.errno == errno.EINVAL and "no TCP segments" in str(ei.value)
    with pytest.raises(OSError) as ei:
        ladder_from_pcap(p, our_addr="10.0.0.1")
    assert "addresses in it: none" in str(ei.value)

