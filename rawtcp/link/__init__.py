"""Links: move whole IP packets between rawtcp and the outside world.

See docs/contracts.md ("Links"). Implementations: `memory.MemoryLink` (in-process pair),
`tun.TunLink` (TUN device), `packet.PacketLink` (AF_PACKET, answers ARP/ND itself),
`rawip.RawIpLink` (raw IP sockets plus an nftables table that silences the kernel's RSTs).
"""

from rawtcp.link.base import Link

__all__ = ["Link"]
