"""Congestion control: NewReno (RFC 5681 + RFC 6582) and a SACK scoreboard (RFC 6675-ish).

Pure arithmetic on byte counts and absolute sequence numbers; the connection decides *what*
to send, this module decides *how much* and remembers what the peer has SACKed.
"""

from __future__ import annotations


class NewReno:
    """cwnd / ssthresh bookkeeping.

    - slow start and congestion avoidance: RFC 5681 3.1 (appropriate byte counting, L = 2*SMSS)
    - fast retransmit / fast recovery: RFC 5681 3.2 with the NewReno changes of RFC 6582
    - retransmission timeout: RFC 5681 eq. (4), cwnd = loss window (1 SMSS)
    """

    __slots__ = ("mss", "cwnd", "ssthresh", "in_recovery", "recover", "_ca_acc", "use_sack")

    def __init__(self, mss: int, initial_segments: int, use_sack: bool = False) -> None:
        self.mss = mss
        self.cwnd = initial_segments * mss  # RFC 6928 style initial window
        self.ssthresh = 1 << 30              # RFC 5681 3.1: arbitrarily high
        self.in_recovery = False
        self.recover = 0                     # RFC 6582 "recover"
        self._ca_acc = 0
        self.use_sack = use_sack

    def set_mss(self, mss: int, initial_segments: int) -> None:
        self.mss = mss
        self.cwnd = initial_segments * mss

    def on_ack(self, acked: int) -> None:
        """New data acknowledged outside recovery (RFC 5681 3.1)."""
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, 2 * self.mss)
        else:
            self._ca_acc += acked
            if self._ca_acc >= self.cwnd:
                self._ca_acc -= self.cwnd
                self.cwnd += self.mss

    def can_enter_recovery(self, ack: int) -> bool:
        """RFC 6582 3.2 step 2: only when the cumulative ACK covers more than ``recover``."""
        return ack > self.recover or self.recover == 0

    def enter_recovery(self, flight: int, snd_max: int) -> None:
        """Three duplicate ACKs: RFC 5681 3.2 steps 2-3 / RFC 6675 5 step 4."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.recover = snd_max
        self.in_recovery = True
        self.cwnd = self.ssthresh if self.use_sack else self.ssthresh + 3 * self.mss

    def on_dupack_in_recovery(self) -> None:
        """RFC 5681 3.2 step 4: inflate by one SMSS (not with SACK: pipe does that)."""
        if not self.use_sack:
            self.cwnd += self.mss

    def on_partial_ack(self, acked: int) -> None:
        """RFC 6582 3.2 step 5: deflate by the amount acked, add back one SMSS."""
        if not self.use_sack:
            self.cwnd = max(self.cwnd - acked, 0)
            if acked >= self.mss:
                self.cwnd += self.mss
            self.cwnd = max(self.cwnd, self.mss)

    def exit_recovery(self, flight: int) -> None:
        """RFC 6582 3.2 step 3 (full ACK): cwnd = min(ssthresh, FlightSize + SMSS)."""
        self.in_recovery = False
        self.cwnd = max(min(self.ssthresh, flight + self.mss), self.mss)
        self._ca_acc = 0

    def on_timeout(self, flight: int, first: bool) -> None:
        """RFC 5681 3.1 eq. (4) at the first timeout of a loss episode; cwnd = 1 SMSS."""
        if first:
            self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self.in_recovery = False
        self._ca_acc = 0


class Scoreboard:
    """What the peer has SACKed above snd_una: sorted, disjoint (start, end) ranges of
    absolute sequence numbers (RFC 6675 section 3)."""

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def clear(self) -> None:
        self.ranges = []

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        out: list[tuple[int, int]] = []
        placed = False
        for s, e in self.ranges:
            if e < start:
                out.append((s, e))
            elif s > end:
                if not placed:
                    out.append((start, end))
                    placed = True
                out.append((s, e))
            else:
                start, end = min(s, start), max(e, end)
        if not placed:
            out.append((start, end))
        out.sort()
        self.ranges = out

    def ack_to(self, una: int) -> None:
        """Forget everything below the cumulative ACK."""
        r = self.ranges
        if r and r[0][0] < una:
            self.ranges = [(max(s, una), e) for s, e in r if e > una]

    @property
    def highest(self) -> int | None:
        return self.ranges[-1][1] if self.ranges else None

    def sacked_bytes(self) -> int:
        return sum(e - s for s, e in self.ranges)

    def is_sacked(self, seq: int) -> bool:
        for s, e in self.ranges:
            if s <= seq < e:
                return True
            if s > seq:
                break
        return False

    def skip(self, seq: int) -> int:
        """The first sequence number >= seq that is not SACKed."""
        for s, e in self.ranges:
            if s <= seq < e:
                seq = e
            elif s > seq:
                break
        return seq

    def next_sacked_start(self, seq: int) -> int | None:
        """Start of the first SACKed range above seq (the end of the hole at seq)."""
        for s, _e in self.ranges:
            if s > seq:
                return s
        return None

    def unsacked_between(self, a: int, b: int) -> int:
        """Bytes in [a, b) that are not SACKed."""
        if b <= a:
            return 0
        n = b - a
        for s, e in self.ranges:
            lo, hi = max(s, a), min(e, b)
            if hi > lo:
                n -= hi - lo
        return n
