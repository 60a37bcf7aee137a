"""TunLink: a TUN device; rawtcp is the far end of a point-to-point link to the kernel.

The kernel side of the device gets `kernel_addresses` (host routes /32, /128) plus a route to
each of rawtcp's `addresses` through the device, so the kernel sends packets for rawtcp into
the TUN fd and reads what rawtcp writes. IPv6 addresses are added with `nodad` (no duplicate
address detection, usable at once) and the device has `addrgenmode none`, so the kernel
makes no link-local address and sends no router solicitations or MLD reports on it.

TUN devices carry no checksum offload (no IFF_VNET_HDR), so every packet read from the fd
has complete checksums.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import secrets
import struct

from rawtcp.host.netns import in_netns, ip_cmd
from rawtcp.host.system import run
from rawtcp.link.base import Link
from rawtcp.link.inet import well_formed

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_BATCH = 512


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
    """

    def __init__(self, addresses: list[str], kernel_addresses: list[str] | None = None,
                 name: str | None = None, netns: str | None = None, mtu: int = 1500,
                 configure: bool = True) -> None:
        from rawtcp.host import privileges

        privileges.check(need_tun=True)
        name = name or "rt" + secrets.token_hex(4) + "t"
        if len(name) > 15:
            raise OSError(errno.EINVAL, f"interface name {name!r} is longer than 15 characters")
        super().__init__(name, mtu, [_canon(a) for a in addresses])
        self.kernel_addresses = [_canon(a) for a in (kernel_addresses or [])]
        self.netns = netns
        with in_netns(netns):
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
            try:
                fcntl.ioctl(fd, TUNSETIFF, ifr)
            except OSError as e:
                raise OSError(e.errno, f"cannot create TUN device {name!r}: {e.strerror} "
                              "(needs CAP_NET_ADMIN; is the name already used?)") from None
            self._fd = fd
            if configure:
                self._configure()
        except BaseException:
            os.close(fd)
            raise

    def _configure(self) -> None:
        ip = ip_cmd(self.netns)
        run(ip + ["link", "set", "dev", self.name, "addrgenmode", "none"])
        run(ip + ["link", "set", "dev", self.name, "mtu", str(self.mtu), "up"])
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
        self._check_open()
        out: list[bytes] = []
        for _ in range(MAX_BATCH):
            try:
                pkt = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if well_formed(pkt):
                out.append(pkt)
            else:
                self.counters["dropped_malformed"] += 1
        self.counters["rx_packets"] += len(out)
        return out

    def send(self, ip_packet: bytes) -> None:
        self._check_open()
        self._check_size(ip_packet)
        try:
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

    def _release(self) -> None:
        os.close(self._fd)   # a non-persistent TUN device disappears with its last fd
