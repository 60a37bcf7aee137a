"""Buffer autotuning, as Linux's: the receive buffer grows to what the application reads per
round trip (dynamic right-sizing, ``tcp_rcv_space_adjust``, ``net.ipv4.tcp_moderate_rcvbuf``)
and the send buffer to twice the congestion window (``tcp_sndbuf_expand``).

Receive. A fixed buffer caps a connection at one buffer per RTT, and a program that reads in
small pieces keeps the buffer fuller than one that reads in large ones: the window it offers
shrinks and the sender waits for window updates. Linux measures, once per receiver RTT, how
many bytes the application took; when that grew, the buffer becomes twice it (loss
cushion) plus 16 segments, plus twice the growth again (the sender may double per RTT in
slow start), up to ``tcp_rmem[2]``. rawtcp does the same, in payload bytes (rawtcp's
``rcvbuf`` is the window it may offer; Linux's ``sk_rcvbuf`` also counts per-packet
overhead), up to ``Config.rmem_max``.

The receiver's RTT (Linux ``tcp_rcv_rtt_measure_ts`` / ``tcp_rcv_rtt_measure``): with
timestamps, from the TSecr of in-order full-sized data (our own 1 ms clock echoed back, one
sample per TSecr value, at least one tick); without, the time a window's worth of data
takes to arrive, keeping the smallest. A sample below the estimate replaces it; a larger
one moves it by an eighth (timestamps only).

Send. A sender needs about two congestion windows of data buffered (what is in flight, and
as much again to keep sending through a fast recovery): when the application found the
buffer full and an ACK frees room while the congestion window is not filled (the buffer,
not cwnd, held the sender back), the buffer grows to twice max(10, cwnd, reordering + 1)
segments, up to ``Config.sndbuf_max`` (Linux ``tcp_wmem[2]``, 4 MiB).

Neither buffer changes once the user set it (SO_RCVBUF / SO_SNDBUF, Linux's
SOCK_*BUF_LOCK); ``Config.moderate_rcvbuf`` off keeps the receive buffer fixed. Buffers only
grow; memory stays bounded by ``rmem_max`` and ``sndbuf_max`` per connection, and only a
reading application (receive) or a writing one (send) makes them grow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .rtt import ts_rtt

if TYPE_CHECKING:
    from .segment import Segment
    from .tcb import Tcb

INIT_SEGMENTS = 10    # the first measure's base: an initial window of data (TCP_INIT_CWND)


class TcbBufTune:
    """Tcb's buffer autotuning (a mixin; the state is in Tcb's slots ``rcv_rtt``,
    ``rcv_rtt_mark``, ``rcv_rtt_at``, ``rcvq_space``, ``rcvq_seq``, ``rcvq_at`` and
    ``snd_nospace``)."""

    __slots__ = ()

    def _rcv_rtt_measure(self: Tcb, seg: Segment, plen: int, now: int) -> None:
        """One in-order data segment of ``plen`` bytes has arrived (before rcv_nxt moved)."""
        if self.ts_ok:
            ts = seg.options.timestamps
            if ts is None:
                return
            tsecr = ts[1]
            if tsecr == self.rcv_rtt_mark or 2 * plen < self.smss:
                return          # one sample per echoed value, from full-sized segments only
            self.rcv_rtt_mark = tsecr
            rtt = ts_rtt(now, tsecr) if tsecr else None     # 0: nothing echoed yet
            if rtt is not None:
                self._rcv_rtt_update(rtt, False)
            return
        mark = self.rcv_rtt_mark
        if mark is not None and self.rcv_nxt < mark:
            return              # the window being timed has not arrived yet
        if mark is not None:
            self._rcv_rtt_update(max(1, now - self.rcv_rtt_at), True)
        self.rcv_rtt_mark = self.rcv_nxt + max(self.smss, self.rcv_adv - self.rcv_nxt)
        self.rcv_rtt_at = now

    def _rcv_rtt_update(self: Tcb, sample: int, minimum_only: bool) -> None:
        old = self.rcv_rtt
        if not old or sample < old:
            self.rcv_rtt = sample
        elif not minimum_only:
            self.rcv_rtt = old + ((sample - old) >> 3)

    def _rcv_space_adjust(self: Tcb, now: int) -> None:
        """After a read: once per receiver RTT, compare what the application took with the
        last RTT's amount and grow the buffer if it took more."""
        rtt = self.rcv_rtt
        if not rtt:
            return
        copied_seq = self.rcv_nxt - len(self.rbuf)
        o = self.options
        if self.rcvq_at is None:        # the first read: the first measure starts
            self.rcvq_space = min(o.rcvbuf, INIT_SEGMENTS * o.mss)
            self.rcvq_seq = copied_seq
            self.rcvq_at = now
            return
        if now - self.rcvq_at < rtt:
            return
        copied = copied_seq - self.rcvq_seq
        space = self.rcvq_space
        if copied > space:
            if self.cfg.moderate_rcvbuf and not o.rcvbuf_locked:
                win = 2 * copied + 16 * o.mss
                win += 2 * (win * (copied - space) // space)
                new = min(win, self.cfg.rmem_max)
                if new > o.rcvbuf:
                    o.rcvbuf = new
                    self._trace(now, "rcvbuf", bytes=new, copied=copied, rtt=rtt)
            self.rcvq_space = copied
        self.rcvq_seq = copied_seq
        self.rcvq_at = now

    def _snd_buf_expand(self: Tcb, now: int) -> None:
        """An ACK freed room after the application found the send buffer full."""
        self.snd_nospace = False
        o = self.options
        if o.sndbuf_locked:
            return
        rec = self.recovery
        cwnd = rec.cc.cwnd
        if self.snd_nxt - self.snd_una >= cwnd:
            return                      # cwnd holds the sender back, not the buffer
        smss = self.smss
        segs = max(INIT_SEGMENTS, -(-cwnd // smss), rec.reordering + 1)
        want = min(2 * segs * smss, self.cfg.sndbuf_max)
        if want > o.sndbuf:
            o.sndbuf = want              # (the next send() sets the buffer's limit)
            self._trace(now, "sndbuf", bytes=want, cwnd=cwnd)
