"""Loss recovery of one connection, in one object (as aioquic keeps ``recovery.py`` apart
from the connection).

It holds what the sender knows about loss and what it plans to resend:

- ``cc``: the congestion controller (``cubic`` or ``reno``, see :func:`new_cc`);
- ``scoreboard``: what the peer has SACKed above SND.UNA (RFC 6675 3);
- ``dupacks``: duplicate ACKs in a row (RFC 5681 2);
- ``limited``: bytes sent by Limited Transmit (RFC 3042) since the last new ACK, which the
  ssthresh computation leaves out (RFC 5681 3.2 step 2);
- ``resend_una``: NewReno's "retransmit SND.UNA now" (fast retransmit, partial ACK);
- ``next_hole``: SACK recovery's NextSeg position (RFC 6675 4);
- ``rto_episode``: the timeouts since the last new ACK are one loss episode (RFC 5681
  3.1 eq. 4 takes ssthresh only at the first);
- PRR (RFC 6937): ``prr_delivered``, ``prr_out``, ``recover_fs`` shape the reduction during
  SACK recovery;
- ``ca``: the state as Linux names it (open, disorder, recovery, loss, cwr).

The connection calls the ``on_*`` methods at the events; ``tcb_output`` reads the plan.
"""

from __future__ import annotations

from .congestion import NewReno, Scoreboard
from .cubic import Cubic
from .rack import Rack

#: Linux's TCP_CA_* numbers (tcpi_ca_state) by state name
CA_STATES = {"open": 0, "disorder": 1, "cwr": 2, "recovery": 3, "loss": 4}


def new_cc(name: str, mss: int, initial_segments: int, use_sack: bool = False) -> NewReno:
    """The congestion controller called ``name`` (Config.congestion, TCP_CONGESTION)."""
    if name == "cubic":
        return Cubic(mss, initial_segments, use_sack)
    if name == "reno":
        return NewReno(mss, initial_segments, use_sack)
    raise ValueError(f"unknown congestion control {name!r} (cubic, reno)")


class Recovery:
    __slots__ = ("cc", "scoreboard", "dupacks", "limited", "resend_una", "next_hole",
                 "rto_episode", "sack", "prr", "prr_delivered", "prr_out", "recover_fs",
                 "loss", "cwr", "rack", "undo_marker", "undo_retrans", "reordering",
                 "dsack_dups", "undos", "use_rack", "retrans_stamp", "newly_lost", "lost_retrans")

    def __init__(self, mss: int, initial_segments: int, algorithm: str = "reno",
                 prr: bool = True, rack: bool = False) -> None:
        self.cc = new_cc(algorithm, mss, initial_segments)
        self.scoreboard = Scoreboard()
        self.dupacks = 0
        self.limited = 0
        self.resend_una = False
        self.next_hole = 0
        self.rto_episode = False
        self.sack = False
        self.prr = prr
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = 0
        self.loss = False          # after an RTO until SND.UNA passes ``cc.recover``
        self.cwr = 0               # ECN reduction: until SND.UNA passes this (0 = none)
        self.rack = None           # RACK-TLP state (rack.py) when enabled
        self.undo_marker = 0       # SND.UNA when the reduction began (0 = nothing to undo)
        self.undo_retrans = 0      # retransmissions not yet shown needless by a D-SACK
        self.reordering = 3        # tcpi_reordering: the dupthresh Linux starts with
        self.dsack_dups = 0        # D-SACK blocks received (tcpi_dsack_dups)
        self.undos = 0             # reductions undone as spurious
        self.use_rack = rack       # Config.rack: RACK-TLP once SACK is negotiated
        self.retrans_stamp: int | None = None  # TSval of the episode's first retransmission
        self.newly_lost = False    # the ACK being processed marked a segment lost
        self.lost_retrans = False  # ... and one of them was a retransmission

    def negotiated(self, mss: int, initial_segments: int, sack: bool) -> None:
        """The handshake fixed the MSS and whether SACK is used."""
        self.cc.set_mss(mss, initial_segments)
        self.cc.use_sack = sack
        self.sack = sack
        self.rack = Rack(mss) if sack and self.use_rack else None

    def set_algorithm(self, name: str) -> None:
        """Switch the congestion controller (TCP_CONGESTION), keeping the window."""
        if name != self.cc.name:
            new = new_cc(name, self.cc.mss, 1, self.cc.use_sack)
            new.adopt(self.cc)
            self.cc = new

    @property
    def ca(self) -> str:
        """Linux's congestion-avoidance state name (tcp_ca_state)."""
        if self.loss:
            return "loss"
        if self.cc.in_recovery:
            return "recovery"
        if self.cwr:
            return "cwr"
        if self.dupacks or self.scoreboard:
            return "disorder"
        return "open"

    # ------------------------------------------------------------------ events
    def on_new_ack(self, ack: int, acked: int, snd_max: int, now: int = 0) -> None:
        """The cumulative ACK advanced to ``ack`` by ``acked`` bytes (RFC 5681 3.1,
        RFC 6582 3.2 steps 3 and 5)."""
        sb = self.scoreboard
        if sb.sacked:
            sb.ack_to(ack)
        self.dupacks = 0
        self.limited = 0
        cc = self.cc
        if cc.in_recovery:
            if ack >= cc.recover:
                if self.prr and self.sack:
                    # RFC 6937 3: at the end of recovery cwnd = ssthresh
                    cc.in_recovery = False
                    cc.cwnd = max(cc.ssthresh, cc.mss)
                    cc.exit_recovery_hook(now)
                else:
                    cc.exit_recovery(snd_max - ack, now)   # full ACK
                self.undo_marker = 0
            else:
                cc.on_partial_ack(acked)                 # partial ACK
                if self.sack:
                    self.next_hole = max(self.next_hole, ack)
                else:
                    self.resend_una = True
        else:
            if self.loss and ack >= cc.recover:
                self.loss = False
                self.undo_marker = 0
            if self.cwr and ack >= self.cwr:
                self.cwr = 0
            cc.on_ack(acked, now, ack, snd_max)

    def on_dupack(self, una: int, snd_max: int, smss: int, now: int = 0) -> bool:
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
        if self.rack is not None:
            return False           # RACK decides what is lost (rack_detect)
        sb = self.scoreboard
        lost = self.dupacks >= 3 or (self.sack and (len(sb) >= 3 or sb.sacked > 2 * smss))
        if not (lost and cc.can_enter_recovery(una)):
            return False
        self.enter_recovery(una, snd_max, now)
        return True

    def enter_recovery(self, una: int, snd_max: int, now: int) -> None:
        """Fast recovery begins (RFC 5681 3.2 steps 2-3, RFC 6675 5 step 4, RFC 6937 3)."""
        cc = self.cc
        # RFC 5681 3.2 step 2: what Limited Transmit sent is not part of FlightSize here
        cc.enter_recovery(snd_max - una - self.limited, snd_max, now)
        self.limited = 0
        self.loss = False
        self.cwr = 0
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = cc.prior_cwnd or (snd_max - una)   # Linux: prior_cwnd
        self.newly_lost = True
        self.undo_marker = una
        self.undo_retrans = 0
        self.retrans_stamp = None
        if self.sack:
            self.next_hole = una
        else:
            self.resend_una = True

    def prr_update(self, delivered: int, una: int, snd_nxt: int, snd_max: int = 0,
                   rtx_acked: bool = False) -> None:
        """RFC 6937 3 as Linux runs it (tcp_cwnd_reduction), on every ACK during SACK
        recovery that delivered data: while pipe > ssthresh, send in proportion to what was
        delivered (PRR); below it, back up towards ssthresh by what was delivered, with the
        slow-start bound (PRR-SSRB: + 1 MSS) only while retransmissions are being
        acknowledged and none was lost again. The first call lets the fast retransmit out
        whatever the numbers say."""
        if delivered <= 0:
            return
        cc = self.cc
        self.prr_delivered += delivered
        pipe = self.pipe(una, snd_nxt, snd_max)
        ssthresh = cc.ssthresh
        if pipe > ssthresh:
            # CEIL in whole segments, as Linux counts packets (a half segment sends nothing)
            fs = (self.recover_fs or 1) * cc.mss
            sndcnt = -(-self.prr_delivered * ssthresh // fs) * cc.mss - self.prr_out
        elif rtx_acked and not self.lost_retrans:
            sndcnt = min(ssthresh - pipe,
                         max(self.prr_delivered - self.prr_out, delivered) + cc.mss)
        else:
            sndcnt = min(ssthresh - pipe, delivered)
        if not self.prr_out:
            sndcnt = max(sndcnt, cc.mss)   # the fast retransmit (RFC 6937 3, Linux)
        cc.cwnd = pipe + max(sndcnt, 0)

    def on_ecn_echo(self, una: int, snd_max: int, now: int) -> bool:
        """RFC 3168 6.1.2: ECE on an ACK reduces cwnd once per window of data (not again
        while a reduction for the same window is on: recovery, loss, CWR). True when the
        window was reduced (the next data segment carries CWR)."""
        if self.cwr or self.cc.in_recovery or self.loss:
            return False
        self.cc.on_ecn(snd_max - una, now)
        self.cwr = snd_max if snd_max > una else una + 1
        return True

    def on_timeout(self, una: int, snd_max: int, now: int = 0) -> None:
        """RFC 6298 5.4-5.6 with RFC 5681 3.1 eq. (4) and RFC 6582 3.2 step 1: everything
        in flight is presumed lost, go back to SND.UNA."""
        first = not self.rto_episode
        if first and not self.cc.in_recovery and not self.loss:
            self.undo_marker = una
            self.undo_retrans = 0
            self.retrans_stamp = None
        if self.rack is not None:
            self.rack.mark_all_lost()
        self.cc.on_timeout(snd_max - una, first=first, now=now)
        self.cc.recover = snd_max
        self.rto_episode = True
        self.loss = True
        self.cwr = 0
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

    def pipe(self, una: int, snd_nxt: int, snd_max: int = 0) -> int:
        """RFC 6675 pipe. With RACK: bytes outstanding, less SACKed and lost ones, plus
        retransmissions in flight (Linux's tcp_packets_in_flight). Without it, simplified:
        unSACKed bytes above the highest SACK, plus holes below it that were already
        retransmitted in this recovery (holes not yet retransmitted are counted as lost)."""
        sb = self.scoreboard
        rack = self.rack
        if rack is not None:
            out = max(snd_max, snd_nxt) - una
            return max(0, out - sb.sacked - rack.lost_out + rack.retrans_out)
        hs = sb.highest
        if hs is None or hs <= una:
            return max(0, snd_nxt - una)
        pipe = max(0, snd_nxt - hs)
        pipe += sb.unsacked_between(una, min(max(self.next_hole, una), hs))
        return pipe

    # ------------------------------------------------------------------ RACK, undo
    def rack_detect(self, una: int, snd_max: int, srtt: int, now: int) -> int:
        """RFC 8985 6.2 on an ACK (or the reordering timer): mark losses; start fast
        recovery when something is lost (RFC 8985 6.2, Linux tcp_time_to_recover). Returns
        the reordering timer's delay (0 = none)."""
        rack = self.rack
        if rack is None or self.loss:
            return 0
        cc = self.cc
        lost = rack.lost_out
        retrans = rack.retrans_out
        timeout = rack.detect_loss(now, rack.reo_wnd(cc.in_recovery, srtt))
        if rack.lost_out > lost:
            self.newly_lost = True
            if rack.retrans_out < retrans:
                self.lost_retrans = True
        if rack.lost_out and not cc.in_recovery and cc.can_enter_recovery(una):
            self.enter_recovery(una, snd_max, now)
        return timeout

    def on_dsack(self, start: int, end: int, smss: int) -> None:
        """A D-SACK block (RFC 2883) reported [start, end) received twice: that many
        needless retransmissions fewer (RFC 3708 detection)."""
        self.dsack_dups += 1
        if self.undo_marker and end > self.undo_marker and self.undo_retrans > 0:
            self.undo_retrans = max(0, self.undo_retrans - max(1, -(-(end - start) // smss)))

    def can_undo_dsack(self) -> bool:
        """Every retransmission of the episode came back as a D-SACK (RFC 3708 2)."""
        return bool(self.undo_marker) and self.undo_retrans == 0 and (
            self.cc.in_recovery or self.loss) and self.retrans_stamp is not None

    def undo(self) -> None:
        """The reduction was spurious: restore cwnd/ssthresh (RFC 4015 3.2, as Linux's
        tcp_undo_cwnd_reduction) and go back to the open state."""
        self.cc.undo()
        self.loss = False
        self.rto_episode = False
        self.undo_marker = 0
        self.retrans_stamp = None
        self.undos += 1
        self.resend_una = False
        if self.rack is not None:
            self.rack.clear_lost()


__all__ = ["CA_STATES", "Recovery", "new_cc"]
