"""Reading capture files: classic pcap (both byte orders, us or ns timestamps) and pcapng,
without Scapy, into frames, IP packets and seg events for the ladder and the plots.

- :func:`read_capture` every frame of a pcap or pcapng file, :func:`is_capture` a quick check;
- :func:`read_pcap` / :func:`parse_pcap` classic pcap only (what ``rawtcp --pcap`` writes,
  :class:`rawtcp.trace.PcapRecorder`);
- :func:`ip_of_frame` the IP packet inside a frame (Ethernet, VLAN, raw IP, Linux cooked
  SLL/SLL2, BSD loopback);
- :func:`seg_events_from_pcap` seg events (docs/contracts.md) for every TCP segment.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from typing import Any

from rawtcp.core.segment import Flags, parse_flags
from rawtcp.report.enrich import Event, enrich
from rawtcp.trace import LINKTYPE_RAW as TRACE_LINKTYPE_RAW

__all__ = ["LINKTYPE_RAW", "ip_of_frame", "is_capture", "parse_our_addr", "parse_pcap",
           "read_capture", "read_pcap", "seg_events_from_pcap"]

LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in host order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = TRACE_LINKTYPE_RAW   # what PcapRecorder writes
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family in network order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_CLASSIC_MAGICS = (0xA1B2C3D4, 0xA1B23C4D)  # microsecond, nanosecond timestamps
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D
_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_ETH_VLAN = (0x8100, 0x88A8, 0x9100)


def is_capture(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` starts like a capture file :func:`read_capture` reads: classic pcap
    (either byte order, microsecond or nanosecond timestamps) or pcapng. False for anything
    else, including a file that cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return _capture_kind(head) is not None


def _capture_kind(head: bytes) -> str | None:
    if len(head) >= 4:
        for endian in ("<", ">"):
            if struct.unpack_from(endian + "I", head)[0] in _CLASSIC_MAGICS:
                return "pcap"
    if len(head) >= 12 and struct.unpack_from("<I", head)[0] == _PCAPNG_SHB:
        # the block type is a palindrome; the byte-order magic after the length decides
        if _PCAPNG_BOM in (struct.unpack_from("<I", head, 8)[0],
                           struct.unpack_from(">I", head, 8)[0]):
            return "pcapng"
    return None


def read_capture(path: str | os.PathLike[str]) -> list[tuple[int, int, bytes]]:
    """Every frame of a classic pcap or pcapng file as ``(ts_us, linktype, frame_bytes)``.

    A truncated last record or block ends the reading (what came before is kept). Raises
    OSError(EINVAL) when the file is neither format, OSError as ``open`` does otherwise.
    """
    with open(path, "rb") as f:
        data = f.read()
    kind = _capture_kind(data[:12])
    if kind == "pcap" and len(data) >= 24:
        return _read_classic(data)
    if kind == "pcapng":
        return _read_pcapng(data)
    raise OSError(errno.EINVAL, f"{os.fspath(path)} is not a capture file: expected classic "
                  "pcap or pcapng (e.g. from tcpdump -w, tshark -w, rawtcp --pcap)")


def _read_classic(data: bytes) -> list[tuple[int, int, bytes]]:
    linktype, records = parse_pcap(data)
    return [(ts, linktype, frame) for ts, frame in records]


def read_pcap(path: str | os.PathLike[str]) -> tuple[int, list[tuple[int, bytes]]]:
    """Read a classic pcap file: returns (linktype, [(ts_us, frame_bytes), ...]).

    Handles both byte orders and the nanosecond variant. A truncated last record is ignored.
    Raises ValueError if the file is not a classic pcap (for pcapng too: :func:`read_capture`).
    """
    with open(path, "rb") as f:
        return parse_pcap(f.read(), str(path))


def parse_pcap(data: bytes, path: str = "pcap") -> tuple[int, list[tuple[int, bytes]]]:
    """The bytes of a classic pcap file: (linktype, [(ts_us, frame_bytes), ...])."""
    if len(data) < 24:
        raise ValueError(f"{path}: too short for a pcap file")
    magic_le = struct.unpack_from("<I", data)[0]
    for endian in ("<", ">"):
        magic = struct.unpack_from(endian + "I", data)[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError(f"{path}: not a classic pcap file (magic {magic_le:#010x})")
    nano = magic == 0xA1B23C4D
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    rec = struct.Struct(endian + "IIII")
    out: list[tuple[int, bytes]] = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = rec.unpack_from(data, off)
        off += 16
        if off + incl > len(data):
            break
        ts = sec * 1_000_000 + (frac // 1000 if nano else frac)
        out.append((ts, data[off : off + incl]))
        off += incl
    return linktype, out


@dataclass
class _Iface:
    linktype: int
    snaplen: int
    units: int = 1_000_000  # timestamp units per second (if_tsresol)
    offset_s: int = 0  # if_tsoffset


def _iface(body: bytes, endian: str) -> _Iface:
    linktype, _res, snaplen = struct.unpack_from(endian + "HHI", body)
    itf = _Iface(linktype, snaplen)
    off = 8
    while off + 4 <= len(body):  # options: code, length, value padded to 32 bits
        code, n = struct.unpack_from(endian + "HH", body, off)
        off += 4
        val = body[off:off + n]
        off += (n + 3) & ~3
        if code == 0:
            break
        if code == 9 and n >= 1:  # if_tsresol: 10^-v, or 2^-v when the top bit is set
            v = val[0]
            itf.units = (1 << (v & 0x7F)) if v & 0x80 else 10 ** v
        elif code == 14 and n >= 8:  # if_tsoffset, seconds
            itf.offset_s = struct.unpack_from(endian + "q", val)[0]
    return itf


def _read_pcapng(data: bytes) -> list[tuple[int, int, bytes]]:
    out: list[tuple[int, int, bytes]] = []
    endian = "<"
    ifaces: list[_Iface] = []
    off = 0
    last_ts = 0
    while off + 12 <= len(data):
        btype = struct.unpack_from("<I", data, off)[0]
        if btype == _PCAPNG_SHB:  # a new section: its own byte order and interfaces
            bom = struct.unpack_from("<I", data, off + 8)[0]
            endian = "<" if bom == _PCAPNG_BOM else ">"
            ifaces = []
        btype, blen = struct.unpack_from(endian + "II", data, off)
        if blen < 12 or blen % 4 or off + blen > len(data):
            break  # truncated or damaged: keep what was read
        body = data[off + 8:off + blen - 4]
        off += blen
        try:
            if btype == 1:  # Interface Description Block
                ifaces.append(_iface(body, endian))
            elif btype in (6, 2):  # Enhanced Packet Block, obsolete Packet Block
                if btype == 6:
                    iid, hi, lo, caplen, _orig = struct.unpack_from(endian + "IIIII", body)
                else:
                    iid, _drops, hi, lo, caplen, _orig = struct.unpack_from(endian + "HHIIII",
                                                                           body)
                if iid >= len(ifaces) or 20 + caplen > len(body):
                    continue
                itf = ifaces[iid]
                ts = (hi << 32) | lo
                last_ts = itf.offset_s * 1_000_000 + ts * 1_000_000 // itf.units
                out.append((last_ts, itf.linktype, body[20:20 + caplen]))
            elif btype == 3 and ifaces:  # Simple Packet Block: interface 0, no timestamp
                orig = struct.unpack_from(endian + "I", body)[0]
                n = min(orig, len(body) - 4, ifaces[0].snaplen or orig)
                out.append((last_ts, ifaces[0].linktype, body[4:4 + n]))
        except struct.error:
            continue  # a block too short for its own header: skipped
    return out


def ip_of_frame(linktype: int, frame: bytes) -> bytes | None:
    """The IP packet inside a frame of one of the link types captures of rawtcp's traffic
    have (Ethernet with or without VLAN tags, raw IP, Linux cooked v1/v2, BSD loopback),
    trimmed to the IP header's own length (no Ethernet trailer). None if it is not IP."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        etype = int.from_bytes(frame[12:14], "big")
        off = 14
        while etype in _ETH_VLAN and len(frame) >= off + 4:
            etype = int.from_bytes(frame[off + 2:off + 4], "big")
            off += 4
        ip = frame[off:] if etype in (_ETH_IPV4, _ETH_IPV6) else b""
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        ip = frame
    elif linktype == LINKTYPE_LINUX_SLL:
        ok = len(frame) >= 16 and int.from_bytes(frame[14:16], "big") in (_ETH_IPV4, _ETH_IPV6)
        ip = frame[16:] if ok else b""
    elif linktype == LINKTYPE_LINUX_SLL2:
        ok = len(frame) >= 20 and int.from_bytes(frame[0:2], "big") in (_ETH_IPV4, _ETH_IPV6)
        ip = frame[20:] if ok else b""
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        ip = frame[4:]
    else:
        return None
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4 and len(ip) >= 20:
        total = int.from_bytes(ip[2:4], "big")
        return ip[:total] if total >= 20 else ip
    if version == 6 and len(ip) >= 40:
        return ip[:40 + int.from_bytes(ip[4:6], "big")]
    return None


def seg_events_from_pcap(path: str | os.PathLike[str], our_addr: str | None = None) -> list[Event]:
    """Seg events (``dir``, addresses, ports, seq/ack, rseq/rack, flags, win, len, ``t`` in us)
    for every TCP segment in a capture file, and ``udp`` events (``dir``, addresses, ports,
    len) for every UDP datagram: classic pcap or pcapng, link types Ethernet, raw IP, Linux
    cooked (SLL, SLL2) and BSD loopback (see :func:`ip_of_frame`).

    ``our_addr`` ("10.0.0.1", "fd00::1" or "10.0.0.1:40000") is rawtcp's side; by default the
    side that sent the first SYN without ACK (without TCP: the first datagram's sender).
    Packets not to or from our side are skipped.

    Raises OSError(EINVAL) if ``our_addr`` is not an address (or address:port), if the file
    is not a capture, or if ``our_addr`` is given and no TCP segment is from or to it (the
    message lists the addresses the capture holds).
    """
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6

    ours: tuple[str, int | None] | None = None
    if our_addr is not None:
        ours = parse_our_addr(our_addr)
    rows: list[tuple[int, str, int, str, int, Any]] = []
    datagrams: list[tuple[int, str, int, str, int, int]] = []
    for t, linktype, frame in read_capture(path):
        raw = ip_of_frame(linktype, frame)
        if raw is None:
            continue
        try:
            ip = IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)
        except Exception:  # noqa: BLE001 - a malformed packet is skipped, never a crash
            continue
        if not ip.haslayer(TCP):
            if ip.haslayer(UDP):
                udp = ip[UDP]
                datagrams.append((t, str(ip.src), int(udp.sport), str(ip.dst), int(udp.dport),
                                  len(bytes(udp.payload))))
            continue
        tcp = ip[TCP]
        rows.append((t, str(ip.src), int(tcp.sport), str(ip.dst), int(tcp.dport), tcp))
    if ours is None:
        for _t, src, sport, _dst, _dport, tcp in rows:
            f = int(tcp.flags)
            if f & Flags.SYN and not f & Flags.ACK:
                ours = (src, sport)
                break
        if ours is None and rows:
            ours = (rows[0][1], rows[0][2])
        if ours is None and datagrams:
            ours = (datagrams[0][1], datagrams[0][2])
    events: list[Event] = []
    if ours is None:
        return events
    for t, src, sport, dst, dport, tcp in rows:
        if _is(ours, src, sport):
            d = "out"
        elif _is(ours, dst, dport):
            d = "in"
        else:
            continue
        payload = bytes(tcp.payload)
        flags = str(tcp.flags)
        flags = "".join(ch for ch in "FSRPAUEC" if ch in flags)
        parse_flags(flags)  # canonical letters only
        events.append({
            "t": t, "ev": "seg", "dir": d, "src": src, "dst": dst, "sport": sport,
            "dport": dport, "seq": int(tcp.seq), "ack": int(tcp.ack), "rseq": None,
            "rack": None, "flags": flags, "win": int(tcp.window), "len": len(payload),
            "conn": (f"{src}:{sport}>{dst}:{dport}" if d == "out"
                     else f"{dst}:{dport}>{src}:{sport}"),
        })
    for t, src, sport, dst, dport, n in datagrams:
        if _is(ours, src, sport):
            d = "out"
        elif _is(ours, dst, dport):
            d = "in"
        else:
            continue
        events.append({"t": t, "ev": "udp", "dir": d, "src": src, "dst": dst, "sport": sport,
                       "dport": dport, "len": n})
    events.sort(key=lambda e: e["t"])           # stable: capture order within a time
    if not events and our_addr is not None:
        seen: dict[str, None] = {}
        for _t, src, sport, dst, dport, _tcp in rows:
            for a, p in ((src, sport), (dst, dport)):
                seen[_show(a, p) if ours[1] is not None else a] = None
        names = list(seen)
        listed = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12
                                          else "")
        raise OSError(errno.EINVAL,
                      f"no TCP segments from or to {our_addr.strip()} in {os.fspath(path)} "
                      f"(addresses in it: {listed or 'none, it holds no TCP segment'})")
    return enrich(events)


def _show(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def parse_our_addr(text: str) -> tuple[str, int | None]:
    """``"10.0.0.1"``, ``"fd00::1"``, ``"10.0.0.1:40000"`` or ``"[fd00::1]:40000"`` ->
    (address, port or None). OSError(EINVAL) for anything else."""
    try:
        addr, port = _split_addr(text)
    except ValueError:
        addr, port = "", -1
    if not addr or port is not None and not 0 <= port <= 65535:
        raise OSError(errno.EINVAL,
                      f"our address {text!r} is not an IP address (or address:port): use "
                      "10.0.0.1, fd00::1, 10.0.0.1:40000 or [fd00::1]:40000")
    return addr, port


def _split_addr(text: str) -> tuple[str, int | None]:
    import ipaddress

    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6] or [v6]:port
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"junk after ]: {rest!r}")
        return str(ipaddress.ip_address(host)), int(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return str(ipaddress.ip_address(host)), int(port)
    return str(ipaddress.ip_address(text)), None


def _is(ours: tuple[str, int | None], addr: str, port: int) -> bool:
    return addr == ours[0] and (ours[1] is None or ours[1] == port)
