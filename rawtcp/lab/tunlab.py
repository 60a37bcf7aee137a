"""TunLab: one private namespace holding a TUN device; rawtcp sits at the far end.

    with TunLab(family="dual") as lab:
        link = lab.open_link()            # TunLink, fd made inside lab.netns
        srv = lab.server("echo", port=7)  # kernel peer inside lab.netns
        ...

Addresses (only inside the namespace, no default route):
kernel 10.77.0.1 / fd77::1 on the TUN device, rawtcp 10.77.0.2 / fd77::2 routed to it.
The device, and so the kernel's addresses, exist while the link from open_link() is open.
"""

from __future__ import annotations

import errno

from rawtcp.lab.base import Lab
from rawtcp.link.tun import TunLink

FAMILIES = ("ipv4", "ipv6", "dual")
V4 = ("10.77.0.1", "10.77.0.2")
V6 = ("fd77::1", "fd77::2")


class TunLab(Lab):
    """Attributes: netns (= kernel_netns), tun_name, kernel_addr, rawtcp_addr (first family:
    IPv4 unless family="ipv6"), kernel_addrs, rawtcp_addrs, mtu."""

    _need_tun = True

    def __init__(self, family: str = "ipv4", mtu: int = 1500) -> None:
        if family not in FAMILIES:
            raise OSError(errno.EINVAL, f"family must be one of {FAMILIES}, not {family!r}")
        super().__init__()
        self.family = family
        self.mtu = mtu
        self.netns = self.kernel_netns = self.tag
        self.tun_name = self.tag + "t"
        pairs = ([V4] if family != "ipv6" else []) + ([V6] if family != "ipv4" else [])
        self.kernel_addrs = [k for k, _ in pairs]
        self.rawtcp_addrs = [r for _, r in pairs]
        self.kernel_addr, self.rawtcp_addr = pairs[0]
        self.link: TunLink | None = None

    def _build(self) -> None:
        self._new_netns(self.netns)

    def open_link(self, offload: bool = False) -> TunLink:
        """Create the TUN device in the namespace and configure its kernel side.
        `offload=True`: the device does TSO/checksum offload (TunLink's `offload`)."""
        self._require_built()
        if self.link is not None and not self.link.closed:
            raise OSError(errno.EBUSY, "the lab's TUN link is open; close it first")
        self.link = TunLink(self.rawtcp_addrs, self.kernel_addrs, name=self.tun_name,
                            netns=self.netns, mtu=self.mtu, offload=offload)
        self._track(self.link)
        return self.link
