"""The Link interface every link implements (docs/contracts.md, "Links")."""

from __future__ import annotations

import errno
from collections import Counter
from typing import Self


class Link:
    """Moves whole IP packets (IPv4 or IPv6, no link-layer header).

    Attributes:
      name:      a short description (device or interface name)
      mtu:       largest IP packet `send()` accepts
      addresses: local IP addresses rawtcp uses on this link (canonical strings)
      counters:  what the link counted, including drops: e.g. ``rx_packets``,
                 ``tx_packets``, ``dropped_malformed``, ``dropped_not_for_us``
    """

    name: str
    mtu: int
    addresses: list[str]

    def __init__(self, name: str, mtu: int, addresses: list[str]) -> None:
        self.name = name
        self.mtu = mtu
        self.addresses = list(addresses)
        self.counters: Counter[str] = Counter()
        self._closed = False

    def fileno(self) -> int:
        """An fd that is readable when packets may be waiting (for selectors)."""
        raise NotImplementedError

    def recv_batch(self) -> list[bytes]:
        """Non-blocking: every whole IP packet waiting now (maybe none)."""
        raise NotImplementedError

    def send(self, ip_packet: bytes) -> None:
        """Send one whole IP packet."""
        raise NotImplementedError

    def send_many(self, packets: list[bytes]) -> list[OSError]:
        """Send each packet in order, as :meth:`send` would; a packet that raises does not
        stop the others. Returns the errors (one per packet not sent)."""
        errors: list[OSError] = []
        send = self.send
        for p in packets:
            try:
                send(p)
            except OSError as e:
                errors.append(e)
        return errors

    def close(self) -> None:
        """Release fds, devices and nftables rules this link created. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        """What a link frees; called once, by close() (and by a failing constructor)."""

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(errno.EBADF, f"link {self.name} is closed; open a new one")

    def _check_size(self, ip_packet: bytes) -> None:
        if len(ip_packet) > self.mtu:
            raise OSError(errno.EMSGSIZE, f"packet of {len(ip_packet)} bytes exceeds the MTU "
                          f"{self.mtu} of link {self.name}; send smaller segments")
        if len(ip_packet) < 20 or ip_packet[0] >> 4 not in (4, 6):
            raise OSError(errno.EINVAL, "send() takes a whole IPv4 or IPv6 packet")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} mtu={self.mtu} {self.addresses}>"
