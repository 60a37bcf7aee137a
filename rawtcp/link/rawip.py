"""RawIpLink: raw IP sockets on an address the kernel owns, plus an nftables RST filter.

The kernel of the namespace owns rawtcp's address. Incoming TCP segments are delivered both
to the kernel's TCP (which finds no socket and would answer with a RST) and to our raw
IPPROTO_TCP sockets. So the link installs a narrow nftables table (unique name, family
inet, output hook) that drops RSTs the kernel sends from rawtcp's addresses and local ports.
rawtcp's own packets leave through IPPROTO_RAW sockets carrying SO_MARK `mark`, which the
rule exempts, so rawtcp's RSTs still go out. The table is removed by close(), and also when
the constructor fails; it is registered for `rawtcp.lab.cleanup` in case of a crash.

UDP and ICMP (issue 11) come in the same way, through raw IPPROTO_UDP and IPPROTO_ICMP /
IPPROTO_ICMPV6 sockets (of ICMP only the errors rawtcp reads: destination unreachable, and
packet too big for IPv6). The kernel, finding no UDP socket of its own, would answer a
datagram for rawtcp with a port unreachable: the same table drops those too.

Receiving IPv6: raw IPv6 sockets never return the IPv6 header, so the link rebuilds one from
the source address, IPV6_PKTINFO (destination) and IPV6_HOPLIMIT (traffic class and flow
label are lost: they are returned as 0).

Checksums: the kernel does not verify TCP checksums for raw sockets, and a segment that
crossed a veth from a kernel with tx checksum offload on carries a partial checksum that
cannot be told apart from a bad one. Turn tx offload off on the peer's interface (the
VethLab does; `discover.set_tx_checksum_offload`).
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import struct
from collections.abc import Iterable

from rawtcp.host import nft
from rawtcp.host.netns import in_netns
from rawtcp.link.base import Link
from rawtcp.link.inet import well_formed

SO_MARK = 36
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
DEFAULT_MARK = 0x72746370   # "rtcp"
MAX_BATCH = 512


def _ports_expr(ports: Iterable[int] | range | None) -> str:
    if ports is None:
        return ""
    if isinstance(ports, range) and ports.step == 1 and len(ports) > 0:
        return f"tcp sport {ports.start}-{ports.stop - 1} "
    ps = sorted({int(p) for p in ports})
    if not ps or ps[0] < 1 or ps[-1] > 65535:
        raise OSError(errno.EINVAL, "ports must be 1..65535 (or None for every port)")
    return "tcp sport { " + ", ".join(map(str, ps)) + " } "


class RawIpLink(Link):
    """Raw IPv4/IPv6 sockets for rawtcp's `addresses`, which the kernel of `netns` owns.

    Args:
      addresses: rawtcp's addresses (the kernel must have them on some interface).
      ports:     local TCP ports rawtcp uses: a range, an iterable of ports, or None for
                 all ports of those addresses. The kernel's RSTs from them are dropped.
      netns:     network namespace (None: the current one).
      mtu:       largest packet send() accepts (default 1500).
      mark:      SO_MARK on rawtcp's sending sockets, exempt from the RST filter.
    Attributes: table (nftables table name, family inet), counters.
    """

    def __init__(self, addresses: list[str], ports: Iterable[int] | range | None = None,
                 netns: str | None = None, mtu: int = 1500, mark: int = DEFAULT_MARK,
                 name: str | None = None) -> None:
        from rawtcp.host import privileges

        privileges.check(need_tun=False)
        addrs = [ipaddress.ip_address(a) for a in addresses]
        if not addrs:
            raise OSError(errno.EINVAL, "RawIpLink needs at least one address")
        super().__init__(name or "rawip", mtu, [str(a) for a in addrs])
        self.netns = netns
        self.mark = mark
        self.ports = ports
        self._v4 = {a.packed for a in addrs if a.version == 4}
        self._v6 = {a.packed for a in addrs if a.version == 6}
        self.table = nft.unique_table_name("rawip")
        self._table_added = False
        self._socks: list[socket.socket] = []
        self._rx4: list[tuple[socket.socket, int]] = []      # (socket, protocol)
        self._rx6: list[tuple[socket.socket, int]] = []
        self._tx4 = self._tx6 = None
        self._ep: select.epoll | None = None
        try:
            with in_netns(netns):
                if self._v4:
                    for proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_ICMP):
                        self._rx4.append((self._sock(socket.AF_INET, proto), proto))
                    self._tx4 = self._sock(socket.AF_INET, socket.IPPROTO_RAW)
                if self._v6:
                    for proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP,
                                  socket.IPPROTO_ICMPV6):
                        s = self._sock(socket.AF_INET6, proto)
                        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                        self._rx6.append((s, proto))
                    self._tx6 = self._sock(socket.AF_INET6, socket.IPPROTO_RAW)
            for s in (self._tx4, self._tx6):
                if s is not None:
                    s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
            self._install_filter()
            self._ep = select.epoll()
            for s, _proto in self._rx4 + self._rx6:
                self._ep.register(s.fileno(), select.EPOLLIN)
        except BaseException:
            self._release()
            raise

    def _sock(self, fam: int, proto: int) -> socket.socket:
        try:
            s = socket.socket(fam, socket.SOCK_RAW, proto)
        except PermissionError:
            raise PermissionError(errno.EPERM, "raw sockets need root or CAP_NET_RAW") from None
        s.setblocking(False)
        self._socks.append(s)
        return s

    def _install_filter(self) -> None:
        ports = _ports_expr(self.ports)
        rules = []
        for fam, packed in (("ip", self._v4), ("ip6", self._v6)):
            if packed:
                addrs = ", ".join(str(ipaddress.ip_address(p)) for p in sorted(packed))
                rules.append(f"meta mark != {self.mark:#x} {fam} saddr {{ {addrs} }} "
                             f"meta l4proto tcp {ports}tcp flags & rst == rst "
                             f"counter drop comment \"kernel-rst-{fam}\"")
                icmp = ("icmp type destination-unreachable icmp code port-unreachable"
                        if fam == "ip" else
                        "icmpv6 type destination-unreachable icmpv6 code port-unreachable")
                rules.append(f"meta mark != {self.mark:#x} {fam} saddr {{ {addrs} }} "
                             f"{icmp} counter drop comment \"kernel-unreach-{fam}\"")
        body = ("  chain out {\n    type filter hook output priority filter; policy accept;\n"
                + "".join(f"    {r}\n" for r in rules) + "  }")
        self._table_added = True
        nft.add_table(self.netns, "inet", self.table, body)

    def suppressed_rsts(self) -> int:
        """How many kernel RSTs the nftables rules have dropped so far."""
        return sum(r["packets"] for r in nft.rule_counters(self.netns, "inet", self.table)
                   if str(r.get("comment") or "").startswith("kernel-rst"))

    def suppressed_unreachables(self) -> int:
        """How many of the kernel's ICMP port unreachables (for datagrams that were rawtcp's)
        the nftables rules have dropped so far."""
        return sum(r["packets"] for r in nft.rule_counters(self.netns, "inet", self.table)
                   if str(r.get("comment") or "").startswith("kernel-unreach"))

    # ------------------------------------------------------------------ Link interface
    def fileno(self) -> int:
        self._check_open()
        assert self._ep is not None
        return self._ep.fileno()

    def recv_batch(self) -> list[bytes]:
        self._check_open()
        out: list[bytes] = []
        for sock, proto in self._rx4:
            for _ in range(MAX_BATCH):
                try:
                    pkt = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                if not well_formed(pkt):
                    self.counters["dropped_malformed"] += 1
                elif pkt[16:20] not in self._v4:
                    self.counters["dropped_not_for_us"] += 1
                elif proto == socket.IPPROTO_ICMP and pkt[(pkt[0] & 0x0F) * 4:][:1] != b"\x03":
                    continue                  # not a destination unreachable: not for rawtcp
                else:
                    out.append(pkt)
        for sock, proto in self._rx6:
            for _ in range(MAX_BATCH):
                try:
                    data, anc, _fl, addr = sock.recvmsg(65536, 256)
                except (BlockingIOError, InterruptedError):
                    break
                if proto == socket.IPPROTO_ICMPV6 and data[:1] not in (b"\x01", b"\x02"):
                    continue                  # only unreachable / packet too big are errors
                pkt = self._rebuild6(data, anc, addr, proto)
                if pkt is not None:
                    out.append(pkt)
        self.counters["rx_packets"] += len(out)
        return out

    def _rebuild6(self, data: bytes, anc: list, addr: tuple,
                  proto: int = socket.IPPROTO_TCP) -> bytes | None:
        dst = None
        hlim = 64
        for level, kind, c in anc:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(c) >= 16:
                dst = c[:16]
            elif level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(c) >= 4:
                hlim = struct.unpack_from("i", c)[0]
        if dst is None or len(data) < (20 if proto == socket.IPPROTO_TCP else 8):
            self.counters["dropped_malformed"] += 1
            return None
        if dst not in self._v6:
            self.counters["dropped_not_for_us"] += 1
            return None
        src = ipaddress.IPv6Address(addr[0].split("%")[0]).packed
        hdr = struct.pack("!IHBB", 6 << 28, len(data), proto, hlim & 0xFF)
        return hdr + src + dst + data

    def send(self, ip_packet: bytes) -> None:
        self._check_open()
        self._check_size(ip_packet)
        if ip_packet[0] >> 4 == 4:
            s, dst = self._tx4, str(ipaddress.IPv4Address(ip_packet[16:20]))
        else:
            s, dst = self._tx6, str(ipaddress.IPv6Address(ip_packet[24:40]))
        if s is None:
            raise OSError(errno.EAFNOSUPPORT, f"link {self.name} has no address of the "
                          "packet's IP version; open it with one")
        try:
            s.sendto(ip_packet, (dst, 0))
        except (BlockingIOError, InterruptedError):
            self.counters["dropped_tx_full"] += 1
            return
        except OSError as e:
            if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENOBUFS,
                           errno.EPERM):   # EPERM: a firewall rule refused it
                self.counters["dropped_tx_error"] += 1
                return
            raise
        self.counters["tx_packets"] += 1

    def _release(self) -> None:
        try:
            if self._ep is not None:
                self._ep.close()
                self._ep = None
            for s in self._socks:
                s.close()
            self._socks.clear()
        finally:
            if self._table_added:
                self._table_added = False
                nft.delete_table(self.netns, "inet", self.table)
