"""Loss recovery of one connection, in one object (as aioquic keeps ``recovery.py`` apart
from the connection).

It holds what the sender knows about loss and what it plans to resend:

- ``cc``: the congestion controller (NewReno today; algorithms plug in here);
- ``scoreboard``: what the peer has SACKed above SND.UNA (RFC 6675 3);
- ``dupacks``: duplicate ACKs in a row (RFC 5681 2);
- ``limited``: bytes sent by Limited Transmit (RFC 3042) since the last new ACK, which the
  ssthresh computation leaves out (RFC 5681 3.2 step 2);
- ``resend_una``: NewReno's "retransmit SND.UNA now" (fast retransmit, partial ACK);
- ``next_hole``: SACK recovery's NextSeg position (RFC 6675 4);
- ``rto_episode``: the timeouts since the last new ACK are one loss episode (RFC 5681
  3.1 eq. 4 takes ssthresh only at the first).

The connection calls the ``on_*`` methods at the events; ``tcb_output`` reads the plan.
"""

from __future__ import annotations

from .congestion import NewReno, Scoreboard


class Recovery:
    __slots__ = ("cc", "scoreboard", "dupacks", "limited", "resend_una", "next_hole",
                 "rto_episode", "sack")

    def __init__(self, mss: int, initial_segments: int) -> None:
        self.cc = NewReno(mss, initial_segments)
        self.scoreboard = Scoreboard()
        self.dupacks = 0
        self.limited = 0
        self.resend_una = False
        self.next_hole = 0
        self.rto_episode = False
        self.sack = False

    def negotiated(self, mss: int, initial_segments: int, sack: bool) -> None:
        """The handshake fixed the MSS and whether SACK is used."""
        self.cc.set_mss(mss, initial_segments)
        self.cc.use_sack = sack
        self.sack = sack

    # ------------------------------------------------------------------ events
    def on_new_ack(self, ack: int, acked: int, snd_max: int) -> None:
        """The cumulative ACK advanced to ``ack`` by ``acked`` bytes (RFC 5681 3.1,
        RFC 6582 3.2 steps 3 and 5)."""
        self.scoreboard.ack_to(ack)
        self.dupacks = 0
        self.limited = 0
        cc = self.cc
        if cc.in_recovery:
            if ack >= cc.recover:
                cc.exit_recovery(snd_max - ack)          # full ACK
            else:
                cc.on_partial_ack(acked)                 # partial ACK
                if self.sack:
                    self.next_hole = max(self.next_hole, ack)
                else:
                    self.resend_una = True
        else:
            cc.on_ack(acked)

    def on_dupack(self, una: int, snd_max: int, smss: int) -> bool:
        """A duplicate ACK (RFC 5681 2). True when it starts fast retransmit."""
        self.dupacks += 1
        cc = self.cc
        if cc.in_recovery:
            cc.on_dupack_in_recovery()
            return False
        # RFC 5681 3.2 fast retransmit; RFC 6675 5 step 4 (DupAcks >= DupThresh or
        # IsLost(SND.UNA)). RFC 6675 4 IsLost: DupThresh discontiguous SACKed ranges above
        # it, or more than (DupThresh - 1) * SMSS bytes SACKed above it (three segments
        # shortened by a SACK option still count).
        sb = self.scoreboard
        lost = self.dupacks >= 3 or (self.sack and (len(sb) >= 3 or sb.sacked_bytes() > 2 * smss))
        if not (lost and cc.can_enter_recovery(una)):
            return False
        # RFC 5681 3.2 step 2: what Limited Transmit sent is not part of FlightSize here
        cc.enter_recovery(snd_max - una - self.limited, snd_max)
        self.limited = 0
        if self.sack:
            self.next_hole = una
        else:
            self.resend_una = True
        return True

    def on_timeout(self, una: int, snd_max: int) -> None:
        """RFC 6298 5.4-5.6 with RFC 5681 3.1 eq. (4) and RFC 6582 3.2 step 1: everything
        in flight is presumed lost, go back to SND.UNA."""
        self.cc.on_timeout(snd_max - una, first=not self.rto_episode)
        self.cc.recover = snd_max
        self.rto_episode = True
        self.scoreboard.clear()
        self.dupacks = 0
        self.limited = 0
        self.resend_una = False
        self.next_hole = una

    # ------------------------------------------------------------------ queries
    def limited_transmit(self, smss: int) -> int:
        """RFC 3042 (RFC 5681 3.2): on the first and second duplicate ACK, outside recovery,
        one new segment each may go beyond cwnd (cwnd itself does not change)."""
        if self.dupacks and not self.cc.in_recovery:
            return min(self.dupacks, 2) * smss
        return 0

    def pipe(self, una: int, snd_nxt: int) -> int:
        """RFC 6675 pipe, simplified: unSACKed bytes above the highest SACK, plus holes below
        it that were already retransmitted in this recovery (holes not yet retransmitted are
        counted as lost)."""
        sb = self.scoreboard
        hs = sb.highest
        if hs is None or hs <= una:
            return max(0, snd_nxt - una)
        pipe = max(0, snd_nxt - hs)
        pipe += sb.unsacked_between(una, min(max(self.next_hole, una), hs))
        return pipe


__all__ = ["Recovery"]
