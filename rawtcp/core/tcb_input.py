"""Input processing: segment arrival in the order of RFC 9293 3.10.7.

SYN-SENT (3.10.7.3) has its own method; every synchronized state goes through
``_input_sync`` which follows the RFC's steps: PAWS (RFC 7323 5), sequence number check,
RST (RFC 5961 3), SYN (RFC 5961 4), ACK (incl. RFC 5961 5), segment text, FIN.
Nothing here raises on a bad segment: it is dropped, counted and traced.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .config import MS
from .segment import Flags, Options, Segment
from .seq import lt

if TYPE_CHECKING:
    from .tcb import Tcb

_SYN, _ACK, _RST, _FIN = Flags.SYN, Flags.ACK, Flags.RST, Flags.FIN
DELACK_MAX = 200 * MS  # upper bound of any configured delayed-ACK timeout


class TcbInput:
    def on_segment(self: Tcb, seg: Segment, now: int) -> None:
        from .tcb import State

        st = self.state
        if st is State.SYN_SENT:
            self._input_syn_sent(seg, now)
        elif st is State.CLOSED or st is State.LISTEN:
            self.stack._drop(self, seg, "closed", now)
        else:
            self._input_sync(seg, now)

    def _drop(self: Tcb, seg: Segment, reason: str, now: int) -> None:
        self.stack._drop(self, seg, reason, now)

    # ------------------------------------------------------------------ option negotiation
    def _negotiate(self: Tcb, opts: Options) -> None:
        """Apply the peer's SYN options: RFC 9293 3.7.1 (MSS), RFC 7323 (window scale,
        timestamps), RFC 2018 (SACK-permitted). Each is used only if both sides offer it."""
        o = self.options
        self.peer_mss = opts.mss if opts.mss else self.cfg.default_peer_mss
        if o.window_scaling and opts.wscale is not None:
            self.ws_ok = True
            self.snd_wscale = min(opts.wscale, 14)  # RFC 7323 2.3
        else:
            self.ws_ok = False
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self.sack_ok = bool(o.sack and opts.sack_permitted)
        self.ts_ok = bool(o.timestamps and opts.timestamps is not None)
        mss = min(self.peer_mss, o.mss)
        if self.ts_ok:
            mss -= 12  # room for the timestamps option in every segment
            self.ts_recent = opts.timestamps[0]
            self.ts_recent_set = True
        self.smss = max(mss, 64)
        self.cc.set_mss(self.smss, self.cfg.initial_cwnd_segments)
        self.cc.use_sack = self.sack_ok

    # ------------------------------------------------------------------ LISTEN (child)
    def _input_listen(self: Tcb, seg: Segment, now: int) -> None:
        """RFC 9293 3.10.7.2 third: a SYN for a listener; this TCB is the new child."""
        from .tcb import State

        self.irs = seg.seq
        self.rcv_nxt = self.rcv_adv = seg.seq + 1
        self.last_ack_sent = self.rcv_nxt
        self._negotiate(seg.options)
        self.iss = self._choose_iss(now)
        self.snd_una = self.snd_nxt = self.snd_max = self.iss
        self.opened = True
        self.sbuf.rebase(self.iss + 1)
        self.snd_wnd = seg.window  # never scaled in a SYN
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = self.irs
        self.snd_wl2 = self.iss
        self._set_state(State.SYN_RECEIVED, "SYN received (passive open)", now)
        self._output(now)

    # ------------------------------------------------------------------ SYN-SENT
    def _input_syn_sent(self: Tcb, seg: Segment, now: int) -> None:
        """RFC 9293 3.10.7.3."""
        from .tcb import State, unwrap

        f = seg.flags
        ack = 0
        if f & _ACK:
            ack = unwrap(self.iss, seg.ack)
            if ack <= self.iss or ack > self.snd_max:
                # first: unacceptable ACK -> <SEQ=SEG.ACK><CTL=RST> unless RST
                if not f & _RST:
                    self.stack._reply_rst(self.local, self.remote, seg, now)
                self._drop(seg, "bad-ack", now)
                return
        if f & _RST:
            # second: RST with an acceptable ACK -> "connection reset" (refused)
            if f & _ACK:
                self._fail(errno.ECONNREFUSED, "RST in SYN_SENT (connection refused)", now)
            else:
                self._drop(seg, "rst-without-ack", now)
            return
        if not f & _SYN:
            self._drop(seg, "no-syn", now)
            return
        # fourth: SYN
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        # the window our SYN announced (unscaled)
        self.rcv_adv = self.rcv_nxt + min(self.options.rcvbuf, 0xFFFF)
        self.last_ack_sent = self.rcv_nxt
        self._negotiate(seg.options)
        self.snd_wnd = seg.window  # a SYN's window is never scaled (RFC 7323 2.2)
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = self.irs
        if f & _ACK:
            self.snd_wl2 = ack
            self._ack_advance(ack, now)
            self._set_state(State.ESTABLISHED, "SYN-ACK received", now)
            self.ack_now = True
            self._output(now)
        else:
            # Simultaneous open (RFC 9293 3.5 figure 7): send SYN,ACK with our ISS again.
            self.snd_wl2 = self.iss
            self._set_state(State.SYN_RECEIVED, "simultaneous open (SYN received)", now)
            self.snd_nxt = self.iss
            self.timers.cancel("rtx")
            self._output(now)

    # ------------------------------------------------------------------ synchronized states
    def _input_sync(self: Tcb, seg: Segment, now: int) -> None:
        from .tcb import DATA_STATES, State, unwrap

        f = seg.flags
        st = self.state
        rcv_nxt = self.rcv_nxt
        sseq = unwrap(rcv_nxt, seg.seq)
        plen = len(seg.payload)
        slen = plen + (1 if f & _SYN else 0) + (1 if f & _FIN else 0)
        wnd = max(0, self.rcv_adv - rcv_nxt)
        ts = seg.options.timestamps

        # RFC 7323 5.3 R1: PAWS.
        if self.ts_ok and ts is not None and not f & _RST and self.ts_recent_set:
            if lt(ts[0], self.ts_recent):
                self._drop(seg, "paws", now)
                self.ack_now = True
                self._output(now)
                return

        # first: sequence number check (RFC 9293 3.10.7.4).
        if slen == 0:
            ok = sseq == rcv_nxt if wnd == 0 else rcv_nxt <= sseq < rcv_nxt + wnd
        elif wnd == 0:
            ok = False
        else:
            ok = rcv_nxt <= sseq < rcv_nxt + wnd or rcv_nxt <= sseq + slen - 1 < rcv_nxt + wnd
        zero_window_edge = not ok and wnd == 0 and sseq == rcv_nxt and not f & _SYN
        if not ok and not zero_window_edge:
            if f & _RST:
                self._drop(seg, "unacceptable-rst", now)
                return
            if st is State.SYN_RECEIVED and f & _SYN and not f & _ACK and seg.seq == self.irs:
                # Our SYN-ACK was lost: the peer retransmitted its SYN. Send SYN-ACK again.
                self._drop(seg, "dup-syn", now)
                self.snd_nxt = self.iss
                self.timers.cancel("rtx")
                self._output(now)
                return
            if st is State.TIME_WAIT and f & _FIN:
                # RFC 9293 3.10.7.4 eighth: a retransmitted FIN: ACK it, restart 2 MSL.
                self.timers.set("time_wait", now + self.cfg.time_wait_duration)
                self._drop(seg, "retransmitted-fin-reacked", now)
            else:
                self._drop(seg, "unacceptable", now)
            self.ack_now = True
            self._output(now)
            return

        # second: RST (RFC 5961 3.2).
        if f & _RST:
            if sseq == rcv_nxt:
                self._reset_by_peer(seg, now)
            else:
                self._challenge_ack(seg, "rst-in-window", now)
            return
        if zero_window_edge:
            # RFC 9293 3.10.7.4: with a zero window still process ACK (and RST above),
            # but not the text or FIN.
            seg = Segment(seg.src_port, seg.dst_port, seg.seq, seg.ack,
                          Flags(f & ~_FIN & ~Flags.PSH), seg.window, seg.options, b"")
            f = seg.flags
            plen = 0
            if slen:
                self.ack_now = True

        # RFC 7323 4.3 (2): remember the timestamp to echo.
        if self.ts_ok and ts is not None and sseq <= self.last_ack_sent:
            if not self.ts_recent_set or not lt(ts[0], self.ts_recent):
                self.ts_recent = ts[0]
                self.ts_recent_set = True

        # fourth: SYN. In SYN-RECEIVED from a passive OPEN: back to LISTEN (RFC 9293
        # 3.10.7.4); in the synchronized states: challenge ACK (RFC 5961 4.2).
        if f & _SYN:
            if st is State.SYN_RECEIVED and self.listener is not None:
                self._drop(seg, "syn-in-syn-received", now)
                self._set_state(State.CLOSED, "SYN in SYN_RECEIVED (back to LISTEN)", now)
                return
            self._challenge_ack(seg, "syn-in-window", now)
            return

        # fifth: ACK.
        if not f & _ACK:
            self._drop(seg, "no-ack", now)
            return
        ack = unwrap(self.snd_una, seg.ack)
        if self.snd_una == self.iss:
            # SYN-RECEIVED (maybe already FIN-WAIT-1 by a close): our SYN must be acked.
            if self.snd_una < ack <= self.snd_max:
                if self.listener is not None and not self.listener._has_room():
                    self._drop(seg, "accept-queue-full", now)
                    return
                self.snd_wnd = seg.window << self.snd_wscale
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
                self.snd_wl1, self.snd_wl2 = sseq, ack
                self._ack_advance(ack, now)
                if self.state is State.SYN_RECEIVED:
                    self._set_state(State.ESTABLISHED, "ACK of SYN-ACK", now)
            else:
                self.stack._reply_rst(self.local, self.remote, seg, now)
                self._drop(seg, "bad-ack", now)
                return
        elif ack > self.snd_max:
            # RFC 9293 3.10.7.4: ACK of something not yet sent -> ACK, drop.
            self._drop(seg, "ack-unsent", now)
            self.ack_now = True
            self._output(now)
            return
        elif ack < self.snd_una - max(self.max_snd_wnd, 1):
            # RFC 5961 5.2: too old -> challenge ACK.
            self._challenge_ack(seg, "ack-too-old", now)
            return
        else:
            if not self._process_ack(seg, sseq, ack, now):
                return
        if self.options.keepalive:
            self._arm_keepalive(now)

        st = self.state
        # seventh: segment text.
        if plen or f & _FIN:
            payload = seg.payload
            start = sseq
            fin_seq = sseq + plen
            if start < self.rcv_nxt:
                payload = payload[self.rcv_nxt - start:]
                start = self.rcv_nxt
            right = self.rcv_adv if self.rcv_adv > self.rcv_nxt else self.rcv_nxt
            fin = bool(f & _FIN) and fin_seq <= right
            if start + len(payload) > right:
                payload = payload[: max(0, right - start)]
                fin = False
            if payload and st in DATA_STATES:
                if self.orphan:
                    # Linux: data for a closed socket -> RST (RFC 2525 2.17).
                    self._send_rst_here(now)
                    self._set_state(State.CLOSED, "data after close", now)
                    return
                self._accept_text(start, payload, now)
            elif payload or (plen and not payload):
                self.ack_now = True  # duplicate text: ACK it at once
            if fin and st in DATA_STATES and self.peer_fin is None:
                self.peer_fin = fin_seq

        # eighth: FIN (when every byte before it has arrived).
        if self.peer_fin is not None and not self.fin_rcvd and self.rcv_nxt == self.peer_fin:
            self.rcv_nxt += 1
            self.fin_rcvd = True
            self.ack_now = True  # RFC 1122 4.2.3.2: no delayed ACK for a FIN (as Linux)
            st = self.state
            if st is State.ESTABLISHED or st is State.SYN_RECEIVED:
                self._set_state(State.CLOSE_WAIT, "FIN received", now)
            elif st is State.FIN_WAIT_1:
                self._set_state(State.CLOSING, "FIN received (simultaneous close)", now)
            elif st is State.FIN_WAIT_2:
                self._set_state(State.TIME_WAIT, "FIN received", now)
        self._output(now)

    def _accept_text(self: Tcb, start: int, payload: bytes, now: int) -> None:
        """Queue in-order text, keep out-of-order text, decide the ACK (RFC 1122 4.2.3.2,
        RFC 5681 4.2: immediate ACK for out-of-order data and for filling a hole)."""
        if start == self.rcv_nxt:
            if not self.rd_shutdown:
                self.rbuf += payload
            self.rcv_nxt += len(payload)
            if self.ooo:
                more = self.ooo.pop_ready(self.rcv_nxt)
                if more:
                    if not self.rd_shutdown:
                        self.rbuf += more
                    self.rcv_nxt += len(more)
                self.ack_now = True
            elif self.cfg.delayed_ack <= 0 or self.rcv_nxt - self.last_ack_sent >= 2 * self.smss:
                self.ack_now = True
            elif "delack" not in self.timers.deadlines:
                # RFC 1122 4.2.3.2 allows up to 500 ms; we never wait more than 200 ms.
                self.timers.set("delack", now + min(self.cfg.delayed_ack, DELACK_MAX))
        else:
            self.ooo.add(start, payload)
            self.ack_now = True

    # ------------------------------------------------------------------ ACK processing
    def _ack_advance(self: Tcb, ack: int, now: int) -> int:
        """Move SND.UNA to ack: RTT sample, free the send buffer, reset retry state."""
        acked = ack - self.snd_una
        if self.rtt_seq is not None and ack >= self.rtt_seq:
            self.rtt.sample(now - self.rtt_time)
            self.rtt_seq = None
            if self._tracer is not None:
                self._trace(now, "rto", rto=self.rtt.rto, srtt=self.rtt.srtt,
                            rttvar=self.rtt.rttvar)
        self.sbuf.ack_to(ack)
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        self.retransmits = 0
        # The backed-off RTO stays until a valid RTT sample (Karn's algorithm, RFC 6298 5
        # after rule 5.7; Linux: "only reset backoff on valid RTT measurement").
        self._rto_episode = False
        if "rtx" in self.timers.deadlines:
            self.timers.cancel("rtx")  # RFC 6298 5.3: restarted by _output if needed
        return acked

    def _process_ack(self: Tcb, seg: Segment, sseq: int, ack: int, now: int) -> bool:
        """RFC 9293 3.10.7.4 fifth, ESTABLISHED and the closing states. False = stop."""
        from .tcb import State, unwrap

        una = self.snd_una
        cc = self.cc
        # SACK blocks (RFC 2018) into the scoreboard.
        new_sack = False
        if self.sack_ok and seg.options.sack_blocks:
            sacked_before = self.sb.sacked_bytes()
            for s32, e32 in seg.options.sack_blocks:
                s, e = unwrap(una, s32), unwrap(una, e32)
                if una < e <= self.snd_max and s < e:
                    self.sb.add(max(s, una), e)
            new_sack = self.sb.sacked_bytes() > sacked_before
        win = seg.window << self.snd_wscale
        if ack > una:
            acked = self._ack_advance(ack, now)
            self.sb.ack_to(ack)
            self.dupacks = 0
            if cc.in_recovery:
                if ack >= cc.recover:
                    cc.exit_recovery(self.snd_max - ack)  # RFC 6582 3.2 step 3
                else:
                    cc.on_partial_ack(acked)             # RFC 6582 3.2 step 5
                    if self.sack_ok:
                        self.rtx_next = max(self.rtx_next, ack)
                    else:
                        self.rtx_pending = True
            else:
                cc.on_ack(acked)
        elif (ack == una and not seg.payload and not seg.flags & _FIN
              and (win == self.snd_wnd or new_sack) and self.snd_max > una):
            # RFC 5681 2 "duplicate acknowledgment"; with SACK, RFC 6675 2 counts an ACK that
            # SACKs new data as a duplicate even when the window changed (Linux grows its
            # receive window while it autotunes, so its duplicate ACKs rarely repeat it).
            self.dupacks += 1
            self.stack.counters["dupacks_in"] += 1
            if cc.in_recovery:
                cc.on_dupack_in_recovery()
            elif (self.dupacks >= 3 or (self.sack_ok and self.sb.sacked_bytes()
                                         >= 3 * self.smss)) and cc.can_enter_recovery(ack):
                # RFC 5681 3.2 fast retransmit; RFC 6675 5 step 4 (DupAcks >= DupThresh
                # or IsLost(SND.UNA): DupThresh segments SACKed above it).
                cc.enter_recovery(self.snd_max - una, self.snd_max)
                self.rtt_seq = None
                self.stack.counters["fast_retransmits"] += 1
                if self.sack_ok:
                    self.rtx_next = una
                else:
                    self.rtx_pending = True
        # Window update (RFC 9293 3.10.7.4 fifth, SND.WL1/SND.WL2 rule).
        if self.snd_wl1 < sseq or (self.snd_wl1 == sseq and self.snd_wl2 <= ack):
            old = self.snd_wnd
            self.snd_wnd = win
            self.snd_wl1, self.snd_wl2 = sseq, ack
            if win > self.max_snd_wnd:
                self.max_snd_wnd = win
            if win > 0 and old == 0:
                self.persist_backoff = 0
                self.persist_probes = 0  # the window opened: the orphan limit starts again
                if "persist" in self.timers.deadlines:
                    self.timers.cancel("persist")
        # Our FIN acknowledged?
        if self.fin_queued and self.snd_una == self.sbuf.end + 1:
            st = self.state
            if st is State.FIN_WAIT_1:
                self._set_state(State.FIN_WAIT_2, "FIN acked", now)
            elif st is State.CLOSING:
                self._set_state(State.TIME_WAIT, "FIN acked", now)
            elif st is State.LAST_ACK:
                self._set_state(State.CLOSED, "FIN acked", now)
                return False
        return True

    # ------------------------------------------------------------------ RST, challenge ACK
    def _reset_by_peer(self: Tcb, seg: Segment, now: int) -> None:
        """RFC 9293 3.10.7.4 second, for an RST with exactly SEQ = RCV.NXT (RFC 5961 3.2)."""
        from .tcb import State

        st = self.state
        if st is State.TIME_WAIT:
            if self.cfg.rfc1337:
                self._drop(seg, "rfc1337", now)  # RFC 1337: ignore RST
                return
            self._set_state(State.CLOSED, "RST in TIME_WAIT", now)
        elif st is State.SYN_RECEIVED:
            if self.listener is not None:
                self._set_state(State.CLOSED, "RST in SYN_RECEIVED (back to LISTEN)", now)
            else:
                self._fail(errno.ECONNREFUSED, "RST in SYN_RECEIVED", now)
        elif st in (State.CLOSING, State.LAST_ACK):
            self._set_state(State.CLOSED, "RST", now)
        else:
            self._fail(errno.ECONNRESET, "RST received", now)

    def _challenge_ack(self: Tcb, seg: Segment, reason: str, now: int) -> None:
        """RFC 5961 3.2 / 4.2 / 5.2 challenge ACK, rate limited (RFC 5961 7)."""
        self._drop(seg, reason, now)
        if self.stack._challenge_allowed(now):
            self.stack.counters["challenge_acks"] += 1
            self.ack_now = True
            self._output(now)
        else:
            self.stack.counters["challenge_acks_limited"] += 1


__all__ = ["TcbInput"]
