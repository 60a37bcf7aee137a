"""VethLab: namespaces "k" (a real kernel peer) and "r" (rawtcp) joined by a veth pair.

    with VethLab(mode="packet") as lab:   # or mode="rawip"
        link = lab.open_link()
        ...

- mode="packet": the kernel of "r" has no address on its veth; rawtcp owns rawtcp_addr
  through a PacketLink (answers ARP/ND itself).
- mode="rawip": the kernel of "r" owns rawtcp_addr; rawtcp uses a RawIpLink whose nftables
  table drops the kernel's RSTs for rawtcp's ports.

Addresses (only inside the namespaces, no default route): kernel 10.78.0.1/24 and
fd78::1/64, rawtcp 10.78.0.2 and fd78::2. Transmit checksum offload is turned off on both
veths (unless tx_offload=True), so segments cross with complete checksums.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from rawtcp.host import registry
from rawtcp.host.system import run
from rawtcp.lab.base import Lab
from rawtcp.link import discover
from rawtcp.link.base import Link
from rawtcp.link.packet import PacketLink
from rawtcp.link.rawip import RawIpLink

MODES = ("packet", "rawip")
FAMILIES = ("ipv4", "ipv6", "dual")
V4 = ("10.78.0.1", "10.78.0.2", 24)
V6 = ("fd78::1", "fd78::2", 64)


class VethLab(Lab):
    """Attributes: kernel_netns, rawtcp_netns, kernel_if, rawtcp_if, kernel_addr,
    rawtcp_addr (first family), kernel_addrs, rawtcp_addrs, kernel_mac, mode, netns
    (= kernel_netns)."""

    def __init__(self, mode: str = "packet", family: str = "dual", mtu: int = 1500,
                 tx_offload: bool = False, ports: Iterable[int] | range | None = None) -> None:
        if mode not in MODES:
            raise OSError(errno.EINVAL, f"mode must be one of {MODES}, not {mode!r}")
        if family not in FAMILIES:
            raise OSError(errno.EINVAL, f"family must be one of {FAMILIES}, not {family!r}")
        super().__init__()
        self.mode, self.family, self.mtu = mode, family, mtu
        self.tx_offload = tx_offload
        self.ports = ports
        self.kernel_netns = self.netns = self.tag + "k"
        self.rawtcp_netns = self.tag + "r"
        self.kernel_if = self.tag + "k"
        self.rawtcp_if = self.tag + "r"
        self._pairs = ([V4] if family != "ipv6" else []) + ([V6] if family != "ipv4" else [])
        self.kernel_addrs = [k for k, _, _ in self._pairs]
        self.rawtcp_addrs = [r for _, r, _ in self._pairs]
        self.kernel_addr, self.rawtcp_addr = self.kernel_addrs[0], self.rawtcp_addrs[0]
        self.kernel_mac = ""

    def _build(self) -> None:
        k, r = self._new_netns(self.kernel_netns), self._new_netns(self.rawtcp_netns)
        registry.register("link", self.kernel_if, k)
        try:
            run(["ip", "-n", k, "link", "add", self.kernel_if, "mtu", str(self.mtu),
                 "type", "veth", "peer", "name", self.rawtcp_if, "netns", r])
        finally:
            registry.unregister("link", self.kernel_if, k)   # it dies with the namespace
        run(["ip", "-n", r, "link", "set", self.rawtcp_if, "addrgenmode", "none"])
        for ns, ifname in ((k, self.kernel_if), (r, self.rawtcp_if)):
            discover.set_tx_checksum_offload(ifname, self.tx_offload, ns)
        for kaddr, raddr, plen in self._pairs:
            v6 = ["nodad"] if ":" in kaddr else []
            run(["ip", "-n", k, "addr", "add", f"{kaddr}/{plen}", "dev", self.kernel_if] + v6)
            if self.mode == "rawip":
                run(["ip", "-n", r, "addr", "add", f"{raddr}/{plen}", "dev", self.rawtcp_if]
                    + v6)
        run(["ip", "-n", k, "link", "set", self.kernel_if, "up"])
        run(["ip", "-n", r, "link", "set", self.rawtcp_if, "up"])
        self.kernel_mac = discover.mac_of(self.kernel_if, k)

    def open_link(self, **kwargs: object) -> Link:
        """PacketLink or RawIpLink (by mode) in namespace "r"; extra kwargs go to the link."""
        self._require_built()
        if self.mode == "packet":
            link: Link = PacketLink(self.rawtcp_if, self.rawtcp_addrs, netns=self.rawtcp_netns,
                                    **kwargs)  # type: ignore[arg-type]
        else:
            kwargs.setdefault("ports", self.ports)
            link = RawIpLink(self.rawtcp_addrs, netns=self.rawtcp_netns, mtu=self.mtu,
                             name=self.rawtcp_if, **kwargs)  # type: ignore[arg-type]
        return self._track(link)
