"""Shared helpers for link tests (real kernel, private namespaces)."""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable

from rawtcp.link.base import Link


def wait_for(link: Link, pred: Callable[[bytes], bool], timeout: float = 5.0) -> list[bytes]:
    """Read from the link (blocking on its fd) until a packet satisfies pred; return all read."""
    return collect_until(link, lambda got: any(pred(p) for p in got), timeout)


def collect_until(link: Link, done: Callable[[list[bytes]], bool],
                  timeout: float = 5.0) -> list[bytes]:
    """Read from the link until done(everything read so far); return everything read."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(link, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            sel.select(max(0.0, deadline - time.monotonic()))
            batch = link.recv_batch()
            got += batch
            if batch and done(got):
                return got
    raise AssertionError(f"no matching packet within {timeout}s; got {len(got)} packets")


def is_tcp_syn(dst: str, dport: int) -> Callable[[bytes], bool]:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    def pred(p: bytes) -> bool:
        pkt = IP(p) if p[0] >> 4 == 4 else IPv6(p)
        return (TCP in pkt and pkt.dst == dst and pkt[TCP].dport == dport
                and pkt[TCP].flags == "S")
    return pred


def tcp_checksum_ok(p: bytes) -> bool:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    pkt = IP(p) if p[0] >> 4 == 4 else IPv6(p)
    got = pkt[TCP].chksum
    del pkt[TCP].chksum
    return (IP(bytes(pkt)) if p[0] >> 4 == 4 else IPv6(bytes(pkt)))[TCP].chksum == got
