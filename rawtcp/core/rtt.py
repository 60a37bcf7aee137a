"""RFC 6298 retransmission timer computation: SRTT, RTTVAR, RTO, backoff.

Where samples come from lives with the caller (tcb_input ``_ack_advance``): with timestamps,
every ACK of new data gives one from its TSecr (RFC 7323 4.3), retransmissions included;
without them Karn's algorithm (RFC 6298 3) feeds only segments never retransmitted. All values
are integer microseconds.
"""

from __future__ import annotations

from .seq import MASK

K = 4
G = 1_000  # clock granularity we assume (1 ms), RFC 6298 2.x "G"


def ts_rtt(now: int, tsecr: int) -> int | None:
    """The RTT (us) an echoed timestamp of our 1 ms clock gives at ``now`` (RFC 7323 4.3):
    at least one tick; None for a value we cannot have sent (as Linux's
    tcp_rtt_tsopt_us)."""
    d = ((now // G) - tsecr) & MASK
    return (d or 1) * G if d < 0x7FFFFFFF // G else None


class RttEstimator:
    """SRTT / RTTVAR / RTO with exponential backoff (RFC 6298 2.1-2.5, 5.5)."""

    __slots__ = ("rto_min", "rto_max", "srtt", "rttvar", "base_rto", "backoff", "min_rtt",
                 "latest")

    def __init__(self, rto_initial: int, rto_min: int, rto_max: int) -> None:
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.srtt: int | None = None
        self.rttvar: int | None = None
        self.base_rto = max(rto_min, min(rto_initial, rto_max))  # RFC 6298 2.1
        self.backoff = 0
        self.min_rtt = 0      # the smallest sample (tcpi_min_rtt; 0 = none yet)
        self.latest = 0       # the last sample

    def sample(self, r: int) -> None:
        """Feed one RTT measurement R (us)."""
        if r < 1:
            r = 1
        self.latest = r
        if not self.min_rtt or r < self.min_rtt:
            self.min_rtt = r
        srtt, rttvar = self.srtt, self.rttvar
        if srtt is None or rttvar is None:
            # RFC 6298 2.2: first measurement.
            srtt = r
            rttvar = r // 2
        else:
            # RFC 6298 2.3: alpha = 1/8, beta = 1/4.
            rttvar = (3 * rttvar + (srtt - r if srtt > r else r - srtt)) // 4
            srtt = (7 * srtt + r) // 8
        self.srtt, self.rttvar = srtt, rttvar
        var = K * rttvar
        rto = srtt + (var if var > G else G)
        # RFC 6298 2.4, 2.5: within [rto_min, rto_max]
        if rto > self.rto_max:
            rto = self.rto_max
        self.base_rto = rto if rto > self.rto_min else self.rto_min
        self.backoff = 0

    @property
    def rto(self) -> int:
        """The current RTO including exponential backoff (RFC 6298 5.5), capped at rto_max."""
        return min(self.base_rto << self.backoff, self.rto_max)

    def back_off(self) -> None:
        """RFC 6298 5.5: double the RTO after a timeout."""
        if (self.base_rto << self.backoff) < self.rto_max:
            self.backoff += 1
