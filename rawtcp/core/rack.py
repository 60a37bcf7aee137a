"""RACK-TLP loss detection (RFC 8985) over a log of what was sent and when.

The log holds one record per transmitted piece of data, in sequence order, as parallel
lists (``_s`` start, ``_e`` end, ``_t`` time of the latest transmission in us, ``_f`` flags):
a new segment is appended; a retransmission splits the record it falls in where its edges
differ and stamps the new time. Records leave the front when the cumulative ACK passes them.
Counters follow Linux's names: ``lost_out`` (bytes marked lost and not yet delivered) and
``retrans_out`` (bytes retransmitted and not yet delivered or found lost), so the RFC 6675
pipe is ``in flight - SACKed - lost_out + retrans_out`` without a scan.

RACK (RFC 8985 6.2): the most recently *sent* segment that was delivered (ACKed or SACKed)
gives ``xmit_ts``/``end_seq``/``rtt``; every unacknowledged, unSACKed segment sent before it
and older than ``rtt + reo_wnd`` is lost; a younger one arms the reordering timer. TLP (RFC
8985 7): when the sender is in the open state with data outstanding, a probe timeout of
about two SRTTs sends one segment (new data, else the last one again) to draw a SACK that
lets RACK see a tail loss without waiting for the RTO.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

RETRANS = 1     # retransmitted, the retransmission not yet delivered or found lost
LOST = 2        # marked lost (until delivered); with RETRANS: lost and resent
SACKED = 4
EVER_RETRANS = 8  # retransmitted at some point (its RTT sample is ambiguous)

DUPTHRESH = 3


class Rack:
    """The transmission log and the RACK-TLP state of one connection."""

    __slots__ = ("_s", "_e", "_t", "_f", "lost_out", "retrans_out", "lost_q", "xmit_ts",
                 "end_seq", "rtt", "min_rtt", "reordering_seen", "fack", "reo_wnd_mult",
                 "tlp_end", "tlp_retrans", "sacked_segs", "fack0", "rtx_acked", "mss",
                 "last_ack")

    def __init__(self, mss: int = 1) -> None:
        self.mss = mss              # a SACK edge splits a record only at whole segments
        self._s: list[int] = []
        self._e: list[int] = []
        self._t: list[int] = []
        self._f: list[int] = []
        self.lost_out = 0
        self.retrans_out = 0
        self.lost_q: list[int] = []     # starts of records marked lost, in sequence order
        self.xmit_ts = -1               # RACK.xmit_ts (-1: nothing delivered yet)
        self.end_seq = 0                # RACK.end_seq
        self.rtt = 0                    # RACK.rtt
        self.min_rtt = 0
        self.reordering_seen = False
        self.fack = 0                   # highest sequence delivered (RACK.fack)
        self.reo_wnd_mult = 1
        self.tlp_end: int | None = None  # TLPRxtOut: end of the outstanding probe
        self.tlp_retrans = False         # the probe was a retransmission
        self.sacked_segs = 0
        self.fack0 = 0                  # RACK.fack before the ACK being processed
        self.rtx_acked = False          # this ACK delivered retransmitted data
        self.last_ack = 0               # when SND.UNA last advanced (the PTO counts from it)

    def __len__(self) -> int:
        return len(self._s)

    # ------------------------------------------------------------------ the log
    def sent(self, start: int, end: int, now: int) -> None:
        """New data [start, end) left now."""
        self._s.append(start)
        self._e.append(end)
        self._t.append(now)
        self._f.append(0)

    def _split(self, seq: int) -> None:
        """Make ``seq`` a record boundary (if a record spans it)."""
        s = self._s
        i = bisect_right(s, seq) - 1
        if i >= 0 and s[i] < seq < self._e[i]:
            e = self._e
            s.insert(i + 1, seq)
            e.insert(i + 1, e[i])
            e[i] = seq
            self._t.insert(i + 1, self._t[i])
            self._f.insert(i + 1, self._f[i])

    def resent(self, start: int, end: int, now: int) -> None:
        """[start, end) was sent again now (a retransmission)."""
        if not self._s or start >= self._e[-1]:
            self.sent(start, end, now)
            return
        self._split(start)
        self._split(end)
        s, e, t, f = self._s, self._e, self._t, self._f
        i = bisect_left(s, start)
        while i < len(s) and s[i] < end:
            fl = f[i]
            if not fl & RETRANS:
                self.retrans_out += e[i] - s[i]
            # LOST stays until the data is delivered (Linux: in flight = out - (SACKed +
            # lost) + retransmitted, so a retransmitted lost segment counts once)
            f[i] = fl | RETRANS | EVER_RETRANS
            t[i] = now
            i += 1
        if i < len(s) and f[i] & LOST and not f[i] & RETRANS:   # the rest of a cut record
            q = self.lost_q
            j = bisect_left(q, s[i])
            if j == len(q) or q[j] != s[i]:
                q.insert(j, s[i])

    def start_ack(self, min_rtt: int = 0) -> None:
        """An ACK arrives: what it delivers below the previous RACK.fack was reordered.
        ``min_rtt``: the connection's smallest RTT sample (handshake and timestamps too,
        as Linux's tcp_min_rtt)."""
        self.fack0 = self.fack
        if min_rtt and (not self.min_rtt or min_rtt < self.min_rtt):
            self.min_rtt = min_rtt
        self.rtx_acked = False

    def acked(self, una: int, now: int) -> None:
        """The cumulative ACK reached ``una``: forget what is below it, and let the records
        it delivered update RACK (RFC 8985 6.2 step 2)."""
        s, e = self._s, self._e
        k = bisect_right(e, una)
        if k:
            t, f = self._t, self._f
            if not (self.lost_out or self.retrans_out or self.sacked_segs
                    or self.fack0 > s[0]):
                # the common case, nothing marked and nothing SACKed: only the last record
                # delivered (the latest sent) matters to RACK
                self._delivered(t[k - 1], e[k - 1], f[k - 1], now)
                del s[:k], e[:k], t[:k], f[:k]
                if s and s[0] < una:
                    s[0] = una
                if una > self.fack:
                    self.fack = una
                return
            for i in range(k):
                fl = f[i]
                n = e[i] - s[i]
                if fl & LOST:
                    self.lost_out -= n
                if fl & RETRANS:
                    self.retrans_out -= n
                    self.rtx_acked = True
                if fl & SACKED:
                    self.sacked_segs -= 1
                else:
                    self._delivered(t[i], e[i], fl, now)
            del s[:k], e[:k], t[:k], f[:k]
        if s and s[0] < una:
            s[0] = una
        if una > self.fack:
            self.fack = una

    def _split_aligned(self, seq: int, up: bool) -> int:
        """Cut the record spanning ``seq`` at a whole number of segments from its start
        (rounded ``up`` or down), as Linux's tcp_match_skb_to_sack: a SACK of part of a
        segment marks nothing. Returns the edge used."""
        s = self._s
        i = bisect_right(s, seq) - 1
        if i >= 0 and s[i] < seq < self._e[i]:
            mss = self.mss
            k = (seq - s[i] + (mss - 1 if up else 0)) // mss * mss
            seq = min(s[i] + k, self._e[i])
            self._split(seq)
        return seq

    def sacked(self, start: int, end: int, now: int) -> None:
        """[start, end) was newly SACKed (only the part that was not SACKed before)."""
        start = self._split_aligned(start, True)
        end = self._split_aligned(end, False)
        if end <= start:
            if end > self.fack:
                self.fack = end
            return
        s, e, t, f = self._s, self._e, self._t, self._f
        i = bisect_left(s, start)
        while i < len(s) and s[i] < end:
            fl = f[i]
            if not fl & SACKED:
                n = e[i] - s[i]
                if fl & LOST:
                    self.lost_out -= n
                if fl & RETRANS:
                    self.retrans_out -= n
                    self.rtx_acked = True
                f[i] = (fl & ~(LOST | RETRANS)) | SACKED
                self.sacked_segs += 1
                self._delivered(t[i], e[i], fl, now)
            i += 1
        if end > self.fack:
            self.fack = end

    def _delivered(self, ts: int, end: int, fl: int, now: int) -> None:
        """RFC 8985 6.2 steps 2-3: RACK.xmit_ts/end_seq/rtt from the most recently sent
        delivered segment; reordering when one below RACK.fack arrives late."""
        rtt = now - ts
        if fl & EVER_RETRANS and rtt < self.min_rtt:
            return       # the ACK is likely for the original: ambiguous (step 2)
        if not fl & EVER_RETRANS and end < self.fack0:
            self.reordering_seen = True
        # As Linux (tcp_rack_advance): RACK.rtt is the last unambiguous sample taken in this
        # ACK (segments in sequence order), RACK.xmit_ts the latest transmission delivered.
        self.rtt = rtt
        if not fl & EVER_RETRANS and (not self.min_rtt or rtt < self.min_rtt):
            self.min_rtt = rtt
        if ts > self.xmit_ts or (ts == self.xmit_ts and end > self.end_seq):
            self.xmit_ts = ts
            self.end_seq = end

    # ------------------------------------------------------------------ detection
    def reo_wnd(self, in_recovery: bool, srtt: int) -> int:
        """RFC 8985 6.2 step 4."""
        if not self.reordering_seen and (in_recovery or self.sacked_segs >= DUPTHRESH):
            return 0
        return min(self.reo_wnd_mult * self.min_rtt // 4, srtt or self.min_rtt)

    def detect_loss(self, now: int, reo_wnd: int) -> int:
        """RFC 8985 6.2 step 5: mark lost what was sent before RACK.xmit_ts and has waited
        longer than RACK.rtt + reo_wnd. Returns the time (us from now) when the next
        candidate would be lost (the reordering timer), 0 for none."""
        if self.xmit_ts < 0:
            return 0
        s, e, t, f = self._s, self._e, self._t, self._f
        xts, xend = self.xmit_ts, self.end_seq
        wait = self.rtt + reo_wnd
        timeout = 0
        lost_q = self.lost_q
        for i in range(len(s)):
            fl = f[i]
            ts = t[i]
            if ts > xts or (ts == xts and e[i] > xend):
                if not fl & EVER_RETRANS:
                    break      # originals are sent in order: the rest is later still
                continue
            if fl & SACKED or (fl & LOST and not fl & RETRANS):
                continue       # delivered, or lost and waiting for its retransmission
            remaining = ts + wait - now
            if remaining <= 0:
                n = e[i] - s[i]
                if fl & RETRANS:
                    self.retrans_out -= n      # a lost retransmission (RFC 8985 6.2)
                if not fl & LOST:
                    self.lost_out += n
                f[i] = (fl & ~RETRANS) | LOST
                j = bisect_left(lost_q, s[i])
                if j == len(lost_q) or lost_q[j] != s[i]:
                    lost_q.insert(j, s[i])
            elif remaining > timeout:
                timeout = remaining
        return timeout

    def next_lost(self) -> tuple[int, int] | None:
        """The lowest record still marked lost (to retransmit), dropping stale queue
        entries."""
        q = self.lost_q
        s, e, f = self._s, self._e, self._f
        while q:
            i = bisect_left(s, q[0])
            if i < len(s) and s[i] == q[0] and f[i] & LOST and not f[i] & RETRANS:
                return s[i], e[i]
            q.pop(0)
        return None

    def mark_all_lost(self) -> None:
        """An RTO (RFC 8985 6.3 as Linux's tcp_enter_loss): everything outstanding is lost
        (the go-back-N resend from SND.UNA repairs it; the SACK scoreboard is forgotten)."""
        s, e, f = self._s, self._e, self._f
        total = 0
        for i in range(len(f)):
            f[i] = (f[i] & EVER_RETRANS) | LOST
            total += e[i] - s[i]
        self.lost_out = total
        self.retrans_out = 0
        self.lost_q = []
        self.sacked_segs = 0
        self.tlp_end = None

    def clear_lost(self) -> None:
        """Undo (RFC 3708/4015 response, Linux's tcp_undo_cwnd_reduction): nothing is lost."""
        f = self._f
        for i in range(len(f)):
            f[i] &= ~LOST
        self.lost_out = 0
        self.lost_q = []

    def lost_bytes(self) -> int:
        return self.lost_out


__all__ = ["Rack"]
