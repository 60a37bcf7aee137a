"""TunLink against the kernel of a private namespace."""

import pytest
from link_helpers import is_tcp_syn, wait_for
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("fam", ["v4", "v6"])
def test_kernel_client_syn_arrives_on_tun(tunlab_dual, fam: str) -> None:
    lab = tunlab_dual
    link = lab.open_link()
    dst = lab.rawtcp_addrs[0 if fam == "v4" else 1]
    assert link.addresses == lab.rawtcp_addrs
    client = lab.client(5001, host=dst, connect_timeout=3, timeout=10)
    got = wait_for(link, is_tcp_syn(dst, 5001))
    assert all(p[0] >> 4 in (4, 6) for p in got)
    client.stop()


def test_icmp_echo_request_to_kernel_gets_reply_v4(tunlab_dual) -> None:
    lab = tunlab_dual
    link = lab.open_link()
    link.send(bytes(IP(src="10.77.0.2", dst="10.77.0.1") / ICMP(id=7, seq=1) / b"ping"))

    def reply(p: bytes) -> bool:
        if p[0] >> 4 != 4:
            return False
        ip = IP(p)
        return ICMP in ip and ip[ICMP].type == 0 and ip[ICMP].id == 7 and ip.dst == "10.77.0.2"
    wait_for(link, reply)
    assert link.counters["tx_packets"] == 1


def test_icmp_echo_request_to_kernel_gets_reply_v6(tunlab_dual) -> None:
    link = tunlab_dual.open_link()
    link.send(bytes(IPv6(src="fd77::2", dst="fd77::1") / ICMPv6EchoRequest(id=9) / b"ping"))

    def reply(p: bytes) -> bool:
        return p[0] >> 4 == 6 and ICMPv6EchoReply in IPv6(p) and IPv6(p)[ICMPv6EchoReply].id == 9
    wait_for(link, reply)


def test_device_disappears_with_link(tunlab_dual) -> None:
    from rawtcp.link import discover

    lab = tunlab_dual
    link = lab.open_link()
    assert lab.tun_name in discover.interfaces(lab.netns)
    link.close()
    assert lab.tun_name not in discover.interfaces(lab.netns)
    link.close()  # idempotent


def test_send_many_sends_in_order_and_reports_each_bad_packet(tunlab_dual) -> None:
    """send_many: a packet over the MTU (EMSGSIZE) or not IP (EINVAL) is returned as an
    error, as send() raises it, and the packets around it still reach the kernel."""
    import errno

    lab = tunlab_dual
    link = lab.open_link()

    def ping(i: int) -> bytes:
        return bytes(IP(src="10.77.0.2", dst="10.77.0.1") / ICMP(id=11, seq=i) / b"ping")

    big = bytes(IP(src="10.77.0.2", dst="10.77.0.1") / ICMP(id=11, seq=99)
                / bytes(link.mtu))
    errors = link.send_many([ping(1), big, b"\x00" * 40, ping(2)])
    assert [e.errno for e in errors] == [errno.EMSGSIZE, errno.EINVAL]
    assert link.counters["tx_packets"] == 2
    seen: set[int] = set()

    def replies(p: bytes) -> bool:
        if p[0] >> 4 == 4:
            ip = IP(p)
            if ICMP in ip and ip[ICMP].type == 0 and ip[ICMP].id == 11:
                seen.add(ip[ICMP].seq)
        return seen == {1, 2}
    wait_for(link, replies)
