"""RawIpLink: raw sockets on an address the kernel owns, kernel RSTs suppressed by nftables."""

import pytest
from link_helpers import is_tcp_syn, tcp_checksum_ok, wait_for

from rawtcp.host import nft

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("idx", [0, 1], ids=["v4", "v6"])
def test_syn_received_and_kernel_rst_suppressed(vethlab_rawip, idx: int) -> None:
    """Without the rule the kernel of ns r would answer the SYN with RST (RFC 9293 3.10.7.1)."""
    lab = vethlab_rawip
    link = lab.open_link()
    dst = lab.rawtcp_addrs[idx]
    client = lab.client(5010, host=dst, connect_timeout=1.5, timeout=10)
    got = wait_for(link, is_tcp_syn(dst, 5010))
    assert tcp_checksum_ok(next(p for p in got if is_tcp_syn(dst, 5010)(p)))
    err = client.wait_event("error", timeout=5)
    # no RST reached the client: it timed out instead of being refused
    assert err["name"] == "ETIMEDOUT", client.events
    assert link.suppressed_rsts() >= 1
    table = link.table
    assert nft.table_exists(lab.rawtcp_netns, "inet", table)
    link.close()
    assert not nft.table_exists(lab.rawtcp_netns, "inet", table)


def test_port_outside_range_not_suppressed(vethlab_rawip) -> None:
    lab = vethlab_rawip
    link = lab.open_link()
    client = lab.client(6000, connect_timeout=3, timeout=10)
    err = client.wait_event("error", timeout=5)
    assert err["name"] == "ECONNREFUSED"
    assert link.suppressed_rsts() == 0


def test_rawtcp_own_packets_pass_the_filter(vethlab_rawip) -> None:
    """Our RST (sent with SO_MARK) is not dropped: the kernel client sees ECONNRESET."""
    from scapy.layers.inet import IP, TCP

    lab = vethlab_rawip
    link = lab.open_link()
    client = lab.client(5020, connect_timeout=3, timeout=10)
    got = wait_for(link, is_tcp_syn(lab.rawtcp_addr, 5020))
    syn = IP(next(p for p in got if is_tcp_syn(lab.rawtcp_addr, 5020)(p)))
    rst = IP(src=lab.rawtcp_addr, dst=syn.src) / TCP(sport=5020, dport=syn[TCP].sport,
                                                      flags="RA", seq=0, ack=syn[TCP].seq + 1)
    link.send(bytes(rst))
    err = client.wait_event("error", timeout=5)
    assert err["name"] == "ECONNREFUSED"
    assert link.counters["tx_packets"] == 1


def test_table_removed_when_constructor_fails(vethlab_rawip) -> None:
    from rawtcp.link.rawip import RawIpLink

    lab = vethlab_rawip
    before = nft.nft(["list", "tables"], lab.rawtcp_netns)
    with pytest.raises(OSError):
        RawIpLink([lab.rawtcp_addr], ports=[70000], netns=lab.rawtcp_netns)
    assert nft.nft(["list", "tables"], lab.rawtcp_netns) == before
