"""Value types of UDP and ICMP errors that the codecs, fault rules and the core exchange
(like :class:`rawtcp.core.segment.Packet` for TCP), and the ICMP facts the core needs:
the short kind names, which kinds are hard errors, and how much of a packet an error quotes.
Pure data: the encoders and decoders are in :mod:`rawtcp.wire.udp`."""

from __future__ import annotations

from typing import NamedTuple

PROTO_TCP = 6
PROTO_UDP = 17

# (version, type, code) -> kind.  The kinds rawtcp acts on (RFC 1122 4.2.3.9, RFC 5927):
# "port-unreachable" and "proto-unreachable" are hard errors, the rest soft.
_KINDS: dict[tuple[int, int, int], str] = {
    (4, 3, 0): "net-unreachable", (4, 3, 1): "host-unreachable",
    (4, 3, 2): "proto-unreachable", (4, 3, 3): "port-unreachable",
    (4, 3, 4): "frag-needed", (4, 3, 9): "admin-prohibited", (4, 3, 10): "admin-prohibited",
    (4, 3, 13): "admin-prohibited",
    (6, 1, 0): "net-unreachable", (6, 1, 1): "admin-prohibited",
    (6, 1, 3): "host-unreachable", (6, 1, 4): "port-unreachable",
    (6, 4, 1): "proto-unreachable",   # parameter problem: unrecognized next header
}
_ERROR_TYPES = {4: (3, 11, 12), 6: (1, 2, 3, 4)}
#: kind -> (type, code) per IP version, for the encoder
KIND_CODES: dict[tuple[int, str], tuple[int, int]] = {
    (4, "port-unreachable"): (3, 3), (6, "port-unreachable"): (1, 4),
    (4, "proto-unreachable"): (3, 2), (6, "proto-unreachable"): (4, 1),
    (4, "host-unreachable"): (3, 1), (6, "host-unreachable"): (1, 3),
}


def icmp_kind(version: int, type_: int, code: int) -> str:
    """A short name for an ICMP error: port-unreachable, frag-needed, packet-too-big, ..."""
    k = _KINDS.get((version, type_, code))
    if k is not None:
        return k
    if (version, type_) in ((4, 3), (6, 1)):
        return "unreachable"
    if (version, type_) in ((4, 11), (6, 3)):
        return "time-exceeded"
    if (version, type_) in ((4, 12), (6, 4)):
        return "parameter-problem"
    if (version, type_) == (6, 2):
        return "packet-too-big"
    return f"icmp-{type_}/{code}"


def quote_limit(version: int) -> int:
    """Bytes of the offending packet an ICMP error quotes: the whole error stays within
    576 bytes (IPv4, RFC 1812 4.3.2.3) or 1280 bytes (IPv6, RFC 4443 2.4(c))."""
    return 576 - 28 if version == 4 else 1280 - 48


class Datagram(NamedTuple):
    """One UDP datagram with its IP addresses (what the codec, faults and core exchange)."""

    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes

    def __str__(self) -> str:
        return f"{self.src}:{self.sport} > {self.dst}:{self.dport} UDP len={len(self.payload)}"


class IcmpError(NamedTuple):
    """An ICMP/ICMPv6 error message.  ``src``/``dst``: the ICMP packet's addresses;
    ``type``/``code`` as on the wire; ``proto``/``qsrc``/``qdst``/``qsport``/``qdport``:
    the quoted packet (``qseq``: its TCP sequence number, 0 otherwise); ``mtu``: next-hop
    MTU of frag-needed / packet-too-big, else 0; ``quote``: the quoted bytes as carried."""

    src: str
    dst: str
    type: int
    code: int
    proto: int
    qsrc: str
    qdst: str
    qsport: int
    qdport: int
    qseq: int = 0
    mtu: int = 0
    quote: bytes = b""

    @property
    def version(self) -> int:
        return 6 if ":" in self.src else 4

    @property
    def kind(self) -> str:
        return icmp_kind(self.version, self.type, self.code)

    def __str__(self) -> str:
        p = {6: "TCP", 17: "UDP"}.get(self.proto, str(self.proto))
        return (f"{self.src} > {self.dst} ICMP {self.kind} for {p} "
                f"{self.qsrc}:{self.qsport} > {self.qdst}:{self.qdport}")


def port_unreachable(raw: bytes, d: Datagram) -> IcmpError:
    """The ICMP port unreachable answering datagram ``d`` (``raw``: its IP packet, quoted
    as far as quote_limit allows; may be b"": then the IP+UDP header is rebuilt)."""
    version = 6 if ":" in d.src else 4
    t, c = KIND_CODES[(version, "port-unreachable")]
    return IcmpError(d.dst, d.src, t, c, PROTO_UDP, d.src, d.dst, d.sport, d.dport, 0, 0,
                     bytes(raw[:quote_limit(version)]))


