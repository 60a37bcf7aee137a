"""The packet pipeline between a link and the core, both ways (a part of runtime.Stack).

In: decode (rawtcp.wire) -> pcap -> fault rules ("in") -> core.on_packets, a batch at a
time; UDP datagrams and ICMP errors go their own way to the core. Out: core.take_packets ->
fault rules ("out") -> encode (corrupted or with a rule's TTL when a rule says so) -> pcap ->
the transmit queue. Everything here runs under the stack's lock; runtime.Stack owns the
threads, the lock and the link I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rawtcp import wire
from rawtcp.core.segment import Packet
from rawtcp.trace import encode_packet
from rawtcp.wire import udp as _udp_wire

_decode_ip = wire.decode_ip
_encode_ip = wire.encode_ip
_ParseError = wire.ParseError
_decode_non_tcp = _udp_wire.decode_non_tcp


class PacketPipeline:
    """Mixin of runtime.Stack: the attributes it uses are the Stack's (counters, addresses,
    core, faults, _pcap, _wall0_us, _verify_rx, offload, _mtu, _tx, _trace)."""

    counters: dict[str, int]
    addresses: list[str]
    core: Any
    faults: Any
    offload: bool
    _pcap: Any
    _wall0_us: int
    _verify_rx: bool
    _mtu: int
    _tx: list[bytes]
    _trace: Callable[[dict[str, Any]], None]

    def _input(self, frames: list[bytes], now: int) -> None:
        """Decode a batch of frames and hand the stack's packets to the core in one go."""
        counters = self.counters
        counters["frames_in"] += len(frames)
        addresses = self.addresses
        pcap = self._pcap
        faults = self.faults
        batch: list[Packet] = []
        for raw in frames:
            try:
                pkt = _decode_ip(raw, self._verify_rx)
            except _ParseError as e:
                reason = getattr(e, "reason", "malformed")
                if reason == "not-tcp":
                    self._input_other(raw, now)     # UDP, ICMP: off the TCP path
                    continue
                counters["dropped_malformed"] += 1
                self._trace({"t": now, "ev": "drop", "dir": "in", "reason": reason})
                if pcap is not None:
                    pcap.record(raw, self._wall0_us + now)
                continue
            if addresses and pkt.dst not in addresses:
                counters["dropped_not_ours"] += 1
                continue
            if pcap is not None:
                pcap.record(raw, self._wall0_us + now)
            if faults is None:
                batch.append(pkt)
                continue
            for when, p, corrupt in faults.process("in", pkt, now):
                self._deliver_in(when, p, corrupt, now, batch)
        if batch:
            self.core.on_packets(batch, now)

    def _input_other(self, raw: bytes, now: int) -> None:
        """A UDP datagram or an ICMP error (rawtcp.wire.udp), straight to the core."""
        counters = self.counters
        try:
            obj = _decode_non_tcp(raw, self._verify_rx)
        except _ParseError as e:
            if e.reason == "not-udp":
                return                    # another protocol: not ours, as before
            counters["dropped_malformed"] += 1
            self._trace({"t": now, "ev": "drop", "dir": "in", "reason": e.reason})
            if self._pcap is not None:
                self._pcap.record(raw, self._wall0_us + now)
            return
        if self.addresses and obj.dst not in self.addresses:
            counters["dropped_not_ours"] += 1
            return
        if self._pcap is not None:
            self._pcap.record(raw, self._wall0_us + now)
        if self.faults is None:
            self._deliver_other(obj, False, now, raw)
            return
        for _when, p, corrupt in self.faults.process("in", obj, now):
            self._deliver_other(p, corrupt, now, raw if p is obj else b"")

    def _deliver_other(self, obj: Any, corrupt: bool, now: int, raw: bytes = b"") -> None:
        if corrupt:
            self.counters["dropped_corrupt"] += 1
            self._trace({"t": now, "ev": "drop", "dir": "in", "reason": "bad-checksum"})
        elif isinstance(obj, _udp_wire.Datagram):
            self.core.on_datagram(obj, now, raw)
        else:
            self.core.on_icmp(obj, now)

    def _fault_release_at(self) -> int | None:
        return self.faults.pending_release_at() if self.faults is not None else None

    def _deliver_in(self, when: int, pkt: Packet, corrupt: bool, now: int,
                    batch: list[Packet]) -> None:
        if type(pkt) is not Packet:            # a held UDP datagram or ICMP error
            self._deliver_other(pkt, corrupt, now)
            return
        if corrupt:
            # What the core would see after a checksum check: nothing. Count it as such.
            self.counters["dropped_corrupt"] += 1
            self._trace({"t": now, "ev": "drop", "dir": "in", "reason": "bad-checksum"})
            return
        batch.append(pkt)

    def _release_held(self, now: int) -> None:
        batch: list[Packet] = []
        out: list[tuple[Packet, bool]] = []
        for when, p, corrupt in self.faults.release_due(now, "in"):
            self._deliver_in(when, p, corrupt, now, batch)
        for _when, p, corrupt in self.faults.release_due(now, "out"):
            out.append((p, corrupt))
        if batch:
            self.core.on_packets(batch, now)
        ttl_for = self.faults.ttl_for
        for p, c in out:
            ttl = ttl_for(p)
            self._tx.append(self._encode(p, c, now) if ttl is None
                            else self._encode_ttl(p, c, now, ttl))

    def _flush(self, now: int) -> None:
        """Under the lock: the core's output through the fault rules, encoded (and recorded
        in the pcap) in order, onto the transmit queue that the loop thread writes."""
        pkts = self.core.take_packets()
        if not pkts:
            return
        encode = self._encode
        out = self._tx
        if self.faults is None:
            if self._pcap is None and not self.offload:      # the common case, one call less
                out.extend([_encode_ip(p) if type(p) is Packet else encode(p, False, now)
                            for p in pkts])
            else:
                out.extend([encode(pkt, False, now) for pkt in pkts])
            return
        ttl_for = self.faults.ttl_for                 # a mangle rule's ttl=
        for pkt in pkts:
            for _when, p, corrupt in self.faults.process("out", pkt, now):
                ttl = ttl_for(p)                      # only what is due now: the engine
                out.append(encode(p, corrupt, now) if ttl is None   # holds the rest
                           else self._encode_ttl(p, corrupt, now, ttl))

    def _encode(self, pkt: Packet, corrupt: bool, now: int) -> bytes:
        if type(pkt) is not Packet:
            return self._encode_other(pkt, corrupt, now)
        if corrupt:
            raw = encode_packet(pkt, True)
        elif self.offload and len(pkt.segment.payload) > self._mtu - 40:   # > MTU: GSO
            raw = _encode_ip(pkt, payload_sum=False)   # the link writes the partial sum
        else:
            raw = _encode_ip(pkt)
        if self._pcap is not None:
            self._pcap.record(raw, self._wall0_us + now)
        return raw

    def _encode_ttl(self, pkt: Packet, corrupt: bool, now: int, ttl: int) -> bytes:
        """A segment a fault rule gave its own IP TTL / hop limit (mangle ... set ttl=N)."""
        raw = _encode_ip(pkt, ttl=ttl)
        if corrupt:
            raw = wire.corrupt_checksum(raw)
        if self._pcap is not None:
            self._pcap.record(raw, self._wall0_us + now)
        return raw

    def _encode_other(self, obj: Any, corrupt: bool, now: int) -> bytes:
        """A UDP datagram or an ICMP error from the core (rawtcp.core.udp)."""
        if isinstance(obj, _udp_wire.Datagram):
            raw = _udp_wire.encode_datagram(obj)
        else:
            raw = _udp_wire.encode_icmp_error(obj)
        if corrupt:
            raw = _udp_wire.corrupt_checksum_non_tcp(raw)
        if self._pcap is not None:
            self._pcap.record(raw, self._wall0_us + now)
        return raw
