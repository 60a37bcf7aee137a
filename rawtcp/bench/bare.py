"""Bare TCP endpoints in plain Python over a TUN fd: the "pure Python ceiling" of the bench.

No stack, no timers, no threads: `struct` headers, RFC 1071 checksums summed with one
`int.from_bytes` each (a buffer read as a big-endian integer is congruent to its one's
complement sum modulo 0xffff, since 2**16 == 1 mod 0xffff; a full segment's integer is
folded first, ``rawtcp.wire.fast.fold``, as rawtcp's codec does), and one
`os.read`/`os.writev` per packet. What they still do, because the kernel peer is real TCP
(RFC 9293):

- active open with MSS and window scale options (RFC 7323 section 2), SYN retransmitted;
- BareReceiver: verifies the IPv4 header and TCP checksums of every segment, takes in-order
  data, drops out-of-order data, ACKs every segment with a cumulative ACK and a fixed window
  (the receive buffer: data is consumed at once), answers the peer's FIN with its own and
  waits for that FIN's ACK (passive close, RFC 9293 section 3.6);
- BareStream: one short connection of the connection-rate reference, with the socket
  methods `common.conn_loop` calls (sendall, recv, close): the request sent as one segment
  (again after RTO until ACKed), the echo taken in order and ACKed segment by segment, and
  the active close of `finish`. No TIME_WAIT is kept (a bare endpoint has nowhere to keep
  it): each connection takes the next source port instead;
- BareSender: sends MSS-sized segments as far as the peer's advertised window allows (no
  congestion control), avoids silly windows (RFC 9293 section 3.8.6.2.1), goes back to the
  first unacknowledged byte when no ACK arrives for a while, probes a zero window, and closes
  with FIN, then ACKs the peer's FIN.

Sequence numbers are kept unwrapped (Python ints) and masked to 32 bits on the wire. IPv4 only
(the bench's TUN lab), no IP options sent, fragments dropped.
"""

from __future__ import annotations

import errno
import os
import secrets
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable

from rawtcp.bench.common import stream_slice
from rawtcp.wire.fast import fold

IP4 = struct.Struct("!BBHHHBBH4s4s")
TCP = struct.Struct("!HHIIBBHHH")
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MASK = 0xFFFFFFFF
WSCALE = 7                   # the window scale we announce (Linux's usual)
DF = 0x4000
RTO = 0.2                    # go-back-N after this long without an ACK (Linux's RTO_MIN)
SYN_RTO = 1.0                # RFC 6298 section 2.1
MAX_READS = 512              # packets read per batch

DataCallback = Callable[[memoryview], None]


def _checksum_field(total: int) -> int:
    """The checksum field for an integer sum `total` > 0 (RFC 1071, folded modulo 0xffff)."""
    return 0xFFFF - (total % 0xFFFF or 0xFFFF)


class _BareTcp:
    """One TCP connection from `local` to `remote:port`, written straight to a TUN fd."""

    def __init__(self, fd: int, local: str, remote: str, port: int, mtu: int,
                 rcv_buffer: int, deadline: float, sport: int | None = None,
                 counters: Counter[str] | None = None) -> None:
        self.fd = fd
        self.src, self.dst = socket.inet_aton(local), socket.inet_aton(remote)
        self.sport = 40000 + secrets.randbelow(20000) if sport is None else sport
        self.dport = port
        self.mtu = mtu
        self.mss = mtu - 40
        self.deadline = deadline
        self.pseudo = int.from_bytes(self.src + self.dst, "big") + socket.IPPROTO_TCP
        iss = secrets.randbits(32)
        self.snd_una = self.snd_nxt = iss          # unwrapped
        self.rcv_nxt = 0                           # unwrapped, set by the SYN-ACK
        self.rcv_wscale = WSCALE
        self.snd_wscale = 0
        self.snd_wnd = 0
        self.peer_mss = 536                        # RFC 9293 3.7.1 default
        self.fin_received = False
        self.rcv_buffer = rcv_buffer
        # shared by the connections of one run (BareStream) when given
        self.counters: Counter[str] = Counter() if counters is None else counters
        self._ip_headers: dict[int, bytes] = {}
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    # ------------------------------------------------------------------------- output
    def _ip_header(self, length: int) -> bytes:
        hdr = self._ip_headers.get(length)
        if hdr is None:
            raw = IP4.pack(0x45, 0, length, 0, DF, 64, socket.IPPROTO_TCP, 0, self.src, self.dst)
            csum = _checksum_field(int.from_bytes(raw, "big"))
            hdr = raw[:10] + csum.to_bytes(2, "big") + raw[12:]
            self._ip_headers[length] = hdr
        return hdr

    @property
    def window_field(self) -> int:
        return min(self.rcv_buffer >> self.rcv_wscale, 0xFFFF)

    def send(self, flags: int, seq: int, payload: bytes | memoryview = b"",
             options: bytes = b"", window: int | None = None) -> None:
        """One segment: seq (unwrapped), ack = rcv_nxt, the receive window, checksums."""
        hlen = 20 + len(options)
        length = hlen + len(payload)
        win = self.window_field if window is None else window
        ack = self.rcv_nxt & MASK if flags & ACK else 0
        hdr = TCP.pack(self.sport, self.dport, seq & MASK, ack, hlen << 2, flags, win, 0, 0)
        total = self.pseudo + length + int.from_bytes(hdr + options, "big")
        if payload:
            p = int.from_bytes(payload, "big")
            if len(payload) & 1:
                p <<= 8
            total += fold(p) if len(payload) > 512 else p   # as rawtcp's codec does
        hdr = TCP.pack(self.sport, self.dport, seq & MASK, ack, hlen << 2, flags, win,
                       _checksum_field(total), 0)
        os.writev(self.fd, (self._ip_header(20 + length), hdr, options, payload))
        self.counters["segments_out"] += 1

    # -------------------------------------------------------------------------- input
    def read(self, timeout: float) -> list[bytes]:
        """Packets waiting now; if none, wait up to `timeout` seconds (bounded by the
        deadline) for some. OSError(ETIMEDOUT) once the deadline has passed."""
        out: list[bytes] = []
        for attempt in range(2):
            for _ in range(MAX_READS):
                try:
                    out.append(os.read(self.fd, 65536))
                except BlockingIOError:
                    break
            if out or attempt:
                break
            left = self.deadline - time.monotonic()
            if left <= 0:
                break
            self._poll.poll(max(1, int(min(timeout, left) * 1000)))
        if not out and time.monotonic() > self.deadline:
            raise OSError(errno.ETIMEDOUT, "bare endpoint: no progress before the timeout")
        return out

    def parse(self, pkt: bytes) -> tuple[int, int, int, int, int, int] | None:
        """(seq, ack, flags, window, data offset, data end) of a segment of this connection
        whose IPv4 and TCP checksums verify; None (and counted) for anything else."""
        n = len(pkt)
        if n < 40:
            self.counters["dropped_malformed"] += 1
            return None
        vihl, _, tot, _, frag, _, proto, _, src, dst = IP4.unpack_from(pkt)
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or proto != socket.IPPROTO_TCP:
            self.counters["dropped_not_tcp"] += 1
            return None
        if ihl < 20 or tot > n or tot < ihl + 20 or frag & 0x3FFF:
            self.counters["dropped_malformed"] += 1
            return None
        if int.from_bytes(pkt[:ihl], "big") % 0xFFFF:
            self.counters["dropped_ip_checksum"] += 1
            return None
        if src != self.dst or dst != self.src:
            self.counters["dropped_not_ours"] += 1
            return None
        tcp_len = tot - ihl
        total = int.from_bytes(pkt[ihl:tot], "big")
        if tcp_len & 1:
            total <<= 8
        if tcp_len > 512:
            total = fold(total)
        if (total + self.pseudo + tcp_len) % 0xFFFF:
            self.counters["dropped_tcp_checksum"] += 1
            return None
        sport, dport, seq, ack, off, flags, win, _, _ = TCP.unpack_from(pkt, ihl)
        hlen = (off >> 4) << 2
        if sport != self.dport or dport != self.sport or hlen < 20 or hlen > tcp_len:
            self.counters["dropped_not_ours"] += 1
            return None
        self.counters["segments_in"] += 1
        return seq, ack, flags, win, ihl + hlen, tot

    def segment(self, pkt: bytes, who: str) -> tuple[int, int, int, int, int, int] | None:
        """`parse`, then a RST ends the connection (ConnectionResetError naming `who`) and
        an ACK is taken (`take_ack`)."""
        p = self.parse(pkt)
        if p is not None:
            if p[2] & RST:
                raise ConnectionResetError(errno.ECONNRESET, f"{who}: reset by peer")
            if p[2] & ACK:
                self.take_ack(p[1], p[3])
        return p

    def receive(self, pkt: bytes, who: str, on_data: DataCallback) -> bool:
        """A packet for a receiving endpoint (after `segment`): in-order data to `on_data`,
        other data dropped and counted, an ACK for every segment with data or FIN. True
        when it brought the peer's FIN (taken once: `fin_received`)."""
        p = self.segment(pkt, who)
        if p is None:
            return False
        seq, _ack, flags, _win, data, end = p
        n = end - data
        if n:
            if seq == self.rcv_nxt & MASK:
                on_data(memoryview(pkt)[data:end])
                self.rcv_nxt += n
            else:
                self.counters["dropped_out_of_order"] += 1
        fin = False
        if flags & FIN and (seq + n) & MASK == self.rcv_nxt & MASK and not self.fin_received:
            self.rcv_nxt += 1
            self.fin_received = fin = True
        if n or flags & FIN:
            self.send(ACK, self.snd_nxt)
        return fin

    def take_ack(self, ack: int, win: int) -> None:
        """A cumulative ACK: advance snd_una, take the window (RFC 7323: scaled)."""
        delta = (ack - self.snd_una) & MASK
        if delta > self.snd_nxt - self.snd_una:
            return                                   # old or not yet sent: ignore
        self.snd_una += delta
        self.snd_wnd = win << self.snd_wscale

    # ---------------------------------------------------------------------- handshake
    def connect(self) -> None:
        """Active open (RFC 9293 3.5): SYN with MSS and window scale, SYN-ACK, ACK."""
        opts = struct.pack("!BBHBBBB", 2, 4, self.mss, 1, 3, 3, WSCALE)
        iss = self.snd_nxt
        self.snd_nxt += 1
        rto = SYN_RTO
        for _ in range(7):
            self.send(SYN, iss, options=opts, window=min(self.rcv_buffer, 0xFFFF))
            sent_at = time.monotonic()
            while time.monotonic() - sent_at < rto:
                for pkt in self.read(rto):
                    p = self.parse(pkt)
                    if p is None:
                        continue
                    seq, ack, flags, win, data, _ = p
                    if not flags & ACK or ack != (iss + 1) & MASK:
                        continue
                    if flags & RST:
                        raise ConnectionRefusedError(errno.ECONNREFUSED,
                                                     "bare endpoint: connection refused")
                    if flags & SYN:
                        self._syn_options(pkt, data)
                        self.rcv_nxt = seq + 1
                        self.snd_una = self.snd_nxt
                        self.snd_wnd = win                # a SYN's window is never scaled
                        self.send(ACK, self.snd_nxt)
                        return
            rto *= 2
        raise OSError(errno.ETIMEDOUT, "bare endpoint: no SYN-ACK from the kernel")

    def _syn_options(self, pkt: bytes, data: int) -> None:
        ihl = (pkt[0] & 0x0F) << 2
        i, end = ihl + 20, data
        wscale = None
        while i < end:
            kind = pkt[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= end or pkt[i + 1] < 2:
                break
            size = pkt[i + 1]
            if kind == 2 and size == 4:
                self.peer_mss = (pkt[i + 2] << 8) | pkt[i + 3]
            elif kind == 3 and size == 3:
                wscale = min(pkt[i + 2], 14)
            i += size
        if wscale is None:          # RFC 7323 2.2: scaling only if both sides offer it
            self.rcv_wscale = 0
        else:
            self.snd_wscale = wscale

    # ----------------------------------------------------------------------- closing
    def finish(self, fin_sent: bool, fin_received: bool) -> None:
        """Send our FIN (unless sent), wait until it is ACKed and the peer's FIN is in,
        ACKing that FIN; FIN retransmitted every RTO."""
        if not fin_sent:
            self.send(FIN | ACK, self.snd_nxt)
            self.snd_nxt += 1
        last = time.monotonic()
        while self.snd_una < self.snd_nxt or not fin_received:
            if time.monotonic() - last > RTO and self.snd_una < self.snd_nxt:
                self.send(FIN | ACK, self.snd_nxt - 1)
                self.counters["retransmits"] += 1
                last = time.monotonic()
            for pkt in self.read(RTO):
                p = self.segment(pkt, "bare endpoint")
                if p is None:
                    continue
                seq, _ack, flags, _win, data, end = p
                if flags & FIN:
                    if (seq + end - data) & MASK == self.rcv_nxt & MASK and not fin_received:
                        self.rcv_nxt += 1
                        fin_received = True
                    self.send(ACK, self.snd_nxt)


class BareReceiver(_BareTcp):
    """Connect to a kernel source and take everything it sends until its FIN.

        rx = BareReceiver(link.fileno(), "10.77.0.2", "10.77.0.1", port, mtu=1500,
                          rcv_buffer=256 * 1024, deadline=time.monotonic() + 60)
        nbytes = rx.run(on_data)   # on_data(memoryview) for each in-order payload
    """

    def run(self, on_data: DataCallback, progress: Callable[[int], None] | None = None) -> int:
        self.connect()
        start = self.rcv_nxt
        self.fin_at = 0.0
        fin = False
        next_report = start + (1 << 20)
        while not fin:
            for pkt in self.read(1.0):
                if self.receive(pkt, "bare receiver", on_data):
                    self.fin_at = time.monotonic()
                    fin = True
            if progress is not None and self.rcv_nxt >= next_report:
                progress(self.rcv_nxt - start)
                next_report = self.rcv_nxt + (1 << 20)
        nbytes = self.rcv_nxt - 1 - start
        self.finish(fin_sent=False, fin_received=True)
        return nbytes


class BareSender(_BareTcp):
    """Connect to a kernel sink and send the first `nbytes` of the bench stream, then close.

        tx = BareSender(link.fileno(), "10.77.0.2", "10.77.0.1", port, mtu=1500,
                        rcv_buffer=256 * 1024, deadline=time.monotonic() + 60)
        tx.run(nbytes)
    """

    def run(self, nbytes: int, progress: Callable[[int], None] | None = None) -> int:
        self.connect()
        start = self.snd_nxt
        end = start + nbytes
        mss = min(self.peer_mss, self.mss)
        last_ack_at = time.monotonic()
        next_report = start + (1 << 20)
        while self.snd_una < end:
            limit = min(self.snd_una + self.snd_wnd, end)
            while self.snd_nxt < limit:
                n = min(mss, limit - self.snd_nxt)
                if n < mss and self.snd_nxt + n < end and self.snd_nxt > self.snd_una:
                    break                 # silly window: wait for the window to open more
                flags = ACK | PSH if self.snd_nxt + n == end else ACK
                self.send(flags, self.snd_nxt, stream_slice(self.snd_nxt - start, n))
                self.snd_nxt += n
            before = self.snd_una
            for pkt in self.read(RTO):
                self.segment(pkt, "bare sender")
            now = time.monotonic()
            if self.snd_una != before:
                last_ack_at = now
            elif now - last_ack_at > RTO:
                last_ack_at = now
                if self.snd_nxt > self.snd_una:        # go back to the first lost byte
                    self.snd_nxt = self.snd_una
                    self.counters["retransmits"] += 1
                elif self.snd_wnd == 0:                 # zero window: ask for its size
                    self.send(ACK, self.snd_una - 1)
                    self.counters["window_probes"] += 1
            if progress is not None and self.snd_una >= next_report:
                progress(self.snd_una - start)
                next_report = self.snd_una + (1 << 20)
        self.finish(fin_sent=False, fin_received=False)
        return nbytes


class BareStream(_BareTcp):
    """A connected stream for `common.conn_loop` (the connection-rate reference):

        s = BareStream(link.fileno(), "10.77.0.2", "10.77.0.1", port, mtu=1500,
                       rcv_buffer=256 * 1024, deadline=time.monotonic() + 60, sport=40001)
        s.sendall(b"request"); s.recv(100); s.close()
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.connect()
        self._data = bytearray()       # in-order data not yet taken by recv()
        self._unacked: tuple[int, bytes] | None = None   # (seq, bytes) of the request

    def sendall(self, data: bytes) -> None:
        if len(data) > min(self.peer_mss, self.mss):
            raise ValueError("a BareStream sends one segment")
        self._unacked = (self.snd_nxt, bytes(data))
        self.send(ACK | PSH, self.snd_nxt, data)
        self.snd_nxt += len(data)

    def recv(self, n: int) -> bytes:
        """Up to n bytes in order; b"" after the peer's FIN."""
        last = time.monotonic()
        while not self._data and not self.fin_received:
            for pkt in self.read(RTO):
                self.receive(pkt, "bare stream", self._data.extend)
            now = time.monotonic()
            if self.snd_una < self.snd_nxt and now - last > RTO and self._unacked:
                seq, data = self._unacked              # the request again (go-back-N)
                self.send(ACK | PSH, seq, data)
                self.counters["retransmits"] += 1
                last = now
        out = bytes(self._data[:n])
        del self._data[:n]
        return out

    def close(self) -> None:
        """Active close: our FIN first, the peer's FIN ACKed (see `finish`)."""
        self.finish(fin_sent=False, fin_received=self.fin_received)
