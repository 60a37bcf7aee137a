"""CUBIC congestion control (RFC 9438) with HyStart++ slow start (RFC 9406), as Linux's
default.

Windows are kept in bytes outside (``cwnd``, ``ssthresh`` as NewReno's); the cubic function
works in segments and seconds as the RFC writes it:

    W_cubic(t) = C * (t - K)^3 + W_max            (RFC 9438 4.2, eq. 1)
    K = cbrt((W_max - cwnd_epoch) / C)            (eq. 2)
    W_est += alpha_cubic * segments_acked / cwnd  (4.3, the Reno-friendly estimate)

with C = 0.4, beta_cubic = 0.7 and alpha_cubic = 3 * (1 - beta) / (1 + beta).
"""

from __future__ import annotations

from .congestion import INFINITE_SSTHRESH, NewReno

C = 0.4
BETA = 0.7
ALPHA = 3 * (1 - BETA) / (1 + BETA)

# RFC 9406 4.3 constants (us where a time)
MIN_RTT_THRESH = 4_000
MAX_RTT_THRESH = 16_000
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5
L_NON_PACED = 8         # at most L * SMSS of growth per ACK in slow start (no pacing)

_INF = 1 << 62


class HyStartPP:
    """HyStart++ (RFC 9406): leave slow start when the round's minimum RTT rises by
    clamp(lastRoundMinRTT / 8, 4 ms, 16 ms) after at least 8 samples, through Conservative
    Slow Start (CSS: growth / 4) for 5 rounds, back to slow start if the RTT falls again."""

    __slots__ = ("window_end", "last_min", "cur_min", "samples", "css_baseline", "css_rounds",
                 "done")

    def __init__(self) -> None:
        self.window_end = -1     # the round ends when an ACK covers this (RFC 9406 4.2)
        self.last_min = _INF     # lastRoundMinRTT
        self.cur_min = _INF      # currentRoundMinRTT
        self.samples = 0         # rttSampleCount
        self.css_baseline = 0    # cssBaselineMinRtt; 0 = not in CSS
        self.css_rounds = 0
        self.done = False        # left slow start (loss or CSS_ROUNDS): HyStart++ is over

    def on_rtt(self, rtt: int) -> None:
        if rtt < self.cur_min:
            self.cur_min = rtt
        self.samples += 1

    def growth(self, acked: int, mss: int) -> int:
        """The slow-start increase for this ACK (RFC 9406 4.2: L limits it; CSS divides)."""
        inc = min(acked, L_NON_PACED * mss)
        return inc // CSS_GROWTH_DIVISOR if self.css_baseline else inc

    def on_ack(self, ack: int, snd_max: int, cwnd: int) -> int | None:
        """After the growth: round bookkeeping and the exit tests. Returns the new ssthresh
        when slow start ends here (RFC 9406 4.2), else None."""
        if ack > self.window_end:
            # a new round starts: remember the last one's minimum (RFC 9406 4.2)
            if self.css_baseline:
                self.css_rounds += 1
                if self.css_rounds >= CSS_ROUNDS:
                    self.done = True
                    return cwnd                       # enter congestion avoidance
            self.window_end = snd_max
            self.last_min = self.cur_min
            self.cur_min = _INF
            self.samples = 0
            return None
        if self.samples < N_RTT_SAMPLE or self.cur_min == _INF or self.last_min == _INF:
            return None
        if not self.css_baseline:
            thresh = min(max(self.last_min // MIN_RTT_DIVISOR, MIN_RTT_THRESH), MAX_RTT_THRESH)
            if self.cur_min >= self.last_min + thresh:
                self.css_baseline = self.cur_min      # enter Conservative Slow Start
                self.css_rounds = 0
        elif self.cur_min < self.css_baseline:
            self.css_baseline = 0                     # spurious: back to slow start
        return None


class Cubic(NewReno):
    """RFC 9438 CUBIC on top of NewReno's recovery bookkeeping."""

    __slots__ = ("w_max", "w_last_max", "k", "t_epoch", "cwnd_epoch", "w_est", "min_rtt",
                 "hystart", "use_hystart", "_saved")

    name = "cubic"

    def __init__(self, mss: int, initial_segments: int, use_sack: bool = False,
                 hystart: bool = True) -> None:
        super().__init__(mss, initial_segments, use_sack)
        self.w_max = 0.0           # segments; 0 = no congestion event yet
        self.w_last_max = 0.0
        self.k = 0.0               # seconds
        self.t_epoch = -1          # us; -1 = no epoch (set at the first ACK in avoidance)
        self.cwnd_epoch = 0.0
        self.w_est = 0.0
        self.min_rtt = 0           # us, smallest sample seen (RFC 9438 4.2 uses RTT)
        self.use_hystart = hystart
        self.hystart = HyStartPP() if hystart else None
        self._saved: tuple[float, float, float] | None = None

    def adopt(self, other: NewReno) -> None:
        super().adopt(other)
        if isinstance(other, Cubic):
            self.min_rtt = other.min_rtt
        if self.ssthresh != INFINITE_SSTHRESH:
            self.hystart = None

    def on_rtt(self, rtt: int, now: int) -> None:
        if not self.min_rtt or rtt < self.min_rtt:
            self.min_rtt = rtt
        hs = self.hystart
        if hs is not None:
            hs.on_rtt(rtt)

    def on_ack(self, acked: int, now: int = 0, ack: int = 0, snd_max: int = 0) -> None:
        if self.cwnd < self.ssthresh:
            hs = self.hystart
            if hs is None:
                self.cwnd += min(acked, 2 * self.mss)
                return
            self.cwnd += hs.growth(acked, self.mss)
            new = hs.on_ack(ack, snd_max, self.cwnd)
            if new is not None:
                self.ssthresh = new
                self.hystart = None
            return
        self._avoid(acked, now)

    def _avoid(self, acked: int, now: int) -> None:
        """RFC 9438 4.2-4.4: the cubic target one RTT ahead, clamped to [cwnd, 1.5 cwnd],
        or the Reno-friendly estimate where that is larger."""
        mss = self.mss
        cwnd = self.cwnd / mss
        if self.t_epoch < 0:
            self.t_epoch = now
            self.cwnd_epoch = cwnd
            self.w_est = cwnd
            if self.w_max <= cwnd:
                self.w_max = cwnd
                self.k = 0.0
            else:
                self.k = ((self.w_max - cwnd) / C) ** (1 / 3)
        segs = acked / mss
        # RFC 9438 4.3: alpha_cubic until W_est reaches W_max, then 1
        alpha = ALPHA if self.w_est < self.w_max else 1.0
        self.w_est += alpha * segs / cwnd
        t = (now - self.t_epoch) / 1e6
        if self.w_est > C * (t - self.k) ** 3 + self.w_max:
            new = max(self.w_est, cwnd)               # the Reno-friendly region (4.3)
        else:
            t += self.min_rtt / 1e6                   # the target one RTT ahead (4.4)
            target = min(max(C * (t - self.k) ** 3 + self.w_max, cwnd), 1.5 * cwnd)
            new = cwnd + (target - cwnd) * segs / cwnd
        self.cwnd = max(self.cwnd, int(new * mss))

    def ssthresh_for(self, flight: int) -> int:
        """RFC 9438 4.6 as Linux computes it (bictcp_recalc_ssthresh): cwnd * beta_cubic,
        at least 2 SMSS. (The RFC's flight size is smaller while Limited Transmit or the
        application holds data back; Linux, which rawtcp is compared with, takes cwnd.)"""
        return max(int(self.cwnd * BETA), 2 * self.mss)

    def _reduce(self, flight: int, now: int) -> None:
        self._saved = (self.w_max, self.w_last_max, self.k)
        super()._reduce(flight, now)
        cwnd = self.cwnd / self.mss
        # RFC 9438 4.7 fast convergence
        if cwnd < self.w_last_max:
            self.w_last_max = cwnd
            self.w_max = cwnd * (1 + BETA) / 2
        else:
            self.w_last_max = cwnd
            self.w_max = cwnd
        self.t_epoch = -1
        self.hystart = None        # RFC 9406 4.2: HyStart++ ends at the first loss

    def on_timeout(self, flight: int, first: bool, now: int = 0) -> None:
        """RFC 9438 4.8: the same reduction as a congestion event, cwnd = 1 SMSS, new epoch."""
        super().on_timeout(flight, first, now)
        self.t_epoch = -1

    def exit_recovery(self, flight: int, now: int = 0) -> None:
        super().exit_recovery(flight, now)
        self.t_epoch = -1

    def exit_recovery_hook(self, now: int) -> None:
        super().exit_recovery_hook(now)
        self.t_epoch = -1

    def undo(self) -> None:
        """RFC 9438 4.9: a spurious congestion event restores W_max and K too."""
        if self._saved is not None and self.prior_cwnd:
            self.w_max, self.w_last_max, self.k = self._saved
        self._saved = None
        self.t_epoch = -1
        super().undo()


__all__ = ["Cubic", "HyStartPP"]
