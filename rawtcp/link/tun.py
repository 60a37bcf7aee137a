"""TunLink: a TUN device; rawtcp is the far end of a point-to-point link to the kernel.

The kernel side of the device gets `kernel_addresses` (host routes /32, /128) plus a route to
each of rawtcp's `addresses` through the device, so the kernel sends packets for rawtcp into
the TUN fd and reads what rawtcp writes. IPv6 addresses are added with `nodad` (no duplicate
address detection, usable at once) and the device has `addrgenmode none`, so the kernel
makes no link-local address and sends no router solicitations or MLD reports on it.

Without offload (the default) the device has no IFF_VNET_HDR: the kernel segments and
checksums everything itself, every packet read has complete checksums and is at most `mtu`
bytes, and `send()` takes packets of at most `mtu` bytes: per-segment realism.

With `offload=True` the device is opened with IFF_VNET_HDR (a 10-byte virtio-net header
before every packet, rawtcp.link.vnet), TUNSETVNETLE and TUNSETOFFLOAD CSUM|TSO4|TSO6:

- receive: the kernel may hand over TCP super-segments of up to 64 KB (its TSO output, as a
  NIC's GRO would merge them) and leaves TCP checksums partial (NEEDS_CSUM). `recv_batch()`
  completes those checksums and strips the header: it still returns plain IP packets with
  valid checksums, only larger. Counted: `gro_packets`, `gro_bytes`, `csum_completed`.
- send: `send()` takes IP packets of up to 65535 bytes (`max_segment`). A TCP packet larger
  than the MTU leaves with gso_type TCPV4/TCPV6, gso_size = MTU - IP header - TCP header,
  NEEDS_CSUM and the pseudo-header sum in its checksum field: the kernel splits it into
  MTU-sized segments (GSO). Smaller packets go with a zero header (the kernel verifies their
  checksums as usual). Counted: `gso_packets`, `gso_bytes`.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import secrets
import select
import struct

from rawtcp.host.netns import in_netns, ip_cmd
from rawtcp.host.system import run
from rawtcp.link import vnet
from rawtcp.link.base import Link
from rawtcp.link.inet import well_formed

TUNSETIFF = 0x400454CA        # _IOW('T', 202, int)
TUNSETOFFLOAD = 0x400454D0    # _IOW('T', 208, unsigned int)
TUNSETVNETHDRSZ = 0x400454D8  # _IOW('T', 216, int)
TUNSETVNETLE = 0x400454DC     # _IOW('T', 220, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
MAX_BATCH = 512
MAX_SEGMENT = 65535           # the largest IP packet send() takes with offload
#: The kernel's queue of packets waiting for rawtcp to read the device (txqueuelen; the
#: default 500 dropped a client's SYN behind a 5,000-SYN burst before rawtcp saw it: a
#: userspace stack drains in bursts, a NIC ring holds thousands)
TX_QUEUE = 10_000
RECV_SIZE = vnet.HDR_LEN + vnet.MAX_IP_PACKET


def _canon(a: str) -> str:
    return str(ipaddress.ip_address(a))


class TunLink(Link):
    """A TUN device created in network namespace `netns` (None: the current one).

    Args:
      addresses:        rawtcp's own addresses (v4 and/or v6); the kernel routes them here.
      kernel_addresses: addresses the kernel side gets on the device (one per family used).
      name:             device name (<= 15 chars); default "rt" + random hex.
      netns:            network namespace name (`ip netns`), None for the current one.
      mtu:              device MTU, also the largest packet `send()` accepts.
      configure:        False: only create the device, leave addresses/routes/up to the caller.
      offload:          True: IFF_VNET_HDR with TSO/checksum offload (module docstring):
                        super-segments in, packets up to `max_segment` out.

    Attributes (besides Link's): offload, max_segment (largest IP packet `send()` takes:
    65535 with offload, else mtu), vnet_hdr_len (10 with offload, else 0).
    """

    def __init__(self, addresses: list[str], kernel_addresses: list[str] | None = None,
                 name: str | None = None, netns: str | None = None, mtu: int = 1500,
                 configure: bool = True, offload: bool = False) -> None:
        from rawtcp.host import privileges

        privileges.check(need_tun=True)
        name = name or "rt" + secrets.token_hex(4) + "t"
        if len(name) > 15:
            raise OSError(errno.EINVAL, f"interface name {name!r} is longer than 15 characters")
        super().__init__(name, mtu, [_canon(a) for a in addresses])
        self.kernel_addresses = [_canon(a) for a in (kernel_addresses or [])]
        self.netns = netns
        self.offload = bool(offload)
        self.max_segment = MAX_SEGMENT if self.offload else mtu
        self.vnet_hdr_len = vnet.HDR_LEN if self.offload else 0
        #: True: every TCP packet recv_batch() returns has checksums known to be valid
        #: (completed here, verified by the kernel, or verified here), so a caller may
        #: decode without verifying them again (wire.decode_ip(raw, verify=False))
        self.rx_verified = self.offload
        #: Complete the partial checksums of packets the local kernel hands over unfinished
        #: (NEEDS_CSUM) and recompute those of merged packets. Off by default: such packets
        #: never crossed a wire (Linux itself does not check them), and summing 64 KB costs
        #: ~0.2 ms in Python, the largest cost of an offload receive. Off, the pcap shows
        #: them with the partial sum, as tcpdump does on a host with offload.
        self.complete_checksums = False
        with in_netns(netns):
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if self.offload else 0)
            ifr = struct.pack("16sH22x", name.encode(), flags)
            try:
                fcntl.ioctl(fd, TUNSETIFF, ifr)
            except OSError as e:
                raise OSError(e.errno, f"cannot create TUN device {name!r}: {e.strerror} "
                              "(needs CAP_NET_ADMIN; is the name already used?)") from None
            self._fd = fd
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            self._ready = poller.poll     # poll(0): [] when nothing waits (recv_batch)
            if self.offload:
                self._setup_offload()
            if configure:
                self._configure()
        except BaseException:
            os.close(fd)
            raise

    def _setup_offload(self) -> None:
        fd = self._fd
        # the first two take a pointer to an int, TUNSETOFFLOAD takes the value itself
        steps = ((TUNSETVNETHDRSZ, struct.pack("i", vnet.HDR_LEN), "TUNSETVNETHDRSZ"),
                 (TUNSETVNETLE, struct.pack("i", 1), "TUNSETVNETLE"),
                 (TUNSETOFFLOAD, OFFLOADS, "TUNSETOFFLOAD"))
        for req, arg, what in steps:
            try:
                fcntl.ioctl(fd, req, arg)
            except OSError as e:
                raise OSError(e.errno, f"TUN offload: {what} failed on {self.name!r}: "
                              f"{e.strerror} (this kernel's TUN driver lacks it; open the "
                              "link with offload=False)") from None
        self._rbuf = bytearray(RECV_SIZE)
        self._rview = memoryview(self._rbuf)

    def describe(self) -> dict[str, object]:
        """What this link is, for traces and pcap comments."""
        return {"kind": "tun", "name": self.name, "mtu": self.mtu, "netns": self.netns,
                "offload": self.offload, "max_segment": self.max_segment,
                "vnet_hdr_len": self.vnet_hdr_len, "rx_verified": self.rx_verified,
                "offloads": "csum,tso4,tso6" if self.offload else ""}

    def _configure(self) -> None:
        ip = ip_cmd(self.netns)
        run(ip + ["link", "set", "dev", self.name, "addrgenmode", "none"])
        run(ip + ["link", "set", "dev", self.name, "mtu", str(self.mtu), "txqueuelen",
                  str(TX_QUEUE), "up"])
        for k in self.kernel_addresses:
            if ":" in k:
                run(ip + ["-6", "addr", "add", f"{k}/128", "dev", self.name, "nodad"])
            else:
                run(ip + ["addr", "add", f"{k}/32", "dev", self.name])
        for a in self.addresses:
            fam = "-6" if ":" in a else "-4"
            plen = 128 if ":" in a else 32
            src = [k for k in self.kernel_addresses if (":" in k) == (":" in a)]
            run(ip + [fam, "route", "add", f"{a}/{plen}", "dev", self.name]
                + (["src", src[0]] if src else []))

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def recv_batch(self) -> list[bytes]:
        if self._closed:          # _check_open without the call (per batch, on the hot path)
            self._check_open()
        if self.offload:
            return self._recv_offload()
        # A read of an empty device raises BlockingIOError, which costs about three times
        # a poll(0) (the exception and its message): the first three reads of a batch (a
        # handshake, a request and its answer) ask poll whether there is more; in a longer
        # batch the rest is read until the device is empty.
        out: list[bytes] = []
        fd, ready = self._fd, self._ready
        if not ready(0):
            return out
        for i in range(MAX_BATCH):
            if 0 < i < 3 and not ready(0):
                break
            try:
                pkt = os.read(fd, 65536)
            except BlockingIOError:
                break
            if well_formed(pkt):
                out.append(pkt)
            else:
                self.counters["dropped_malformed"] += 1
        self.counters["rx_packets"] += len(out)
        return out

    def _recv_offload(self) -> list[bytes]:
        """Read packets with their virtio-net header; complete partial checksums in place in
        the read buffer, verify unflagged TCP packets, then copy out the IP packet (one copy
        per packet)."""
        out: list[bytes] = []
        fd, buf, view = self._fd, self._rbuf, self._rview
        counters = self.counters
        hl = vnet.HDR_LEN
        unpack = vnet.HEADER.unpack_from
        readv = os.readv
        for _ in range(MAX_BATCH):
            try:
                n = readv(fd, (buf,))
            except BlockingIOError:
                break
            if n < hl + 20:
                counters["dropped_malformed"] += 1
                continue
            flags, gso, _hlen, _size, cstart, coff = unpack(buf)
            pkt = view[hl:n]
            if flags == vnet.F_DATA_VALID and not gso:     # verified by the kernel
                if well_formed(pkt):
                    out.append(bytes(pkt))
                else:
                    counters["dropped_malformed"] += 1
                continue
            lay = vnet.layout(pkt)
            if lay is None:
                counters["dropped_malformed"] += 1
                continue
            if flags & vnet.F_NEEDS_CSUM:
                if cstart < 20 or cstart + coff + 2 > lay.end:
                    counters["dropped_bad_vnet_header"] += 1
                    continue
                if self.complete_checksums:
                    vnet.complete_checksum(buf, hl, lay, cstart, coff)
                    counters["csum_completed"] += 1
                else:
                    counters["csum_partial"] += 1
            elif lay.proto != vnet.PROTO_TCP or lay.l4 + 20 > lay.end:
                pass                             # not ours to check: the stack ignores it
            elif flags & vnet.F_DATA_VALID:
                # a merged packet the kernel vouched for: its checksum field is not the
                # merged packet's; recompute it (when asked to)
                if self.complete_checksums:
                    vnet.full_tcp_checksum(buf, hl, lay)
            elif not vnet.checksums_ok(pkt, lay):
                # nobody checked this one (no flag): rx_verified promises we did
                counters["dropped_bad_checksum"] += 1
                continue
            if gso:
                counters["gro_packets"] += 1
                counters["gro_bytes"] += n - hl
            out.append(bytes(pkt))
        counters["rx_packets"] += len(out)
        return out

    def _check_size(self, ip_packet: bytes) -> None:
        if len(ip_packet) > self.max_segment:
            raise OSError(errno.EMSGSIZE, f"packet of {len(ip_packet)} bytes exceeds the "
                          f"largest segment {self.max_segment} of link {self.name}"
                          + ("" if self.offload else " (its MTU; offload=True takes up to "
                             f"{MAX_SEGMENT})") + "; send smaller segments")
        if len(ip_packet) < 20 or ip_packet[0] >> 4 not in (4, 6):
            raise OSError(errno.EINVAL, "send() takes a whole IPv4 or IPv6 packet")

    def send(self, ip_packet: bytes) -> None:
        self._check_open()
        self._check_size(ip_packet)
        plan = None
        if self.offload and len(ip_packet) > self.mtu:
            plan = vnet.gso_plan(ip_packet, self.mtu)    # OSError: cannot be split
        try:
            if plan is not None:
                view = memoryview(ip_packet)
                pos = plan.csum_pos
                os.writev(self._fd, (plan.header, view[:pos], plan.partial, view[pos + 2:]))
            elif self.offload:
                os.writev(self._fd, (vnet.ZERO, ip_packet))
            else:
                os.write(self._fd, ip_packet)
        except BlockingIOError:
            self.counters["dropped_tx_full"] += 1
            return
        except OSError as e:
            self.counters["dropped_tx_error"] += 1
            if e.errno in (errno.EIO, errno.EINVAL):   # device down / kernel refused packet
                return
            raise
        self.counters["tx_packets"] += 1
        if plan is not None:
            self.counters["gso_packets"] += 1
            self.counters["gso_bytes"] += len(ip_packet)

    def send_many(self, packets: list[bytes]) -> list[OSError]:
        """:meth:`send` for a batch, with the per-packet work in one loop (the runtime writes
        every burst through here)."""
        if self.offload:
            return super().send_many(packets)
        if self._closed:
            self._check_open()
        fd, write, limit = self._fd, os.write, self.max_segment
        errors: list[OSError] = []
        sent = 0
        for p in packets:
            if len(p) > limit or len(p) < 20 or p[0] >> 4 not in (4, 6):
                try:
                    self._check_size(p)
                except OSError as e:
                    errors.append(e)
                    continue
            try:
                write(fd, p)
                sent += 1
            except BlockingIOError:
                self.counters["dropped_tx_full"] += 1
            except OSError as e:
                self.counters["dropped_tx_error"] += 1
                if e.errno not in (errno.EIO, errno.EINVAL):  # not: device down / refused
                    errors.append(e)
        self.counters["tx_packets"] += sent
        return errors

    def _release(self) -> None:
        os.close(self._fd)   # a non-persistent TUN device disappears with its last fd
