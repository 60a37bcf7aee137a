"""Congestion control: NewReno (RFC 5681 + RFC 6582) and a SACK scoreboard (RFC 6675-ish).

Pure arithmetic on byte counts and absolute sequence numbers; the connection decides *what*
to send, this module decides *how much* and remembers what the peer has SACKed.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from operator import sub

#: ssthresh before the first loss ("arbitrarily high", RFC 5681 3.1); traced as null
INFINITE_SSTHRESH = 1 << 30


class NewReno:
    """cwnd / ssthresh bookkeeping; the base of every algorithm (``name`` as Linux's
    TCP_CONGESTION names it).

    - slow start and congestion avoidance: RFC 5681 3.1 (appropriate byte counting, L = 2*SMSS)
    - fast retransmit / fast recovery: RFC 5681 3.2 with the NewReno changes of RFC 6582
    - retransmission timeout: RFC 5681 eq. (4), cwnd = loss window (1 SMSS)
    - ECN-Echo: RFC 3168 6.1.2, the same reduction as a loss, without a retransmission

    Subclasses change the reduction (``ssthresh_for``) and the growth (``_avoid``).
    """

    __slots__ = ("mss", "cwnd", "ssthresh", "in_recovery", "recover", "_ca_acc", "use_sack",
                 "prior_cwnd", "prior_ssthresh")

    name = "reno"

    def __init__(self, mss: int, initial_segments: int, use_sack: bool = False) -> None:
        self.mss = mss
        self.cwnd = initial_segments * mss  # RFC 6928 style initial window
        self.ssthresh = INFINITE_SSTHRESH    # RFC 5681 3.1: arbitrarily high
        self.in_recovery = False
        self.recover = 0                     # RFC 6582 "recover"
        self._ca_acc = 0
        self.use_sack = use_sack
        self.prior_cwnd = 0                  # before the last reduction (undo, RFC 3708)
        self.prior_ssthresh = 0

    def set_mss(self, mss: int, initial_segments: int) -> None:
        self.mss = mss
        self.cwnd = initial_segments * mss

    def adopt(self, other: NewReno) -> None:
        """Take over another controller's window (TCP_CONGESTION on an open connection:
        as Linux's tcp_reinit_congestion_control, cwnd and ssthresh stay)."""
        self.mss, self.cwnd, self.ssthresh = other.mss, other.cwnd, other.ssthresh
        self.in_recovery, self.recover, self.use_sack = (other.in_recovery, other.recover,
                                                         other.use_sack)
        self.prior_cwnd, self.prior_ssthresh = other.prior_cwnd, other.prior_ssthresh

    # ------------------------------------------------------------------ growth
    def on_rtt(self, rtt: int, now: int) -> None:
        """One RTT sample (us) from an ACK (HyStart++ uses them; NewReno does not)."""

    def on_ack(self, acked: int, now: int = 0, ack: int = 0, snd_max: int = 0) -> None:
        """New data acknowledged outside recovery (RFC 5681 3.1)."""
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, 2 * self.mss)
        else:
            self._avoid(acked, now)

    def _avoid(self, acked: int, now: int) -> None:
        """Congestion avoidance, RFC 5681 3.1: about one SMSS per cwnd of data acked."""
        self._ca_acc += acked
        if self._ca_acc >= self.cwnd:
            self._ca_acc -= self.cwnd
            self.cwnd += self.mss

    # ------------------------------------------------------------------ reductions
    def ssthresh_for(self, flight: int) -> int:
        """RFC 5681 eq. (4): ssthresh = max(FlightSize / 2, 2*SMSS)."""
        return max(flight // 2, 2 * self.mss)

    def _reduce(self, flight: int, now: int) -> None:
        """A congestion event: remember what undo restores, set ssthresh."""
        self.prior_cwnd = self.cwnd
        self.prior_ssthresh = self.ssthresh
        self.ssthresh = self.ssthresh_for(flight)

    def can_enter_recovery(self, ack: int) -> bool:
        """RFC 6582 3.2 step 2: only when the cumulative ACK covers more than ``recover``."""
        return ack > self.recover or self.recover == 0

    def enter_recovery(self, flight: int, snd_max: int, now: int = 0) -> None:
        """Three duplicate ACKs: RFC 5681 3.2 steps 2-3 / RFC 6675 5 step 4."""
        self._reduce(flight, now)
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

    def exit_recovery(self, flight: int, now: int = 0) -> None:
        """RFC 6582 3.2 step 3 (full ACK): cwnd = min(ssthresh, FlightSize + SMSS)."""
        self.in_recovery = False
        self.cwnd = max(min(self.ssthresh, flight + self.mss), self.mss)
        self._ca_acc = 0

    def exit_recovery_hook(self, now: int) -> None:
        """Recovery ended with cwnd set by the caller (PRR): reset growth state."""
        self._ca_acc = 0

    def on_timeout(self, flight: int, first: bool, now: int = 0) -> None:
        """RFC 5681 3.1 eq. (4) at the first timeout of a loss episode; cwnd = 1 SMSS."""
        if first:
            self._reduce(flight, now)
        self.cwnd = self.mss
        self.in_recovery = False
        self._ca_acc = 0

    def on_ecn(self, flight: int, now: int) -> None:
        """RFC 3168 6.1.2: ECN-Echo, at most once per window: halve as for a loss (cwnd
        follows at once; nothing is retransmitted)."""
        self._reduce(flight, now)
        self.cwnd = max(self.ssthresh, self.mss)
        self._ca_acc = 0

    def undo(self) -> None:
        """The last reduction was spurious (RFC 3708 / RFC 4015 Eifel response, as Linux's
        tcp_undo_cwnd_reduction): back to the window before it."""
        if self.prior_cwnd:
            self.cwnd = max(self.cwnd, self.prior_cwnd)
            self.ssthresh = max(self.ssthresh, self.prior_ssthresh)
        self.in_recovery = False
        self.prior_cwnd = 0


class Scoreboard:
    """What the peer has SACKed above snd_una: sorted, disjoint, non-adjacent ``[start, end)``
    ranges of absolute sequence numbers (RFC 6675 section 3), in two parallel lists.

    Lookups are bisects; ``add`` and ``ack_to`` are a bisect plus list memmoves (and the
    ranges a new block merges, amortized O(1)). ``unsacked_between`` needs SACKed-byte
    prefix sums: ``_cum[i]`` is an origin plus the bytes of ranges ``[0, i)``, valid for
    ``i <= _valid``. A change at index i only lowers ``_valid`` to i, and a query past it
    extends the sums (C-speed ``accumulate``) up to the index it needs, so queries cost
    O(log n) while the scoreboard does not change and, in recovery, where SACKs mostly land
    at the top and queries sit at ``rtx_next``, little more. Dropping a prefix (``ack_to``)
    keeps the sums valid: only differences to ``_cum[0]`` are ever read.
    """

    __slots__ = ("_s", "_e", "_cum", "_valid", "sacked")

    def __init__(self) -> None:
        self._s: list[int] = []
        self._e: list[int] = []
        self._cum: list[int] = []
        self._valid = 0
        # bytes SACKed (read it, never set it): nonzero exactly when a range is held, so
        # ``sb.sacked`` is the cheap form of ``bool(sb)`` (a Python __bool__ call)
        self.sacked = 0

    def __bool__(self) -> bool:
        return bool(self._s)

    def __len__(self) -> int:
        """Number of disjoint SACKed ranges (RFC 6675 4 IsLost counts them)."""
        return len(self._s)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """The ranges as ``(start, end)`` tuples, lowest first (a copy: O(n))."""
        return list(zip(self._s, self._e, strict=True))

    def clear(self) -> None:
        self._s = []
        self._e = []
        self._cum = []
        self._valid = 0
        self.sacked = 0

    def add(self, start: int, end: int) -> None:
        """Mark ``[start, end)`` SACKed, merging with overlapping or adjacent ranges."""
        if end <= start:
            return
        s, e = self._s, self._e
        i = bisect_left(e, start)       # first range ending at or after start
        j = bisect_right(s, end, i)     # ranges [i, j) touch [start, end]
        if i == j:
            s.insert(i, start)
            e.insert(i, end)
            cum = self._cum
            cum.insert(i, cum[i] if i < len(cum) and i <= self._valid else 0)
            self.sacked += end - start
        else:
            ns = min(start, s[i])
            ne = max(end, e[j - 1])
            old = sum(map(sub, e[i:j], s[i:j]))
            s[i:j] = (ns,)
            e[i:j] = (ne,)
            del self._cum[i + 1 : j]
            self.sacked += (ne - ns) - old
        if self._valid > i:
            self._valid = i

    def ack_to(self, una: int) -> None:
        """Forget everything below the cumulative ACK."""
        s, e = self._s, self._e
        if not s or s[0] >= una:
            return
        k = bisect_right(e, una)        # ranges [0, k) end at or below una
        if k:
            self.sacked -= sum(map(sub, e[:k], s[:k]))
            del s[:k], e[:k], self._cum[:k]
            self._valid = max(0, self._valid - k)
        if s and s[0] < una:
            d = una - s[0]
            s[0] = una
            self._cum[0] += d          # ranges [0, i) for i >= 1 lose d bytes
            self.sacked -= d

    @property
    def highest(self) -> int | None:
        return self._e[-1] if self._e else None

    def skip(self, seq: int) -> int:
        """The first sequence number >= seq that is not SACKed."""
        i = bisect_right(self._s, seq) - 1
        if i >= 0 and seq < self._e[i]:
            return self._e[i]  # ranges never touch, so the next byte is not SACKed
        return seq

    def next_sacked_start(self, seq: int) -> int | None:
        """Start of the first SACKed range above seq (the end of the hole at seq)."""
        i = bisect_right(self._s, seq)
        return self._s[i] if i < len(self._s) else None

    def _prefix(self, j: int) -> int:
        """SACKed bytes in ranges [0, j), for j < len(ranges)."""
        cum = self._cum
        v = self._valid
        if j > v:
            s, e = self._s, self._e
            cum[v : j + 1] = accumulate(map(sub, e[v:j], s[v:j]), initial=cum[v])
            self._valid = j
        return cum[j] - cum[0]

    def sacked_below(self, x: int) -> int:
        """SACKed bytes below sequence number x."""
        s = self._s
        j = bisect_right(self._e, x)    # ranges [0, j) end at or below x
        if j >= len(s):
            return self.sacked
        n = self._prefix(j)
        if s[j] < x:
            n += x - s[j]
        return n

    def unsacked_between(self, a: int, b: int) -> int:
        """Bytes in [a, b) that are not SACKed."""
        if b <= a:
            return 0
        return (b - a) - (self.sacked_below(b) - self.sacked_below(a))
