"""Interface discovery (addresses, MAC, MTU, index), inside a chosen network namespace.

netifaces asks the kernel through netlink/getifaddrs, whose socket belongs to the calling
thread's namespace, so the calls are made inside `in_netns(netns)`. MTU and index use ioctls
on a socket made in that namespace (sysfs would show the namespace /sys was mounted in).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import socket
import struct

import netifaces

from rawtcp.host.netns import in_netns

SIOCGIFMTU = 0x8921
SIOCGIFINDEX = 0x8933
SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17


def interfaces(netns: str | None = None) -> list[str]:
    with in_netns(netns):
        return list(netifaces.interfaces())


def _require(ifname: str, netns: str | None) -> None:
    if ifname not in interfaces(netns):
        where = f" in network namespace {netns!r}" if netns else ""
        raise OSError(errno.ENODEV, f"no interface {ifname!r}{where}; list them with `ip link`")


def mac_of(ifname: str, netns: str | None = None) -> str:
    """The interface's MAC address as 'aa:bb:cc:dd:ee:ff'."""
    _require(ifname, netns)
    with in_netns(netns):
        links = netifaces.ifaddresses(ifname).get(netifaces.AF_LINK, [])
    for entry in links:
        mac = entry.get("addr", "")
        if len(mac.split(":")) == 6:
            return mac.lower()
    raise OSError(errno.EADDRNOTAVAIL, f"interface {ifname!r} has no MAC address "
                  "(PacketLink needs an Ethernet interface)")


def addresses_of(ifname: str, netns: str | None = None) -> list[str]:
    """The interface's IPv4 and IPv6 addresses (canonical strings, no zone suffix)."""
    _require(ifname, netns)
    with in_netns(netns):
        info = netifaces.ifaddresses(ifname)
    out = []
    for fam in (netifaces.AF_INET, netifaces.AF_INET6):
        for entry in info.get(fam, []):
            a = entry.get("addr", "").split("%")[0]
            if a:
                out.append(str(ipaddress.ip_address(a)))
    return out


def _ifreq_ioctl(sock: socket.socket, req: int, ifname: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), req, struct.pack("16s24x", ifname.encode()))


def _ifreq_int(ifname: str, netns: str | None, req: int, what: str) -> int:
    """The int an SIOCGIF* ioctl returns for ``ifname`` inside ``netns``."""
    with in_netns(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        try:
            r = _ifreq_ioctl(s, req, ifname)
        except OSError as e:
            raise OSError(e.errno, f"{what} {ifname!r}: {e.strerror}") from None
    return struct.unpack_from("i", r, 16)[0]


def mtu_of(ifname: str, netns: str | None = None) -> int:
    return _ifreq_int(ifname, netns, SIOCGIFMTU, "cannot read the MTU of")


def ifindex_of(ifname: str, netns: str | None = None) -> int:
    return _ifreq_int(ifname, netns, SIOCGIFINDEX, "no interface")


def _ethtool_value(ifname: str, netns: str | None, cmd: int, data: int = 0) -> int:
    import ctypes

    buf = ctypes.create_string_buffer(struct.pack("II", cmd, data), 8)
    ifr = struct.pack("16sP16x", ifname.encode(), ctypes.addressof(buf))
    with in_netns(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        try:
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
        except OSError as e:
            raise OSError(e.errno, f"SIOCETHTOOL on {ifname!r} failed: {e.strerror}") from None
    return struct.unpack("II", buf.raw)[1]


def tx_checksum_offload(ifname: str, netns: str | None = None) -> bool:
    """Is transmit checksum offload on (what `ethtool -k IF` calls tx-checksumming)?"""
    return bool(_ethtool_value(ifname, netns, ETHTOOL_GTXCSUM))


def set_tx_checksum_offload(ifname: str, enabled: bool, netns: str | None = None) -> None:
    """`ethtool -K IF tx on|off` through the SIOCETHTOOL ioctl (no ethtool binary needed).

    With it off, the kernel computes TCP/UDP checksums in software before a packet leaves
    the device, so a veth peer sees complete checksums.
    """
    _ethtool_value(ifname, netns, ETHTOOL_STXCSUM, int(enabled))
