"""TUN offload (IFF_VNET_HDR, TSO/GSO): the virtio-net header codec, and TunLink against a
real kernel with offload on and off (issue 8, "TUN offload")."""

from __future__ import annotations

import errno
import hashlib
import os
import selectors
import struct
import time

import pytest

from rawtcp.core.config import Config
from rawtcp.core.segment import ACK, CWR, FIN, NO_OPTIONS, PSH, SYN, Options, Packet, Segment
from rawtcp.lab import TunLab
from rawtcp.link import vnet
from rawtcp.link.tun import MAX_SEGMENT
from rawtcp.runtime import Stack
from rawtcp.wire import fast

TS = Options(timestamps=(1, 2))          # 12 option bytes: a 32-byte TCP header


def _pkt(src: str, dst: str, payload: bytes, flags: int = ACK | PSH,
         options: Options = NO_OPTIONS, seq: int = 1000, ack: int = 2000) -> bytes:
    return fast.encode_ip(Packet(src, dst, Segment(40000, 80, seq, ack, flags, 5000, options,
                                                   payload)))


def _ref_sum(data: bytes) -> int:
    """RFC 1071 one's-complement sum, word by word (the slow, obvious way)."""
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


# ------------------------------------------------------------------- codec (no kernel)


def test_header_roundtrip_is_ten_little_endian_bytes() -> None:
    h = vnet.VnetHeader(vnet.F_NEEDS_CSUM, vnet.GSO_TCPV6, 0x0102, 1428, 40, 16)
    raw = h.pack()
    assert len(raw) == vnet.HDR_LEN == 10
    assert raw == bytes([1, 4, 0x02, 0x01]) + struct.pack("<HHH", 1428, 40, 16)
    assert vnet.unpack(raw) == h
    assert vnet.ZERO == vnet.VnetHeader().pack()
    with pytest.raises(ValueError):
        vnet.unpack(raw[:9])
    with pytest.raises(ValueError):
        vnet.VnetHeader(gso_size=70000).pack()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 1459, 4095, 4096, 4097, 8193, 65001])
def test_ones_sum_equals_word_by_word_sum(size: int) -> None:
    data = os.urandom(size)
    assert vnet.ones_sum(data) == _ref_sum(data)
    assert vnet.ones_sum(bytes(size)) == 0
    assert vnet.ones_sum(b"\xff" * size) == _ref_sum(b"\xff" * size)


@pytest.mark.parametrize(("src", "dst"), [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")])
def test_completing_a_partial_checksum_gives_the_full_one(src: str, dst: str) -> None:
    """NEEDS_CSUM: the field holds the folded pseudo-header sum (RFC 9293 3.1); summing from
    csum_start and complementing gives the checksum the codec computes."""
    full = _pkt(src, dst, os.urandom(30001), options=TS)
    lay = vnet.layout(full)
    assert lay is not None and lay.proto == 6
    pos = lay.l4 + vnet.TCP_CSUM_OFFSET
    partial = vnet.pseudo_sum(lay, lay.end - lay.l4)
    buf = bytearray(b"H" * vnet.HDR_LEN + full)
    buf[vnet.HDR_LEN + pos:vnet.HDR_LEN + pos + 2] = partial.to_bytes(2, "big")
    assert bytes(buf[vnet.HDR_LEN:]) != full
    assert vnet.complete_checksum(buf, vnet.HDR_LEN, lay, lay.l4, vnet.TCP_CSUM_OFFSET)
    assert bytes(buf[vnet.HDR_LEN:]) == full
    fast.decode_ip(bytes(buf[vnet.HDR_LEN:]))              # verifies
    # offsets past the packet: refused, nothing written
    assert not vnet.complete_checksum(buf, vnet.HDR_LEN, lay, lay.end, 16)
    # a wrong field recomputed from scratch
    buf[vnet.HDR_LEN + pos] ^= 0x55
    vnet.full_tcp_checksum(buf, vnet.HDR_LEN, lay)
    assert bytes(buf[vnet.HDR_LEN:]) == full


def test_layout_walks_ipv6_extension_headers() -> None:
    plain = _pkt("fd00::1", "fd00::2", b"x" * 10)
    # insert a destination-options header (8 bytes: next header TCP, length 0, padding)
    ext = bytes([6, 0, 1, 4, 0, 0, 0, 0])
    v6 = bytearray(plain[:40] + ext + plain[40:])
    v6[6] = 60
    v6[4:6] = struct.pack("!H", len(v6) - 40)
    lay = vnet.layout(bytes(v6))
    assert lay is not None and (lay.proto, lay.l4, lay.end) == (6, 48, len(v6))
    assert vnet.layout(plain[:30]) is None
    assert vnet.layout(b"\x45" + bytes(30)) is None                 # total length 0
    frag = bytearray(_pkt("10.0.0.1", "10.0.0.2", b"y"))
    frag[6] |= 0x20                                                  # MF
    assert vnet.layout(bytes(frag)) is None


@pytest.mark.parametrize(("src", "dst", "iphl", "gso"),
                         [("10.0.0.1", "10.0.0.2", 20, vnet.GSO_TCPV4),
                          ("fd00::1", "fd00::2", 40, vnet.GSO_TCPV6)])
def test_gso_plan_for_a_large_segment(src: str, dst: str, iphl: int, gso: int) -> None:
    pkt = _pkt(src, dst, b"z" * 20000, options=TS)
    plan = vnet.gso_plan(pkt, 1500)
    h = vnet.unpack(plan.header)
    assert h == vnet.VnetHeader(vnet.F_NEEDS_CSUM, gso, iphl + 32, 1500 - iphl - 32, iphl, 16)
    assert plan.mss == h.gso_size and plan.csum_pos == iphl + 16
    lay = vnet.layout(pkt)
    assert lay is not None
    assert int.from_bytes(plan.partial, "big") == vnet.pseudo_sum(lay, len(pkt) - iphl)
    cwr = vnet.gso_plan(_pkt(src, dst, b"z" * 3000, flags=ACK | CWR), 1500)
    assert vnet.unpack(cwr.header).gso_type == gso | vnet.GSO_ECN


def test_gso_plan_refuses_what_cannot_be_split() -> None:
    with pytest.raises(OSError) as e:
        vnet.gso_plan(_pkt("10.0.0.1", "10.0.0.2", b"s" * 3000, flags=SYN), 1500)
    assert e.value.errno == errno.EMSGSIZE
    udp = bytearray(_pkt("10.0.0.1", "10.0.0.2", b"u" * 3000))
    udp[9] = 17
    with pytest.raises(OSError) as e:
        vnet.gso_plan(bytes(udp), 1500)
    assert e.value.errno == errno.EMSGSIZE
    with pytest.raises(OSError) as e:
        vnet.gso_plan(_pkt("10.0.0.1", "10.0.0.2", b"t" * 3000)[:2000], 1500)
    assert e.value.errno == errno.EINVAL


# ------------------------------------------------------------------- against a kernel


def _recording(link) -> list[int]:
    """Wrap link.recv_batch so the sizes of every packet it returns are kept."""
    sizes: list[int] = []
    inner = link.recv_batch

    def recv_batch() -> list[bytes]:
        got = inner()
        sizes.extend(len(p) for p in got)
        return got
    link.recv_batch = recv_batch
    return sizes


def _receive(lab: TunLab, link, nbytes: int, port: int, family: int) -> tuple[int, bool, Stack]:
    srv = lab.server("source", port=port, count=nbytes, pattern="offload-test", timeout=60)
    srv.wait_ready()
    with Stack(link, Config()) as st:
        s = st.socket(family)
        s.settimeout(30)
        s.connect((lab.kernel_addr, port))
        h, n = hashlib.sha256(), 0
        while data := s.recv(1 << 20):
            h.update(data)
            n += len(data)
        s.close()
    sent = srv.wait_event("sent", 30)
    return n, n == sent["bytes"] and h.hexdigest() == sent["sha256"], st


@pytest.mark.kernel
@pytest.mark.parametrize("complete", [True, False])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_offload_receive_gets_super_segments_with_valid_checksums(family: str,
                                                                   complete: bool) -> None:
    """20 MB from a kernel source over an offload TUN: the kernel hands over TSO
    super-segments larger than the MTU with partial checksums (NEEDS_CSUM); the link
    completes them when asked (complete_checksums) or passes them as the kernel's own
    (the default: they never crossed a wire), and every byte arrives."""
    import socket
    with TunLab(family=family) as lab:
        link = lab.open_link(offload=True)
        assert link.offload and link.max_segment == MAX_SEGMENT and link.vnet_hdr_len == 10
        assert link.complete_checksums is False
        link.complete_checksums = complete
        sizes = _recording(link)
        fam = socket.AF_INET6 if family == "ipv6" else socket.AF_INET
        n, ok, st = _receive(lab, link, 20_000_000, 7101, fam)
        assert n == 20_000_000 and ok
        assert link.counters["gro_packets"] > 0 and link.counters["gro_bytes"] > 0
        assert max(sizes) > link.mtu
        if complete:
            assert link.counters["csum_completed"] > 0 and not link.counters["csum_partial"]
        else:
            assert link.counters["csum_partial"] > 0 and not link.counters["csum_completed"]
        assert st.counters["dropped_malformed"] == 0
        assert link.counters["dropped_malformed"] == 0


@pytest.mark.kernel
def test_offload_off_behaves_as_before() -> None:
    """Without offload no packet read exceeds the MTU, no header is involved, and send()
    refuses a packet over the MTU."""
    import socket
    with TunLab(family="ipv4") as lab:
        link = lab.open_link()
        assert not link.offload and link.max_segment == link.mtu and link.vnet_hdr_len == 0
        assert link.describe()["offload"] is False
        sizes = _recording(link)
        n, ok, st = _receive(lab, link, 2_000_000, 7102, socket.AF_INET)
        assert n == 2_000_000 and ok
        assert sizes and max(sizes) <= link.mtu
        assert not any(k.startswith(("gro_", "gso_", "csum_")) for k in link.counters)
    with TunLab(family="ipv4") as lab:
        link = lab.open_link()
        with pytest.raises(OSError) as e:
            link.send(_pkt(lab.rawtcp_addr, lab.kernel_addr, b"b" * 3000))
        assert e.value.errno == errno.EMSGSIZE and "offload" in str(e.value)


@pytest.mark.kernel
def test_offload_send_size_limit() -> None:
    with TunLab(family="ipv4") as lab:
        link = lab.open_link(offload=True)
        assert link.describe()["offload"] is True
        too_big = bytearray(MAX_SEGMENT + 1)
        too_big[0] = 0x45
        with pytest.raises(OSError) as e:
            link.send(bytes(too_big))
        assert e.value.errno == errno.EMSGSIZE
        with pytest.raises(OSError) as e:        # over the MTU but not TCP: cannot be split
            link.send(bytes([0x45]) + bytes(2999))
        assert e.value.errno in (errno.EINVAL, errno.EMSGSIZE)
        assert link.counters["gso_packets"] == 0


def _read_until(link, pred, timeout: float = 10.0) -> Packet:
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(link, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            sel.select(max(0.0, deadline - time.monotonic()))
            for raw in link.recv_batch():
                p = fast.decode_ip(raw)        # verifies the (completed) checksums
                if pred(p):
                    return p
    raise AssertionError("no matching packet from the kernel")


@pytest.mark.kernel
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_offload_send_one_large_segment_reaches_the_kernel_socket(family: str) -> None:
    """A handshake driven by hand (RFC 9293 3.5), then ONE 20,000-byte TCP segment written
    with send(): the kernel splits it (GSO) and its socket reads all 20,000 bytes."""
    with TunLab(family=family) as lab:
        link = lab.open_link(offload=True)
        link.complete_checksums = True           # so _read_until can verify what arrives
        me, peer, port, sport = lab.rawtcp_addr, lab.kernel_addr, 7103, 41000
        srv = lab.server("sink", port=port, timeout=30)
        srv.wait_ready()
        iss = 0x10000000

        def out(seq: int, ack: int, flags: int, payload: bytes = b"",
                options: Options = NO_OPTIONS) -> None:
            link.send(fast.encode_ip(Packet(me, peer, Segment(sport, port, seq, ack, flags,
                                                              65535, options, payload))))

        out(iss, 0, SYN, options=Options(mss=link.mtu - 60))
        synack = _read_until(link, lambda p: p.segment.flags & (SYN | ACK) == SYN | ACK
                             and p.segment.dst_port == sport)
        rcv = (synack.segment.seq + 1) & 0xFFFFFFFF
        assert synack.segment.ack == iss + 1
        window = synack.segment.window                  # unscaled: we sent no wscale
        payload = hashlib.sha256(b"gso").digest() * 625  # 20,000 bytes
        assert window >= len(payload)
        out(iss + 1, rcv, ACK)
        out(iss + 1, rcv, ACK | PSH, payload)
        assert link.counters["gso_packets"] == 1
        assert link.counters["gso_bytes"] > link.mtu
        end = iss + 1 + len(payload)
        _read_until(link, lambda p: p.segment.dst_port == sport and p.segment.ack == end)
        out(end, rcv, ACK | FIN)
        eof = srv.wait_event("eof", 15)
        assert eof["bytes"] == len(payload)
        assert eof["sha256"] == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize(("src", "dst"), [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")])
def test_checksums_ok_verifies_ip_header_and_tcp(src: str, dst: str) -> None:
    """What the link checks itself for packets the kernel flagged neither NEEDS_CSUM nor
    DATA_VALID (RFC 9293 3.1 TCP checksum, RFC 791 3.1 header checksum)."""
    good = _pkt(src, dst, os.urandom(5001), options=TS)
    lay = vnet.layout(good)
    assert lay is not None and vnet.checksums_ok(good, lay)
    bad_tcp = bytearray(good)
    bad_tcp[-1] ^= 0x01
    assert not vnet.checksums_ok(bytes(bad_tcp), lay)
    if src.count(".") == 3:
        bad_ip = bytearray(good)
        bad_ip[8] ^= 0x01                                     # TTL, under the header sum
        assert not vnet.checksums_ok(bytes(bad_ip), lay)
