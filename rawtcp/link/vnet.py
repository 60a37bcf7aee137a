"""The virtio-net header that a TUN device with ``IFF_VNET_HDR`` puts before every packet.

Linux's ``struct virtio_net_hdr`` (include/uapi/linux/virtio_net.h), 10 bytes::

    u8  flags        NEEDS_CSUM (1): the transport checksum is partial, complete it from
                     csum_start; DATA_VALID (2): the checksum was already verified
    u8  gso_type     NONE (0), TCPV4 (1), UDP (3), TCPV6 (4), UDP_L4 (5); | ECN (0x80)
    u16 hdr_len      bytes of headers (IP + TCP) before the payload
    u16 gso_size     payload bytes per segment when the packet is split (the MSS)
    u16 csum_start   where checksumming starts (here: the TCP header, counted from the IP
                     header: a TUN device has no link-layer header)
    u16 csum_offset  where the checksum goes, counted from csum_start (16 for TCP)

rawtcp uses the 10-byte form (``TUNSETVNETHDRSZ`` 10; the 12-byte form adds ``num_buffers``,
meaningful only to a virtio driver merging receive buffers) and sets ``TUNSETVNETLE`` so the
16-bit fields are little-endian on every host.

Checksums (RFC 1071): "partial" is what Linux leaves in the TCP checksum field of a packet
marked NEEDS_CSUM: the folded pseudo-header sum (addresses, protocol, TCP length), *not*
complemented. Completing it is the one's-complement sum of everything from csum_start to the
end of the IP payload (the partial field included), complemented, stored in the field.
A buffer read as one big-endian integer is congruent to its one's-complement sum of 16-bit
words modulo 0xffff, so each sum is one ``int.from_bytes`` and one ``%``.

Nothing here imports the wire codec (the link layer sits below it).
"""

from __future__ import annotations

import errno
import struct
from typing import NamedTuple

HDR_LEN = 10

F_NEEDS_CSUM = 0x01
F_DATA_VALID = 0x02
F_RSC_INFO = 0x04

GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80

TCP_CSUM_OFFSET = 16       # offsetof(struct tcphdr, check)
UDP_CSUM_OFFSET = 6
PROTO_TCP = 6
PROTO_UDP = 17
IPV6_EXTENSIONS = (0, 43, 60)   # hop-by-hop, routing, destination options
MAX_IP_PACKET = 40 + 65535      # an IPv6 header and the largest payload length

HEADER = struct.Struct("<BBHHHH")
_H = struct.Struct("!H")
ZERO = bytes(HDR_LEN)          # gso NONE, no flags: a complete packet the kernel verifies


class VnetHeader(NamedTuple):
    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    def pack(self) -> bytes:
        try:
            return HEADER.pack(*self)
        except struct.error as e:
            raise ValueError(f"virtio-net header field out of range: {e}") from None

    @property
    def gso(self) -> int:
        """The GSO kind without the ECN bit."""
        return self.gso_type & ~GSO_ECN


def unpack(buf: bytes | bytearray | memoryview) -> VnetHeader:
    """The header at the start of ``buf`` (ValueError when shorter than HDR_LEN)."""
    if len(buf) < HDR_LEN:
        raise ValueError(f"virtio-net header needs {HDR_LEN} bytes, got {len(buf)}")
    return VnetHeader(*HEADER.unpack_from(buf))


# ------------------------------------------------------------------------- IP headers


class Layout(NamedTuple):
    """Where things are in one IP packet: the transport header's offset and protocol, the
    end of the IP payload, the packed addresses (for the pseudo-header)."""

    proto: int
    l4: int
    end: int
    addrs: bytes


def layout(pkt: bytes | bytearray | memoryview) -> Layout | None:
    """Walk the IPv4 header or the IPv6 header chain; None when malformed (or a fragment)."""
    n = len(pkt)
    if n < 20:
        return None
    v = pkt[0] >> 4
    if v == 4:
        ihl = (pkt[0] & 0x0F) << 2
        total = _H.unpack_from(pkt, 2)[0]
        if ihl < 20 or not ihl <= total <= n:
            return None
        if _H.unpack_from(pkt, 6)[0] & 0x3FFF:       # MF or a fragment offset
            return None
        return Layout(pkt[9], ihl, total, bytes(pkt[12:20]))
    if v == 6 and n >= 40:
        end = 40 + _H.unpack_from(pkt, 4)[0]
        if end > n:
            return None
        nh, i = pkt[6], 40
        while nh in IPV6_EXTENSIONS:
            if i + 2 > end:
                return None
            nxt, hlen = pkt[i], (pkt[i + 1] + 1) << 3
            nh, i = nxt, i + hlen
        if i > end:
            return None
        return Layout(nh, i, end, bytes(pkt[8:40]))
    return None


# ------------------------------------------------------------------------- checksums


_CHUNK = 4096   # even: every chunk starts at a 16-bit word boundary


def ones_sum(data: bytes | bytearray | memoryview) -> int:
    """The one's-complement sum of ``data`` as 16-bit big-endian words, folded to 1..0xffff
    (0 only for all-zero data).

    Large buffers are read as 4 KiB integers that are added before one ``%``: each chunk is
    congruent to its words' sum (2**16 == 1 mod 0xffff), and the modulo of a 64 KB integer
    (a hardware division per 30-bit digit) costs more than reading it."""
    size = len(data)
    fb = int.from_bytes
    if size <= _CHUNK:
        n = fb(data, "big")
        if size & 1:         # an odd last byte is the high half of a word
            n <<= 8
        return n % 0xFFFF or (0xFFFF if n else 0)
    last = size - (size % _CHUNK or _CHUNK)
    n = 0
    for i in range(0, last, _CHUNK):
        n += fb(data[i:i + _CHUNK], "big")
    t = fb(data[last:], "big")
    n += t << 8 if size & 1 else t
    r = n % 0xFFFF
    return 0xFFFF if r == 0 and n else r


def pseudo_sum(lay: Layout, length: int) -> int:
    """Folded pseudo-header sum for a transport segment of ``length`` bytes (RFC 9293 3.1,
    RFC 8200 8.1). What Linux stores in the checksum field with NEEDS_CSUM."""
    n = int.from_bytes(lay.addrs, "big") + lay.proto + length
    return n % 0xFFFF or 0xFFFF


def complete_checksum(buf: bytearray | memoryview, base: int, lay: Layout, csum_start: int,
                      csum_offset: int) -> bool:
    """Finish a NEEDS_CSUM packet in place: the IP packet starts at ``buf[base]``; sum from
    csum_start to the end of the IP payload, store the complement at csum_start+csum_offset.
    False (nothing written) when the offsets do not fit in the packet."""
    pos = csum_start + csum_offset
    if csum_start < 20 or pos + 2 > lay.end:
        return False
    c = 0xFFFF - ones_sum(memoryview(buf)[base + csum_start:base + lay.end])
    if c == 0 and lay.proto == PROTO_UDP:
        c = 0xFFFF                        # RFC 768: 0 means "no checksum"
    buf[base + pos] = c >> 8
    buf[base + pos + 1] = c & 0xFF
    return True


def full_tcp_checksum(buf: bytearray | memoryview, base: int, lay: Layout) -> None:
    """Recompute the TCP checksum of the packet at ``buf[base]`` from scratch, in place."""
    pos = base + lay.l4 + TCP_CSUM_OFFSET
    buf[pos] = buf[pos + 1] = 0
    seg = memoryview(buf)[base + lay.l4:base + lay.end]
    total = ones_sum(seg) + pseudo_sum(lay, len(seg))
    c = 0xFFFF - (total % 0xFFFF or 0xFFFF)
    buf[pos] = c >> 8
    buf[pos + 1] = c & 0xFF


def checksums_ok(pkt: bytes | bytearray | memoryview, lay: Layout) -> bool:
    """Do the IPv4 header checksum (if IPv4) and the transport checksum verify?"""
    if pkt[0] >> 4 == 4 and ones_sum(pkt[:lay.l4]) != 0xFFFF:
        return False
    seg = pkt[lay.l4:lay.end]
    return (ones_sum(seg) + pseudo_sum(lay, len(seg))) % 0xFFFF == 0


# ------------------------------------------------------------------------- sending


class Plan(NamedTuple):
    """How to write one large TCP packet: the header, and the 2 bytes to put in place of
    the TCP checksum (at ``csum_pos`` in the IP packet)."""

    header: bytes
    csum_pos: int
    partial: bytes
    mss: int


def gso_plan(pkt: bytes | bytearray | memoryview, mtu: int) -> Plan:
    """The virtio-net header for a TCP packet larger than ``mtu``: the kernel splits it into
    segments of ``mss = mtu - IP header - TCP header`` payload bytes each (GSO) and
    completes each segment's checksum from the partial one.

    OSError(EINVAL) when the packet is not one TCP segment that can be split this way
    (malformed, not TCP, a SYN, headers leaving no room for payload under the MTU)."""
    lay = layout(pkt)
    if lay is None:
        raise OSError(errno.EINVAL, "send(): a packet larger than the MTU must be a whole "
                      "IPv4/IPv6 packet whose length fields agree with its size")
    if lay.proto != PROTO_TCP or lay.l4 + 20 > lay.end:
        raise OSError(errno.EMSGSIZE, f"send(): only TCP segments may exceed the MTU {mtu} "
                      f"(the kernel splits them); this one carries protocol {lay.proto}")
    tcp = lay.l4
    thl = (pkt[tcp + 12] >> 4) << 2
    flags = pkt[tcp + 13]
    if thl < 20 or tcp + thl > lay.end:
        raise OSError(errno.EINVAL, "send(): TCP header length does not fit the packet")
    if flags & 0x02:
        raise OSError(errno.EMSGSIZE, "send(): a SYN segment cannot exceed the MTU")
    hdr_len = tcp + thl
    mss = mtu - hdr_len
    if mss <= 0:
        raise OSError(errno.EMSGSIZE, f"send(): headers of {hdr_len} bytes leave no payload "
                      f"under the MTU {mtu}")
    v4 = pkt[0] >> 4 == 4
    gso = GSO_TCPV4 if v4 else GSO_TCPV6
    if flags & 0x80:                     # CWR: the kernel puts it on the first segment only
        gso |= GSO_ECN
    header = VnetHeader(F_NEEDS_CSUM, gso, hdr_len, mss, tcp, TCP_CSUM_OFFSET).pack()
    partial = pseudo_sum(lay, lay.end - tcp)
    return Plan(header, tcp + TCP_CSUM_OFFSET, _H.pack(partial), mss)
