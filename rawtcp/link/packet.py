"""PacketLink: an AF_PACKET socket on an Ethernet interface; rawtcp owns its own IP address.

rawtcp's addresses are ones the kernel of the interface's namespace does NOT have, so the
kernel ignores packets for them (no RSTs), and the link does the kernel's neighbour work:

- answers ARP requests (RFC 826) and IPv6 neighbour solicitations (RFC 4861 7.2.4) for its
  addresses with the link's MAC (default: the interface's own MAC);
- resolves peers itself: ARP request / NS to the solicited-node multicast group, retried
  `resolve_retries` times every `resolve_interval` seconds; while resolving it queues at most
  `queue_limit` packets per destination (more are dropped and counted), and drops the queue
  when resolution fails (`dropped_unresolved`);
- ignores its own outgoing frames (PACKET_OUTGOING) and frames for other hosts.

Checksum offload: a kernel that sends over a veth with tx checksum offload on leaves TCP/UDP
checksums partial (only the pseudo-header sum). Such frames arrive with
TP_STATUS_CSUMNOTREADY in PACKET_AUXDATA; this link recomputes their transport checksum
before handing them up (counted as `csum_completed`), so recv_batch() always returns packets
with valid checksums. The lab also turns tx offload off on its veths
(`discover.set_tx_checksum_offload`), which avoids the partial checksums altogether, and is
needed for RawIpLink, which has no such flag.

fileno() is an epoll fd over the packet socket and a timerfd for resolution retries, so one
selector registration covers both; recv_batch() also runs due retries.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from rawtcp.host.netns import in_netns
from rawtcp.link import discover
from rawtcp.link.base import Link
from rawtcp.link.inet import csum, fix_transport_checksum, pseudo_header, trim, well_formed

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_MULTICAST = 0
PACKET_AUXDATA = 8
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = range(5)
TP_STATUS_CSUMNOTREADY = 1 << 3
ICMPV6 = 58
ND_NS, ND_NA = 135, 136
BROADCAST = b"\xff" * 6
MAX_BATCH = 512

_libc = ctypes.CDLL(None, use_errno=True)
CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd() -> int:
    fd = _libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"timerfd_create: {os.strerror(e)}")
    return fd


def _timerfd_set(fd: int, delay: float | None) -> None:
    """Arm the timer to fire once after `delay` seconds (None: disarm)."""
    spec = _Itimerspec()
    if delay is not None:
        delay = max(delay, 1e-6)
        spec.it_value.tv_sec = int(delay)
        spec.it_value.tv_nsec = int((delay - int(delay)) * 1e9) or 1
    if _libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"timerfd_settime: {os.strerror(e)}")


def mac_bytes(mac: str) -> bytes:
    b = bytes(int(x, 16) for x in mac.split(":"))
    if len(b) != 6:
        raise OSError(errno.EINVAL, f"bad MAC address {mac!r}; use aa:bb:cc:dd:ee:ff")
    return b


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def solicited_node(addr: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + addr.packed[13:])


def multicast_mac(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    if addr.version == 6:
        return b"\x33\x33" + addr.packed[12:]
    return b"\x01\x00\x5e" + bytes([addr.packed[1] & 0x7F]) + addr.packed[2:]


@dataclass
class _Pending:
    queue: list[bytes] = field(default_factory=list)
    tries: int = 0
    next_try: float = 0.0


class PacketLink(Link):
    """AF_PACKET SOCK_RAW link on interface `ifname` in namespace `netns`.

    Args:
      ifname:            Ethernet interface (veth, eth0, ...).
      addresses:         rawtcp's own IPv4/IPv6 addresses; the kernel must not have them.
      netns:             network namespace of the interface (None: the current one).
      mac:               rawtcp's MAC; default the interface's. Another MAC puts the
                         interface in promiscuous mode (membership PACKET_MR_PROMISC).
      resolve_retries:   ARP requests / NS sent before giving up on a neighbour (>= 1).
      resolve_interval:  seconds between them.
      queue_limit:       packets held per destination while resolving.
      neighbor_ttl:      seconds a learned MAC is used before resolving again.
    """

    def __init__(self, ifname: str, addresses: list[str], netns: str | None = None,
                 mac: str | None = None, resolve_retries: int = 3,
                 resolve_interval: float = 1.0, queue_limit: int = 16,
                 neighbor_ttl: float = 300.0) -> None:
        from rawtcp.host import privileges

        privileges.check(need_tun=False)
        addrs = [ipaddress.ip_address(a) for a in addresses]
        if not addrs:
            raise OSError(errno.EINVAL, "PacketLink needs at least one address of rawtcp's own")
        if resolve_retries < 1 or queue_limit < 1:
            raise OSError(errno.EINVAL, "resolve_retries and queue_limit must be >= 1")
        own_mac = discover.mac_of(ifname, netns)
        kernel_addrs = set(discover.addresses_of(ifname, netns))
        clash = [str(a) for a in addrs if str(a) in kernel_addrs]
        if clash:
            raise OSError(errno.EADDRINUSE, f"the kernel already owns {clash} on {ifname}; "
                          "give rawtcp an address the kernel does not have (or use RawIpLink)")
        super().__init__(ifname, discover.mtu_of(ifname, netns), [str(a) for a in addrs])
        self.netns = netns
        self.mac = (mac or own_mac).lower()
        self._mac = mac_bytes(self.mac)
        self._v4 = {a.packed for a in addrs if a.version == 4}
        self._v6 = {a.packed for a in addrs if a.version == 6}
        self.resolve_retries = resolve_retries
        self.resolve_interval = resolve_interval
        self.queue_limit = queue_limit
        self.neighbor_ttl = neighbor_ttl
        self._neigh: dict[bytes, tuple[bytes, float]] = {}   # ip (packed) -> (mac, expiry)
        self._pending: dict[bytes, _Pending] = {}
        # send() runs in user threads, recv_batch() in the stack's loop thread; both touch
        # the neighbour cache and the packets waiting for resolution.
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._tfd = -1
        self._ep: select.epoll | None = None
        try:
            with in_netns(netns):
                self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self._sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self._sock.bind((ifname, ETH_P_ALL))
            self._sock.setblocking(False)
            self._ifindex = discover.ifindex_of(ifname, netns)
            for a in addrs:
                if a.version == 6:
                    self._join(multicast_mac(solicited_node(a)), PACKET_MR_MULTICAST)
            if self._mac != mac_bytes(own_mac):
                self._join(b"", 1)   # PACKET_MR_PROMISC
            self._tfd = _timerfd()
            self._ep = select.epoll()
            self._ep.register(self._sock.fileno(), select.EPOLLIN)
            self._ep.register(self._tfd, select.EPOLLIN)
        except BaseException:
            self._release()
            raise

    def _join(self, mac: bytes, kind: int) -> None:
        assert self._sock is not None
        mreq = struct.pack("iHH8s", self._ifindex, kind, len(mac), mac)
        self._sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)

    # ------------------------------------------------------------------ Link interface
    def fileno(self) -> int:
        self._check_open()
        assert self._ep is not None
        return self._ep.fileno()

    def neighbors(self) -> dict[str, str]:
        """The neighbour cache: IP address -> MAC."""
        return {str(ipaddress.ip_address(ip)): mac_str(m) for ip, (m, _) in self._neigh.items()}

    def recv_batch(self) -> list[bytes]:
        with self._lock:
            return self._recv_batch()

    def _recv_batch(self) -> list[bytes]:
        self._check_open()
        assert self._sock is not None
        self._run_timers()
        out: list[bytes] = []
        for _ in range(MAX_BATCH):
            try:
                data, anc, _flags, addr = self._sock.recvmsg(65600, socket.CMSG_SPACE(32))
            except (BlockingIOError, InterruptedError):
                break
            pkttype = addr[2]
            if pkttype == PACKET_OUTGOING:
                continue
            status = 0
            for level, kind, cdata in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= 4:
                    status = struct.unpack_from("I", cdata)[0]
            pkt = self._on_frame(data, pkttype)
            if pkt is not None:
                if status & TP_STATUS_CSUMNOTREADY:
                    pkt = fix_transport_checksum(pkt)
                    self.counters["csum_completed"] += 1
                out.append(pkt)
        self.counters["rx_packets"] += len(out)
        return out

    def send(self, ip_packet: bytes) -> None:
        with self._lock:
            self._send(ip_packet)

    def _send(self, ip_packet: bytes) -> None:
        self._check_open()
        self._check_size(ip_packet)
        ip_packet = bytes(ip_packet)
        if ip_packet[0] >> 4 == 4:
            dst = ipaddress.ip_address(ip_packet[16:20])
            etype = ETH_P_IP
        else:
            if len(ip_packet) < 40:
                raise OSError(errno.EINVAL, "send() takes a whole IPv6 packet (>= 40 bytes)")
            dst = ipaddress.ip_address(ip_packet[24:40])
            etype = ETH_P_IPV6
        if dst.is_multicast:
            self._xmit(multicast_mac(dst), etype, ip_packet)
            return
        if dst == ipaddress.IPv4Address("255.255.255.255"):
            self._xmit(BROADCAST, etype, ip_packet)
            return
        key = dst.packed
        entry = self._neigh.get(key)
        if entry and entry[1] > time.monotonic():
            self._xmit(entry[0], etype, ip_packet)
            return
        pend = self._pending.get(key)
        if pend is None:
            pend = self._pending[key] = _Pending()
            pend.queue.append(ip_packet)   # queued before asking, so the answer finds it
            self._solicit(key, pend)
            return
        if len(pend.queue) >= self.queue_limit:
            self.counters["dropped_resolve_queue_full"] += 1
            return
        pend.queue.append(ip_packet)

    def _release(self) -> None:
        if self._ep is not None:
            self._ep.close()
            self._ep = None
        if self._tfd >= 0:
            os.close(self._tfd)
            self._tfd = -1
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._pending.clear()

    # ------------------------------------------------------------------ frames in
    def _on_frame(self, frame: bytes, pkttype: int) -> bytes | None:
        if len(frame) < 14:
            self.counters["dropped_malformed"] += 1
            return None
        dst_mac, src_mac, etype = frame[:6], frame[6:12], struct.unpack_from("!H", frame, 12)[0]
        if src_mac == self._mac:
            return None   # our own frame looped back
        if pkttype == PACKET_OTHERHOST and dst_mac != self._mac:
            self.counters["dropped_other_host"] += 1
            return None
        body = frame[14:]
        if etype == ETH_P_ARP:
            self._on_arp(body)
            return None
        if etype not in (ETH_P_IP, ETH_P_IPV6):
            self.counters["dropped_other_ethertype"] += 1
            return None
        if not well_formed(body) or (body[0] >> 4) != (4 if etype == ETH_P_IP else 6):
            self.counters["dropped_malformed"] += 1
            return None
        body = trim(body)
        if etype == ETH_P_IP:
            if body[16:20] not in self._v4:
                self.counters["dropped_not_for_us"] += 1
                return None
            return body
        dst = body[24:40]
        if body[6] == ICMPV6 and len(body) >= 44 and body[40] in (ND_NS, ND_NA):
            self._on_nd(body, src_mac)
            return None
        if dst not in self._v6:
            self.counters["dropped_not_for_us"] += 1
            return None
        return body

    def _on_arp(self, body: bytes) -> None:
        if len(body) < 28:
            self.counters["dropped_malformed"] += 1
            return
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", body)
        if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
            self.counters["dropped_malformed"] += 1
            return
        sha, spa, tpa = body[8:14], body[14:18], body[24:28]
        # RFC 826 "merge": update a known sender; add it when the request is for us.
        if spa != b"\0\0\0\0" and (spa in self._neigh or spa in self._pending
                                   or tpa in self._v4):
            self._learn(spa, sha)
        if op == 1 and tpa in self._v4:
            reply = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 2) + self._mac + tpa + sha + spa
            self._xmit(sha, ETH_P_ARP, reply)
            self.counters["arp_replies_sent"] += 1

    def _on_nd(self, pkt: bytes, src_mac: bytes) -> None:
        icmp = pkt[40:]
        if pkt[7] != 255 or len(icmp) < 24:
            self.counters["dropped_malformed"] += 1   # RFC 4861 7.1.1: hop limit 255
            return
        src = pkt[8:24]
        target = icmp[8:24]
        opts = _nd_options(icmp[24:])
        if icmp[0] == ND_NS:
            if target not in self._v6:
                return
            lla = opts.get(1, src_mac)
            unspecified = src == b"\0" * 16
            if not unspecified:
                self._learn(src, lla)
            # RFC 4861 7.2.4: solicited NA with override and our link-layer address.
            dst = ipaddress.IPv6Address("ff02::1").packed if unspecified else src
            flags = 0x20000000 if unspecified else 0x60000000   # O (+ S when unicast back)
            body = struct.pack("!BBHI", ND_NA, 0, 0, flags) + target + b"\x02\x01" + self._mac
            self._xmit(lla if not unspecified else b"\x33\x33\0\0\0\x01", ETH_P_IPV6,
                       _icmp6(target, dst, body))
            self.counters["na_sent"] += 1
        else:
            lla = opts.get(2, src_mac)
            if target in self._neigh or target in self._pending:
                self._learn(target, lla)

    def _learn(self, ip: bytes, mac: bytes) -> None:
        if len(mac) != 6:
            return
        self._neigh[ip] = (mac, time.monotonic() + self.neighbor_ttl)
        pend = self._pending.pop(ip, None)
        if pend:
            etype = ETH_P_IP if len(ip) == 4 else ETH_P_IPV6
            for p in pend.queue:
                self._xmit(mac, etype, p)
            self._rearm()

    # ------------------------------------------------------------------ resolution
    def _solicit(self, ip: bytes, pend: _Pending) -> None:
        pend.tries += 1
        pend.next_try = time.monotonic() + self.resolve_interval
        if len(ip) == 4:
            spa = next(iter(self._v4), None)
            if spa is None:
                self.counters["dropped_no_source_address"] += 1
                return
            req = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1) + self._mac + spa + b"\0" * 6 + ip
            self._xmit(BROADCAST, ETH_P_ARP, req)
            self.counters["arp_requests_sent"] += 1
        else:
            src = next(iter(self._v6), None)
            if src is None:
                self.counters["dropped_no_source_address"] += 1
                return
            group = solicited_node(ipaddress.IPv6Address(ip))
            body = struct.pack("!BBHI", ND_NS, 0, 0, 0) + ip + b"\x01\x01" + self._mac
            self._xmit(multicast_mac(group), ETH_P_IPV6, _icmp6(src, group.packed, body))
            self.counters["ns_sent"] += 1
        self._rearm()

    def _run_timers(self) -> None:
        try:
            os.read(self._tfd, 8)
        except BlockingIOError:
            pass
        now = time.monotonic()
        for ip, pend in list(self._pending.items()):
            if pend.next_try > now:
                continue
            if pend.tries >= self.resolve_retries:
                del self._pending[ip]
                self.counters["dropped_unresolved"] += len(pend.queue)
                self.counters["resolve_failed"] += 1
            else:
                self._solicit(ip, pend)
        self._rearm()

    def _rearm(self) -> None:
        if self._tfd < 0:
            return
        if not self._pending:
            _timerfd_set(self._tfd, None)
            return
        nxt = min(p.next_try for p in self._pending.values())
        _timerfd_set(self._tfd, nxt - time.monotonic())

    def _xmit(self, dst_mac: bytes, etype: int, payload: bytes) -> None:
        assert self._sock is not None
        frame = dst_mac + self._mac + struct.pack("!H", etype) + payload
        try:
            self._sock.send(frame)
        except (BlockingIOError, InterruptedError):
            self.counters["dropped_tx_full"] += 1
            return
        except OSError as e:
            if e.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENOBUFS):
                self.counters["dropped_tx_error"] += 1
                return
            raise
        self.counters["tx_frames"] += 1


def _nd_options(data: bytes) -> dict[int, bytes]:
    """Source (1) / target (2) link-layer address options of an ND message."""
    out: dict[int, bytes] = {}
    while len(data) >= 8:
        kind, length = data[0], data[1] * 8
        if length == 0 or length > len(data):
            break
        if kind in (1, 2):
            out[kind] = data[2:8]
        data = data[length:]
    return out


def _icmp6(src: bytes, dst: bytes, body: bytes) -> bytes:
    c = csum(pseudo_header(src, dst, ICMPV6, len(body)) + body)
    body = body[:2] + struct.pack("!H", c) + body[4:]
    hdr = struct.pack("!IHBB", 6 << 28, len(body), ICMPV6, 255) + src + dst
    return hdr + body
