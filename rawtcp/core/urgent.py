"""Urgent data (RFC 9293 3.8.5, RFC 6093) the way Linux does it (net.ipv4.tcp_stdurg=0).

The urgent pointer of a segment points one past the urgent byte: the byte is at
SEG.SEQ + SEG.UP - 1 (RFC 6093 2: what BSD-derived stacks and Linux do, against RFC 1122's
text). Only the last urgent byte matters; a newer pointer replaces an older one.

Receiving, with SO_OOBINLINE off (the default), the urgent byte is taken out of the stream
and kept for ``recv(MSG_OOB)``; with it on, it stays in line. Either way its place in the
stream is the *mark*: a read stops there, ``at_mark`` tells the application it reached it,
and the next read goes on past it.

Sending with MSG_OOB, the last byte sent is urgent: every segment that starts before it
carries URG and the pointer, until the peer has acknowledged it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .buffers import ReceiveBuffer


class Urgent:
    __slots__ = ("rcv_seq", "byte", "taken", "mark", "inline", "snd_up")

    def __init__(self) -> None:
        self.rcv_seq: int | None = None   # absolute seq of the peer's urgent byte
        self.byte: int | None = None      # its value, once it arrived (out of line)
        self.taken = False                # read by recv(MSG_OOB)
        self.mark: int | None = None      # bytes of rbuf before the mark
        self.inline = False               # SO_OOBINLINE
        self.snd_up: int | None = None    # absolute seq one past our urgent byte

    # ------------------------------------------------------------------ receiving
    def on_pointer(self, seg_seq: int, urp: int, rcv_nxt: int) -> None:
        """A segment with URG (RFC 9293 3.10.7.4 sixth): note where the urgent byte is."""
        if urp == 0:
            return
        ptr = seg_seq + urp - 1
        if ptr < rcv_nxt or (self.rcv_seq is not None and ptr <= self.rcv_seq):
            return                        # already read past, or not newer
        self.rcv_seq, self.byte, self.taken = ptr, None, False

    def deliver(self, rbuf: ReceiveBuffer, start: int, data) -> None:
        """Append in-order text beginning at absolute ``start`` to ``rbuf``; the urgent byte,
        when it is in it, marks its place (and leaves the stream unless inline)."""
        seq = self.rcv_seq
        if seq is None or not start <= seq < start + len(data):
            rbuf += data
            return
        k = seq - start
        self.mark = len(rbuf) + k
        if self.inline:
            rbuf += data
        else:
            self.byte = data[k]
            rbuf += data[:k]
            rbuf += data[k + 1:]

    def read_limit(self, n: int) -> int:
        """How much of ``n`` a read may take: it stops at the mark; at the mark it goes on."""
        m = self.mark
        if m is None:
            return n
        if m == 0:
            self.mark = None              # reading past the mark
            return n
        return min(n, m)

    def consumed(self, n: int) -> None:
        if self.mark is not None and self.mark > 0:
            self.mark -= n

    @property
    def at_mark(self) -> bool:
        """sockatmark(): the next byte to read is where the urgent byte was."""
        return self.mark == 0

    # ------------------------------------------------------------------ sending
    def pointer_for(self, seq: int) -> int:
        """The urgent pointer for a segment starting at ``seq`` (0: no URG). Beyond 16 bits
        the pointer says 0xFFFF: "further on" (Linux tcp_options_write)."""
        up = self.snd_up
        if up is None or seq >= up:
            return 0
        return min(up - seq, 0xFFFF)

    def acked(self, una: int) -> None:
        if self.snd_up is not None and una >= self.snd_up:
            self.snd_up = None


__all__ = ["Urgent"]
