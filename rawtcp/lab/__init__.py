"""The lab: private network namespaces with a real Linux kernel on the other side.

- `TunLab` (rawtcp.lab.tunlab): one namespace, a TUN device, rawtcp at its far end.
- `VethLab` (rawtcp.lab.vethlab): namespaces "k" (kernel peer) and "r" (rawtcp) joined by a
  veth pair; rawtcp uses a PacketLink (own address) or a RawIpLink (kernel's address).
- `peers` (kernel TCP servers and clients), `kernel` (socket states via `ss`),
  `netem` (loss with nftables), `cleanup` (leftovers after a crash), `persistent` (labs
  that outlive their creator: `rawtcp lab up`/`down`/`list`).

Namespaces, nftables tables, the registry of kernel objects and the privilege check are host
plumbing in `rawtcp.host`, below both labs and links.
"""

from rawtcp.lab.tunlab import TunLab
from rawtcp.lab.vethlab import VethLab

__all__ = ["TunLab", "VethLab"]
