"""UDP between rawtcp and the real Linux kernel in a private namespace (issue 11).

RFC 768 datagrams both ways (the kernel verifies rawtcp's checksums, IPv4 and IPv6's
mandatory one, RFC 8200 8.1, and rawtcp verifies the kernel's), and RFC 1122 4.1.3.1: the
kernel answers a datagram to a closed port with ICMP port unreachable, which rawtcp reports
as ECONNREFUSED on a connected socket (as Linux does). Each exchange is checked in rawtcp's
trace and pcap. The raw IP link carries TCP only (an IPPROTO_TCP raw socket), so the TUN
and AF_PACKET links are used.
"""

from __future__ import annotations

import socket
import struct

import pytest
from kernel_helpers import kernel_config

import rawtcp.udp_socket  # noqa: F401 - registers Stack.datagram_socket_class
from rawtcp.host.netns import in_netns
from rawtcp.lab import TunLab, VethLab
from rawtcp.runtime import Stack
from rawtcp.trace import Tracer
from rawtcp.wire.udp import Datagram, IcmpError, decode_non_tcp

pytestmark = pytest.mark.kernel
T = 5.0


def _lab(kind: str, family: str):
    return TunLab(family=family) if kind == "tun" else VethLab(mode=kind, family=family)


def _pcap(path) -> list:
    data = path.read_bytes()
    out, i = [], 24
    while i < len(data):
        incl = struct.unpack_from("<IIII", data, i)[2]
        raw = data[i + 16:i + 16 + incl]
        i += 16 + incl
        try:
            out.append(decode_non_tcp(raw))
        except ValueError:
            pass                      # TCP, neighbour discovery, ...: not UDP
    return out


@pytest.mark.parametrize("kind", ["tun", "packet", "rawip"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_udp_request_response_both_ways_and_port_unreachable(kind, family, tmp_path) -> None:
    fam = socket.AF_INET6 if family == "ipv6" else socket.AF_INET
    pcap = tmp_path / "udp.pcap"
    with _lab(kind, family) as lab:
        tracer = Tracer()
        with Stack(lab.open_link(), kernel_config(), tracer=tracer, pcap=str(pcap),
                   name=f"rawtcp-{kind}") as st:
            kaddr, raddr = lab.kernel_addr, lab.rawtcp_addr
            with in_netns(lab.kernel_netns):
                ks = socket.socket(fam, socket.SOCK_DGRAM)
            try:
                ks.settimeout(T)
                ks.bind((kaddr, 0))
                kport = ks.getsockname()[1]
                # rawtcp -> kernel: request and response
                rs = st.socket(fam, socket.SOCK_DGRAM)
                rs.settimeout(T)
                rs.bind(("", 0))
                rport = rs.getsockname()[1]
                rs.sendto(b"request from rawtcp", (kaddr, kport))
                data, src = ks.recvfrom(100)
                assert data == b"request from rawtcp" and src[:2] == (raddr, rport)
                ks.sendto(b"response from kernel", src)
                data, src = rs.recvfrom(100)
                assert data == b"response from kernel" and src[:2] == (kaddr, kport)
                # kernel -> rawtcp: a kernel client asks a rawtcp server
                srv = st.socket(fam, socket.SOCK_DGRAM)
                srv.settimeout(T)
                srv.bind(("", 5353))
                ks.sendto(b"x" * 1000, (raddr, 5353))
                data, src = srv.recvfrom(2000)
                assert data == b"x" * 1000
                srv.sendto(data[::-1][:500], src)
                assert ks.recv(2000) == b"x" * 500
                # a connected rawtcp socket to a closed kernel port: ICMP port unreachable
                # from the kernel -> ECONNREFUSED on the next call (RFC 1122 4.1.3.1, Linux)
                with in_netns(lab.kernel_netns):
                    probe = socket.socket(fam, socket.SOCK_DGRAM)
                probe.bind((kaddr, 0))
                closed_port = probe.getsockname()[1]
                probe.close()
                cs = st.socket(fam, socket.SOCK_DGRAM)
                cs.settimeout(T)
                cs.connect((kaddr, closed_port))
                cs.send(b"anyone?")
                with pytest.raises(ConnectionRefusedError):
                    cs.recv(100)
                for s in (rs, srv, cs):
                    s.close()
                link = st.link
                suppressed = link.suppressed_unreachables() if kind == "rawip" else 0
            finally:
                ks.close()
    if kind == "rawip":
        # the kernel owns rawtcp's address there: its port unreachable for the datagram
        # rawtcp's server took was dropped by the link's nftables table
        assert suppressed >= 1
    udp = [(e["dir"], e["len"]) for e in tracer.events("udp")]
    assert udp == [("out", 19), ("in", 20), ("in", 1000), ("out", 500), ("out", 7)]
    icmp = tracer.events("icmp")
    assert [(e["dir"], e["kind"], e["qdport"]) for e in icmp] == \
        [("in", "port-unreachable", closed_port)]
    pkts = _pcap(pcap)
    dgrams = [p for p in pkts if isinstance(p, Datagram)]
    assert [len(d.payload) for d in dgrams] == [19, 20, 1000, 500, 7]
    errors = [p for p in pkts if isinstance(p, IcmpError)]
    assert len(errors) == 1 and errors[0].src == kaddr and errors[0].qdport == closed_port


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_kernel_icmp_port_unreachable_refuses_a_tcp_connect_rfc1122_4_2_3_9(family) -> None:
    """The kernel's firewall answers our SYN with ICMP port unreachable (nftables reject):
    a hard error in SYN-SENT, so connect fails with ECONNREFUSED at once (RFC 1122 4.2.3.9,
    RFC 5927 4.1: the quoted sequence number is our SYN's), as on Linux."""
    from rawtcp.host.nft import add_table, delete_table

    fam = socket.AF_INET6 if family == "ipv6" else socket.AF_INET
    with TunLab(family=family) as lab:
        table = f"rtudp{lab.tag[-6:]}"
        add_table(lab.kernel_netns, "inet", table,
                  "chain input { type filter hook input priority 0; "
                  "tcp dport 7777 reject with icmpx type port-unreachable; }")
        try:
            tracer = Tracer()
            with Stack(lab.open_link(), kernel_config(), tracer=tracer, name="rawtcp-tun") as st:
                s = st.socket(fam, socket.SOCK_STREAM)
                s.settimeout(T)
                with pytest.raises(ConnectionRefusedError):
                    s.connect((lab.kernel_addr, 7777))
                assert st.core.counters["icmp_tcp_aborted"] == 1
                # refused by the ICMP error, not by a timeout: one SYN only
                syns = [e for e in tracer.events("seg") if e["dir"] == "out"]
                assert len(syns) == 1 and syns[0]["flags"] == "S"
                icmp = tracer.events("icmp")
                assert icmp[0]["proto"] == 6 and icmp[0]["kind"] == "port-unreachable"
                s.close()
        finally:
            delete_table(lab.kernel_netns, "inet", table)
