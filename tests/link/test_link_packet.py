"""PacketLink: rawtcp owns an address on a veth; it answers ARP/ND and resolves peers."""

import subprocess

import pytest
from link_helpers import collect_until, is_tcp_syn, tcp_checksum_ok, wait_for
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

from rawtcp.lab import VethLab

pytestmark = pytest.mark.kernel


def neigh(netns: str, addr: str) -> str:
    return subprocess.run(["ip", "-n", netns, "neigh", "show", addr], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("idx", [0, 1], ids=["v4-arp", "v6-nd"])
def test_kernel_resolves_rawtcp_and_syn_arrives(vethlab_packet, idx: int) -> None:
    """RFC 826 / RFC 4861 7.2.4: the link answers for its own address with its MAC."""
    lab = vethlab_packet
    link = lab.open_link()
    dst = lab.rawtcp_addrs[idx]
    client = lab.client(5002, host=dst, connect_timeout=3, timeout=10)
    got = wait_for(link, is_tcp_syn(dst, 5002))
    client.stop()
    entry = neigh(lab.kernel_netns, dst)
    assert link.mac in entry
    assert any(s in entry for s in ("REACHABLE", "STALE", "DELAY"))
    assert link.counters["arp_replies_sent" if idx == 0 else "na_sent"] >= 1
    syns = [p for p in got if is_tcp_syn(dst, 5002)(p)]
    assert all(tcp_checksum_ok(p) for p in syns)


def test_link_resolves_kernel_and_gets_echo_replies(vethlab_packet) -> None:
    lab = vethlab_packet
    link = lab.open_link()
    link.send(bytes(IP(src="10.78.0.2", dst="10.78.0.1") / ICMP(id=3) / b"a"))
    link.send(bytes(IPv6(src="fd78::2", dst="fd78::1") / ICMPv6EchoRequest(id=4) / b"b"))
    # both packets wait for resolution, then go out
    def v4_reply(p: bytes) -> bool:
        return p[0] >> 4 == 4 and ICMP in IP(p) and IP(p)[ICMP].type == 0

    def v6_reply(p: bytes) -> bool:
        return p[0] >> 4 == 6 and ICMPv6EchoReply in IPv6(p)
    collect_until(link, lambda got: any(map(v4_reply, got)) and any(map(v6_reply, got)))
    assert link.neighbors() == {"10.78.0.1": lab.kernel_mac, "fd78::1": lab.kernel_mac}
    assert link.counters["arp_requests_sent"] == 1 and link.counters["ns_sent"] == 1


def test_unresolvable_peer_bounded_retries_and_queue(vethlab_packet) -> None:
    import selectors
    import time

    lab = vethlab_packet
    link = lab.open_link(resolve_retries=2, resolve_interval=0.2, queue_limit=2)
    for _ in range(4):
        link.send(bytes(IP(src="10.78.0.2", dst="10.78.0.99") / ICMP()))
    assert link.counters["dropped_resolve_queue_full"] == 2
    deadline = time.monotonic() + 3
    with selectors.DefaultSelector() as sel:
        sel.register(link, selectors.EVENT_READ)   # the retry timer wakes the selector
        while link.counters["resolve_failed"] == 0 and time.monotonic() < deadline:
            sel.select(deadline - time.monotonic())
            link.recv_batch()
    assert link.counters["arp_requests_sent"] == 2
    assert link.counters["dropped_unresolved"] == 2


def test_partial_checksums_from_offloading_kernel_are_completed() -> None:
    """veth with tx offload on: frames arrive CSUMNOTREADY; the link completes them."""
    with VethLab(mode="packet", family="ipv4", tx_offload=True) as lab:
        link = lab.open_link()
        client = lab.client(5003, connect_timeout=3, timeout=10)
        got = wait_for(link, is_tcp_syn(lab.rawtcp_addr, 5003))
        client.stop()
        syn = next(p for p in got if is_tcp_syn(lab.rawtcp_addr, 5003)(p))
        assert link.counters["csum_completed"] >= 1
        assert tcp_checksum_ok(syn)


def test_clash_with_kernel_address_refused(vethlab_packet) -> None:
    import errno

    from rawtcp.link.packet import PacketLink

    lab = vethlab_packet
    with pytest.raises(OSError) as e:
        PacketLink(lab.kernel_if, [lab.kernel_addr], netns=lab.kernel_netns)
    assert e.value.errno == errno.EADDRINUSE


def test_own_mac_other_than_interface(vethlab_packet) -> None:
    """A MAC of rawtcp's own: the interface goes promiscuous, ARP answers carry that MAC."""
    lab = vethlab_packet
    link = lab.open_link(mac="02:72:74:00:00:02")
    client = lab.client(5004, host=lab.rawtcp_addr, connect_timeout=3, timeout=10)
    wait_for(link, is_tcp_syn(lab.rawtcp_addr, 5004))
    client.stop()
    assert "02:72:74:00:00:02" in neigh(lab.kernel_netns, lab.rawtcp_addr)



def test_outgoing_frames_of_others_on_the_interface_ignored(vethlab_packet) -> None:
    """An AF_PACKET socket with ETH_P_ALL also reads every frame that *leaves* the
    interface (PACKET_OUTGOING): the kernel's own traffic, or another tool's. Such a frame
    addressed to rawtcp (its MAC and IP) was never received and must not be handed up; the
    same frame arriving from the wire (the kernel side of the veth) must be."""
    import socket

    from scapy.layers.inet import TCP
    from scapy.layers.l2 import Ether

    from rawtcp.host.netns import in_netns

    lab = vethlab_packet
    link = lab.open_link()
    other_mac = "02:00:00:00:00:77"      # not the link's MAC: only PACKET_OUTGOING tells

    def frame(mark: bytes) -> bytes:
        return bytes(Ether(src=other_mac, dst=link.mac)
                     / IP(src=lab.kernel_addr, dst=lab.rawtcp_addr)
                     / TCP(sport=4000, dport=4001, flags="S") / mark)

    senders = []
    try:
        for ns, ifname in ((lab.rawtcp_netns, lab.rawtcp_if), (lab.kernel_netns, lab.kernel_if)):
            with in_netns(ns):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind((ifname, 0))
            senders.append(s)
        senders[0].send(frame(b"outgoing"))       # leaves rawtcp's interface
        senders[1].send(frame(b"incoming"))       # crosses the veth towards rawtcp
        got = wait_for(link, lambda p: p.endswith(b"incoming"))
    finally:
        for s in senders:
            s.close()
    assert not [p for p in got if p.endswith(b"outgoing")]
    assert [p for p in got if p.endswith(b"incoming")]


def test_answer_racing_the_request_still_releases_the_first_packet(vethlab_packet) -> None:
    """The loop thread may read the ARP reply while the sending thread is still inside
    send() (right after the request went out). The packet that started the resolution must
    go out anyway: it once stayed queued forever and cost every such connect a full RTO."""
    import struct

    lab = vethlab_packet
    link = lab.open_link()
    real_solicit = link._solicit
    kernel_mac = bytes.fromhex(lab.kernel_mac.replace(":", ""))

    def solicit_and_answer_at_once(ip, pend):
        real_solicit(ip, pend)
        reply = (struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + kernel_mac + ip
                 + bytes.fromhex(link.mac.replace(":", "")) + next(iter(link._v4)))
        link._on_arp(reply)       # what the loop thread does when the reply arrives

    link._solicit = solicit_and_answer_at_once
    before = link.counters["tx_frames"]
    link.send(bytes(IP(src="10.78.0.2", dst="10.78.0.1") / ICMP(id=9) / b"first"))
    assert link.counters["tx_frames"] == before + 2        # the ARP request and the packet
    assert not link._pending
