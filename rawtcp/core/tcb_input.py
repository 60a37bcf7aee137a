"""Input processing: segment arrival in the order of RFC 9293 3.10.7.

SYN-SENT (3.10.7.3) has its own method. Every synchronized state goes through
``_input_sync``, which runs the RFC's steps in order, one method each, so that each step
shows on one screen what it does in every state:

    _check_paws        RFC 7323 5.3 (R1)
    _check_sequence    first: is the segment acceptable? (with TIME-WAIT's re-ACK of a FIN)
    _check_rst         second: RST (RFC 5961 3.2)
    _check_syn         fourth: SYN (RFC 5961 4.2; back to LISTEN from SYN-RECEIVED)
    _check_ack         fifth: ACK (RFC 5961 5.2; SYN-RECEIVED; window update; our FIN acked)
    _process_text      seventh: segment text (and remembering the peer's FIN)
    _process_fin       eighth: FIN

Each ``_check_*`` returns False when the segment has been dealt with (dropped, answered).
``_input_sync`` calls a step's method only when the step has something to do for the
segment (a segment at RCV.NXT inside the window is acceptable; no RST bit, no RST step...):
the common segment passes the cheap tests inline, which is what the steps would conclude.
Nothing here raises on a bad segment: it is dropped, counted and traced.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .config import MS
from .rtt import ts_rtt
from .segment import ACK, CE, CWR, ECE, FIN, PSH, RST, SYN, URG, Options, Segment
from .seq import MASK, lt, unwrap
from .states import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    DATA_STATES,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
)

if TYPE_CHECKING:
    from .tcb import Tcb

DELACK_MAX = 200 * MS  # upper bound of any configured delayed-ACK timeout


class TcbInput:
    __slots__ = ()

    def on_segment(self: Tcb, seg: Segment, now: int) -> None:
        st = self.state
        if st is SYN_SENT:
            self._input_syn_sent(seg, now)
        elif st is CLOSED or st is LISTEN:
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
        self.recovery.negotiated(self.smss, self.cfg.initial_cwnd_segments, self.sack_ok)

    # ------------------------------------------------------------------ LISTEN (child)
    def _input_listen(self: Tcb, seg: Segment, now: int) -> None:
        """RFC 9293 3.10.7.2 third: a SYN for a listener; this TCB is the new child."""
        self.irs = seg.seq
        self.rcv_nxt = self.rcv_adv = seg.seq + 1
        self.last_ack_sent = self.rcv_nxt
        self._negotiate(seg.options)
        self.iss = self._choose_iss(now)
        self.snd_una = self.snd_nxt = self.snd_max = self.iss
        self.iss_chosen = True
        self.send_buffer.rebase(self.iss + 1)
        self.snd_wnd = seg.window  # never scaled in a SYN
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = self.irs
        self.snd_wl2 = self.iss
        # RFC 3168 6.1.1: an ECN-setup SYN (ECE and CWR) is accepted unless ECN is off
        self.ecn_ok = bool(self.cfg.ecn and seg.flags & (ECE | CWR) == ECE | CWR)
        self._set_state(SYN_RECEIVED, "SYN received (passive open)", now)
        self._output(now)

    def _open_from_cookie(self: Tcb, seg: Segment, now: int, cookie: int, peer_mss: int,
                          peer_wscale: int | None, sack: bool) -> None:
        """A listener's child rebuilt from a validated SYN cookie (syncookies.py): the state
        a SYN and our SYN-ACK would have left (RFC 9293 3.10.7.2), then the ACK that
        carried the cookie is processed as in SYN-RECEIVED (-> ESTABLISHED)."""
        ts = seg.options.timestamps
        peer_syn = Options(mss=peer_mss, wscale=peer_wscale, sack_permitted=sack,
                           timestamps=(ts[0], 0) if ts is not None else None)
        self.irs = (seg.seq - 1) & MASK
        self.rcv_nxt = self.irs + 1
        self.rcv_adv = self.rcv_nxt + min(self.options.rcvbuf, 0xFFFF)  # our SYN-ACK's window
        self.last_ack_sent = self.rcv_nxt
        self._negotiate(peer_syn)
        self.iss = cookie
        self.snd_una = self.iss
        self.snd_nxt = self.snd_max = self.iss + 1
        self.iss_chosen = True
        self.send_buffer.rebase(self.iss + 1)
        self.snd_wl1 = self.irs
        self.snd_wl2 = self.iss
        self._set_state(SYN_RECEIVED, "SYN cookie validated (RFC 4987 3.6)", now)
        self._input_sync(seg, now)

    # ------------------------------------------------------------------ SYN-SENT
    def _input_syn_sent(self: Tcb, seg: Segment, now: int) -> None:
        """RFC 9293 3.10.7.3."""
        f = seg.flags
        ack = 0
        if f & ACK:
            ack = unwrap(self.iss, seg.ack)
            if ack <= self.iss or ack > self.snd_max:
                # first: unacceptable ACK -> <SEQ=SEG.ACK><CTL=RST> unless RST
                if not f & RST:
                    self.stack._reply_rst(self.local, self.remote, seg, now)
                self._drop(seg, "bad-ack", now)
                return
        if f & RST:
            # second: RST with an acceptable ACK -> "connection reset" (refused)
            if f & ACK:
                self._fail(errno.ECONNREFUSED, "RST in SYN_SENT (connection refused)", now)
            else:
                self._drop(seg, "rst-without-ack", now)
            return
        if not f & SYN:
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
        if f & ACK:
            self.snd_wl2 = ack
            # RFC 3168 6.1.1: ECN is on when we asked and the SYN-ACK has ECE without CWR
            self.ecn_ok = self.cfg.ecn == 1 and f & (ECE | CWR) == ECE
            self._ack_advance(ack, now)
            self._set_state(ESTABLISHED, "SYN-ACK received", now)
            self.ack_now = True
            self._output(now)
        else:
            # Simultaneous open (RFC 9293 3.5 figure 7): send SYN,ACK with our ISS again.
            self.snd_wl2 = self.iss
            self._set_state(SYN_RECEIVED, "simultaneous open (SYN received)", now)
            self.snd_nxt = self.iss
            self.timers.cancel("rtx", now)
            self._output(now)

    # ------------------------------------------------------------------ synchronized states
    def _input_sync(self: Tcb, seg: Segment, now: int) -> None:
        """RFC 9293 3.10.7.4, step by step (see the module docstring)."""
        if self.state is SYN_RECEIVED and self.listener is None:
            seg = self._simultaneous_open_syn_ack(seg)
        rcv_nxt = self.rcv_nxt
        sseq = unwrap(rcv_nxt, seg.seq)
        ts = seg.options.timestamps
        if (ts is not None and self.ts_ok and self.ts_recent_set
                and lt(ts[0], self.ts_recent) and not self._check_paws(seg, now)):
            return
        if sseq == rcv_nxt and self.rcv_adv > rcv_nxt:
            edge: bool | None = False    # at RCV.NXT, window open: acceptable (all 4 cases)
        else:
            edge = self._check_sequence(seg, sseq, now)
            if edge is None:
                return
        f = seg.flags
        if f & RST and not self._check_rst(seg, sseq, now):
            return
        if self.ecn_ok and (seg.ecn or f & CWR):
            self._ecn_in(seg)
        if edge:
            # RFC 9293 3.10.7.4: with a zero window still process ACK (and RST above), but
            # not the text or FIN.
            if seg.payload or f & FIN:
                self.ack_now = True
            f &= ~(FIN | PSH)
            seg = seg._replace(flags=f, payload=b"")
        if ts is not None and self.ts_ok and sseq <= self.last_ack_sent:
            self._update_ts_recent(ts[0])
        if f & SYN and not self._check_syn(seg, now):
            return
        if self.state is TIME_WAIT and sseq != rcv_nxt and not f & (FIN | RST):
            self._time_wait_stray(seg, now)
        if not self._check_ack(seg, sseq, now):
            return
        if f & URG and self.state in DATA_STATES:
            # sixth: the URG bit (RFC 9293 3.10.7.4; the pointer as RFC 6093 / Linux)
            self.urgent.on_pointer(sseq, seg.urgent, self.rcv_nxt)
            self._changed()
        if (seg.payload or f & FIN) and not self._process_text(seg, sseq, now):
            return
        if self.peer_fin is not None:
            self._process_fin(now)
        self.stack._output_soon(self, now)

    def _simultaneous_open_syn_ack(self: Tcb, seg: Segment) -> Segment:
        """RFC 9293 3.5 figure 8: after crossing SYNs, the peer's SYN,ACK (its SYN again, now
        acknowledging ours) completes the open in SYN-RECEIVED. Its SYN was already taken,
        so only its ACK is processed (Linux tcp_validate_incoming lets exactly this segment
        pass); without this, the strict sequence test calls it old and the open waits for a
        retransmission."""
        f = seg.flags
        if (f & (SYN | ACK | RST | FIN) == SYN | ACK and not seg.payload
                and unwrap(self.rcv_nxt, seg.seq) + 1 == self.rcv_nxt
                and unwrap(self.snd_una, seg.ack) == self.snd_max):
            return seg._replace(seq=(seg.seq + 1) & MASK, flags=f & ~SYN)
        return seg

    def _check_paws(self: Tcb, seg: Segment, now: int) -> bool:
        """RFC 7323 5.3 R1: a segment whose timestamp is older than TS.Recent is a duplicate
        from an earlier wrap of the sequence space: ACK and drop."""
        ts = seg.options.timestamps
        if (self.ts_ok and ts is not None and not seg.flags & RST and self.ts_recent_set
                and lt(ts[0], self.ts_recent)):
            self._drop(seg, "paws", now)
            self.ack_now = True
            self._output(now)
            return False
        return True

    def _check_sequence(self: Tcb, seg: Segment, sseq: int, now: int) -> bool | None:
        """First: the acceptability test of RFC 9293 3.10.7.4 (the four cases). Returns None
        when the segment was dealt with, True for the zero-window edge case (process only
        its ACK and RST), False for an acceptable segment."""
        f = seg.flags
        rcv_nxt = self.rcv_nxt
        slen = len(seg.payload) + (f & SYN and 1) + (f & FIN and 1)
        wnd = max(0, self.rcv_adv - rcv_nxt)
        if slen == 0:
            ok = sseq == rcv_nxt if wnd == 0 else rcv_nxt <= sseq < rcv_nxt + wnd
        elif wnd == 0:
            ok = False
        else:
            ok = rcv_nxt <= sseq < rcv_nxt + wnd or rcv_nxt <= sseq + slen - 1 < rcv_nxt + wnd
        if ok:
            return False
        if wnd == 0 and sseq == rcv_nxt and not f & SYN:
            return True
        # Not acceptable: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> unless RST, and drop.
        if f & RST:
            self._drop(seg, "unacceptable-rst", now)
            return None
        st = self.state
        if st is SYN_RECEIVED and f & SYN and not f & ACK and seg.seq == self.irs:
            # Our SYN-ACK was lost: the peer retransmitted its SYN. Send SYN-ACK again.
            self._drop(seg, "dup-syn", now)
            self.snd_nxt = self.iss
            self.timers.cancel("rtx", now)
            self._output(now)
            return None
        if st is TIME_WAIT and f & FIN:
            self._time_wait_fin(now)
            self._drop(seg, "retransmitted-fin-reacked", now)
        else:
            plen = len(seg.payload)
            if plen and sseq < rcv_nxt and self.sack_ok and self.cfg.dsack:
                # RFC 2883 4: text received before: say so with a D-SACK block
                self.dsack_block = (sseq, min(sseq + plen, rcv_nxt))
            self._drop(seg, "unacceptable", now)
        self.ack_now = True
        self._output(now)
        return None

    def _check_rst(self: Tcb, seg: Segment, sseq: int, now: int) -> bool:
        """Second: RST. Exactly RCV.NXT resets (per state); elsewhere in the window it gets
        a challenge ACK (RFC 5961 3.2)."""
        if not seg.flags & RST:
            return True
        if sseq != self.rcv_nxt:
            self._challenge_ack(seg, "rst-in-window", now)
            return False
        st = self.state
        if st is TIME_WAIT:
            self._time_wait_rst(seg, now)
        elif st is SYN_RECEIVED:
            if self.listener is not None:
                self._set_state(CLOSED, "RST in SYN_RECEIVED (back to LISTEN)", now)
            else:
                self._fail(errno.ECONNREFUSED, "RST in SYN_RECEIVED", now)
        elif (st is CLOSING or st is LAST_ACK) and self.orphan:
            self._set_state(CLOSED, "RST", now)
        elif st is CLOSING or st is LAST_ACK:
            # the user only shut the sending side: it still holds the socket and learns of
            # the reset (as Linux's tcp_reset: ECONNRESET)
            self._fail(errno.ECONNRESET, "RST received", now)
        elif st is CLOSE_WAIT:
            # the peer had finished sending: as Linux's tcp_reset, the user learns EPIPE
            # (its reads already end at the peer's FIN; its next send fails)
            self._fail(errno.EPIPE, "RST received in CLOSE_WAIT", now)
        else:
            self._fail(errno.ECONNRESET, "RST received", now)
        return False

    def _update_ts_recent(self: Tcb, tsval: int) -> None:
        """RFC 7323 4.3 (2): remember the timestamp to echo (the caller checked that the
        segment covers Last.ACK.sent: SEG.SEQ <= Last.ACK.sent)."""
        if not self.ts_recent_set or not lt(tsval, self.ts_recent):
            self.ts_recent = tsval
            self.ts_recent_set = True

    def _check_syn(self: Tcb, seg: Segment, now: int) -> bool:
        """Fourth: SYN. In SYN-RECEIVED from a passive OPEN: back to LISTEN (RFC 9293
        3.10.7.4); in the synchronized states: challenge ACK (RFC 5961 4.2)."""
        if not seg.flags & SYN:
            return True
        if self.state is SYN_RECEIVED and self.listener is not None:
            self._drop(seg, "syn-in-syn-received", now)
            self._set_state(CLOSED, "SYN in SYN_RECEIVED (back to LISTEN)", now)
            return False
        self._challenge_ack(seg, "syn-in-window", now)
        return False

    def _check_ack(self: Tcb, seg: Segment, sseq: int, now: int) -> bool:
        """Fifth: ACK. SYN-RECEIVED needs the ACK of our SYN; the other states process it
        (RFC 5961 5.2 range, congestion control, window update, our FIN acknowledged)."""
        if not seg.flags & ACK:
            self._drop(seg, "no-ack", now)
            return False
        ack = unwrap(self.snd_una, seg.ack)
        if self.snd_una == self.iss:
            # SYN-RECEIVED (maybe already FIN-WAIT-1 by a close): our SYN must be acked.
            if not self.snd_una < ack <= self.snd_max:
                self.stack._reply_rst(self.local, self.remote, seg, now)
                self._drop(seg, "bad-ack", now)
                return False
            if self.listener is not None and not self.listener._has_room():
                self._drop(seg, "accept-queue-full", now)
                return False
            self.snd_wnd = seg.window << self.snd_wscale
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            self.snd_wl1, self.snd_wl2 = sseq, ack
            self._ack_advance(ack, now)
            if self.state is SYN_RECEIVED:
                self._set_state(ESTABLISHED, "ACK of SYN-ACK", now)
        elif ack > self.snd_max:
            # RFC 9293 3.10.7.4: ACK of something not yet sent -> ACK, drop.
            self._drop(seg, "ack-unsent", now)
            self.ack_now = True
            self._output(now)
            return False
        elif ack < self.snd_una - max(self.max_snd_wnd, 1):
            # RFC 5961 5.2: too old -> challenge ACK.
            self._challenge_ack(seg, "ack-too-old", now)
            return False
        elif self.state is TIME_WAIT:
            # RFC 9293 3.10.7.4 fifth, TIME-WAIT: "The only thing that can arrive in this
            # state is a retransmission of the remote FIN" (handled with the text and FIN
            # below): everything of ours is acknowledged, there is no window or congestion
            # state left to update (Linux's tcp_timewait_state_process does no ACK work)
            return True
        elif not self._process_ack(seg, sseq, ack, now):
            return False
        if self.options.keepalive:
            self._arm_keepalive(now)
        return True

    def _process_text(self: Tcb, seg: Segment, sseq: int, now: int) -> bool:
        """Seventh: segment text, trimmed to the window; the peer's FIN is remembered when
        it is inside the window. False when the connection ended (data after close)."""
        payload = seg.payload
        plen = len(payload)
        start = sseq
        fin_seq = sseq + plen
        rcv_nxt = self.rcv_nxt
        if start < rcv_nxt:
            if self.sack_ok and self.cfg.dsack and plen:
                # RFC 2883 4: report the duplicate part in a D-SACK block, first in the
                # next ACK (this segment's text below RCV.NXT was received before)
                self.dsack_block = (start, min(rcv_nxt, start + plen))
            payload = payload[rcv_nxt - start:]
            start = rcv_nxt
        right = self.rcv_adv if self.rcv_adv > rcv_nxt else rcv_nxt
        fin = bool(seg.flags & FIN) and fin_seq <= right
        if start + len(payload) > right:
            payload = payload[: max(0, right - start)]
            fin = False
        st = self.state
        if payload and st in DATA_STATES:
            if self.orphan:
                # Linux: data for a closed socket -> RST (RFC 2525 2.17).
                self._send_rst(now)
                self._set_state(CLOSED, "data after close", now)
                return False
            if start == rcv_nxt:
                self._rcv_rtt_measure(seg, len(payload), now)
            self._accept_text(start, payload, now)
        elif plen:
            self.ack_now = True  # duplicate text: ACK it at once
        if fin and st in DATA_STATES and self.peer_fin is None:
            self.peer_fin = fin_seq
        elif seg.flags & FIN and self.fin_rcvd:
            # RFC 9293 3.10.7.4 eighth: a FIN after the peer's FIN was taken (CLOSE-WAIT,
            # CLOSING, LAST-ACK, TIME-WAIT) is acknowledged; TIME-WAIT restarts its 2 MSL
            if st is TIME_WAIT:
                self._time_wait_fin(now)
            else:
                self.ack_now = True
        return True

    def _process_fin(self: Tcb, now: int) -> None:
        """Eighth: the FIN, once every byte before it has arrived."""
        if self.peer_fin is None or self.fin_rcvd or self.rcv_nxt != self.peer_fin:
            return
        had_data = self.rcv_nxt != self.irs + 1
        self.rcv_nxt += 1
        self.fin_rcvd = True
        self._changed()
        st = self.state
        if st is ESTABLISHED or st is SYN_RECEIVED:
            # RFC 9293 3.10.7.4 eighth asks for an ACK, RFC 1122 4.2.3.2 lets it wait. As
            # Linux (tcp_fin): the connection goes into pingpong mode and the ACK waits like
            # one of data, so the application's own FIN usually carries it; at once when no
            # data ever arrived (Linux's delayed-ACK timeout is still 0 then) or when the
            # data rules already asked for one (more than one MSS unacknowledged, a hole
            # filled, quick-ACK mode for data in the same segment).
            self.pingpong = True
            if not had_data or self.cfg.delayed_ack <= 0:
                self.ack_now = True
            elif not self.ack_now:
                self._delay_ack(now)
            self._set_state(CLOSE_WAIT, "FIN received", now)
            return
        self.ack_now = True  # FIN_WAIT_1/2: at once (Linux's tcp_fin sends it there too)
        if st is FIN_WAIT_1:
            self._set_state(CLOSING, "FIN received (simultaneous close)", now)
        elif st is FIN_WAIT_2:
            self._set_state(TIME_WAIT, "FIN received", now)

    def _delay_ack(self: Tcb, now: int) -> None:
        """Start the delayed-ACK timer unless it runs already (an earlier one stands, as
        Linux's tcp_send_delayed_ack). RFC 1122 4.2.3.2 allows up to 500 ms; we never wait
        more than 200 ms."""
        if "delack" not in self.timers.deadlines:
            self.timers.set("delack", now + min(self.cfg.delayed_ack, DELACK_MAX), now)

    def _quick_ack(self: Tcb, now: int) -> bool:
        """Linux's quick-ACK mode (tcp_event_data_recv, tcp_incr_quickack): the first data
        of a connection, and the first after an idle RTO, start a run of ACKs sent at once
        (up to Config.quickack, and about a window's worth of pairs of segments), so the
        peer's slow start is not held back by delayed ACKs; a connection whose data goes
        out in reply to what it receives (pingpong, interactive) delays them instead."""
        limit = self.cfg.quickack
        if not limit:
            return False
        last = self.last_data_at
        self.last_data_at = now
        if last is None or now - last > self.rtt.rto:
            pairs = self.options.rcvbuf // (2 * self.smss) or 2
            self.quick = max(self.quick, min(limit, pairs))
        if self.quick and not self.pingpong:
            self.quick -= 1
            return True
        return False

    def _accept_text(self: Tcb, start: int, payload: bytes, now: int) -> None:
        """Queue in-order text, keep out-of-order text, decide the ACK (RFC 1122 4.2.3.2,
        RFC 5681 4.2: immediate ACK for out-of-order data and for filling a hole)."""
        if start == self.rcv_nxt:
            # also after shutdown(SHUT_RD): Linux keeps queueing (a read returns it; close
            # with it unread resets the connection)
            if self.urgent.rcv_seq is None:       # the common case: no urgent data
                self.rbuf += payload
            else:
                self.urgent.deliver(self.rbuf, start, payload)
            self._changed()
            self.rcv_nxt += len(payload)
            ooo = self.out_of_order
            if ooo:
                more = ooo.pop_ready(self.rcv_nxt)
                if more:
                    self.urgent.deliver(self.rbuf, self.rcv_nxt, more)
                    self.rcv_nxt += len(more)
                self.ack_now = True
            elif (self._quick_ack(now) or self.cfg.delayed_ack <= 0
                  or self.rcv_nxt - self.last_ack_sent > self.smss):
                # RFC 5681 4.2: an ACK for at least every second full-sized segment. A
                # full-sized segment is often shorter than SMSS (its SACK option takes
                # room), so count "more than one SMSS unacknowledged", as Linux's
                # __tcp_ack_snd_check (rcv_nxt - rcv_wup > rcv_mss); two 1428-byte segments
                # must not wait for the delayed-ACK timer.
                self.ack_now = True
            else:
                self._delay_ack(now)
        else:
            ooo = self.out_of_order
            ooo.add(start, bytes(payload))
            self.ack_now = True
            # A peer must not make one connection hold more than ~2x its receive buffer
            # (rbuf + out-of-order data with its per-piece overhead): drop out-of-order
            # data from the top, as Linux's tcp_prune_ofo_queue (SACK may renege, RFC 2018
            # 8: the sender keeps its data until the cumulative ACK).
            limit = self.options.rcvbuf + self.options.rcvbuf // 8
            if ooo.cost > limit:
                dropped = ooo.prune(limit)
                self.stack.counters["ooo_pruned_bytes"] += dropped
                self._trace(now, "prune", bytes=dropped, reason="out-of-order memory")

    # ------------------------------------------------------------------ ACK processing
    def _ack_advance(self: Tcb, ack: int, now: int, tsecr: int | None = None) -> int:
        """Move SND.UNA to ack: RTT sample, free the send buffer, reset retry state.

        RTT (RFC 6298 with RFC 7323 4.3): the timed segment when this ACK covers it (us
        precision); otherwise, with timestamps, the echoed TSval of an ACK of new data, also
        for retransmitted data (the echo says which transmission it answers, so Karn's
        rule is only needed without timestamps)."""
        acked = ack - self.snd_una
        r = 0
        if self.rtt_seq is not None and ack >= self.rtt_seq:
            r = now - self.rtt_time
            self.rtt_seq = None
        elif tsecr is not None and acked > 0:
            r = ts_rtt(now, tsecr) or 0       # None: a value we did not send (as Linux)
        if r:
            self.rtt.sample(r)
            self.recovery.cc.on_rtt(r, now)
            if self._tracer is not None:
                self._trace(now, "rto", rto=self.rtt.rto, srtt=self.rtt.srtt,
                            rttvar=self.rtt.rttvar)
        self.send_buffer.ack_to(ack)
        self.snd_una = ack
        urg = self.urgent
        if urg.snd_up is not None:
            urg.acked(ack)
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        self.retransmits = 0
        # The backed-off RTO stays until a valid RTT sample (Karn's algorithm, RFC 6298 5
        # after rule 5.7; Linux: "only reset backoff on valid RTT measurement").
        self.recovery.rto_episode = False
        if "rtx" in self.timers.deadlines:
            self.timers.cancel("rtx", now)  # RFC 6298 5.3: restarted by _output if needed
        rack = self.recovery.rack
        if rack is not None:
            rack.last_ack = now             # RFC 8985 7.2: the PTO counts from this ACK
        if self.watcher is not None:       # _changed()
            self.stack.changed.add(self)
        return acked

    def _process_ack(self: Tcb, seg: Segment, sseq: int, ack: int, now: int) -> bool:
        """RFC 9293 3.10.7.4 fifth, ESTABLISHED and the closing states. False = stop."""
        una = self.snd_una
        rec = self.recovery
        if (ack == una == self.snd_max and not seg.options.sack_blocks
                and not seg.flags & ECE and self._tracer is None and not rec.scoreboard.sacked):
            # Nothing of ours is outstanding (a receiver's segments): no congestion control,
            # RACK or recovery work, only the window and our FIN, as below.
            rec.newly_lost = rec.lost_retrans = False
            return self._ack_window(seg, sseq, ack, seg.window << self.snd_wscale, now)
        sb = rec.scoreboard
        rack = rec.rack
        rec.newly_lost = rec.lost_retrans = False
        rtx_before = self.retrans_out
        blocks = seg.options.sack_blocks
        if rack is not None and (blocks or ack > una):
            rack.start_ack(self.rtt.min_rtt)
        # SACK blocks (RFC 2018) into the scoreboard.
        new_sack = False
        dsack = False
        sacked_before = sb.sacked       # (bytes; nonzero exactly when ranges are held)
        if blocks and self.sack_ok:
            snd_max = self.snd_max
            for i, (s32, e32) in enumerate(blocks):
                s, e = unwrap(una, s32), unwrap(una, e32)
                if i == 0 and s < e and (e <= ack or (len(blocks) > 1 and _inside(
                        una, s, e, blocks[1]))):
                    # RFC 2883 4 / RFC 3708 2: a D-SACK block (data received twice)
                    dsack = True
                    rec.on_dsack(s, e, self.smss)
                    continue
                if una < e <= snd_max and s < e:
                    s = max(s, una)
                    if rack is not None:
                        _rack_sacked(rack, sb, s, e, now)
                    sb.add(s, e)
            new_sack = sb.sacked > sacked_before
            if dsack and self.cfg.undo and rec.can_undo_dsack():
                rec.undo()
        win = seg.window << self.snd_wscale
        cc = rec.cc
        delivered = -1
        if ack > una:
            ts = seg.options.timestamps
            tsecr = ts[1] if ts is not None and self.ts_ok else None
            if (tsecr is not None and rec.retrans_stamp is not None and rec.undo_marker
                    and self.cfg.undo and (cc.in_recovery or rec.loss)
                    and lt(tsecr, rec.retrans_stamp)):
                # RFC 3522 / RFC 4015 (Eifel): the ACK echoes a timestamp older than the
                # first retransmission, so it answers the original: the loss was spurious
                if rec.loss:
                    self.snd_nxt = max(self.snd_nxt, self.snd_max)   # no go-back-N
                rec.undo()
            acked = self._ack_advance(ack, now, tsecr)
            self.bytes_acked += acked
            if self.retrans_out:
                self.retrans_out = max(0, self.retrans_out - acked) if rec.ca != "open" else 0
            if rack is not None:
                rack.acked(ack, now)
            rec.on_new_ack(ack, acked, self.snd_max, now)
            delivered = acked + sb.sacked - sacked_before
            if self.snd_nospace:
                self._snd_buf_expand(now)     # Linux tcp_check_space -> tcp_new_space
        elif (ack == una and not seg.payload and not seg.flags & FIN and not dsack
              and (win == self.snd_wnd or new_sack) and self.snd_max > una):
            # (an ACK that only reports a duplicate, RFC 2883, says nothing is missing)
            # RFC 5681 2 "duplicate acknowledgment"; with SACK, RFC 6675 2 counts an ACK that
            # SACKs new data as a duplicate even when the window changed (Linux grows its
            # receive window while it autotunes, so its duplicate ACKs rarely repeat it).
            self.stack.counters["dupacks_in"] += 1
            if rec.on_dupack(una, self.snd_max, self.smss, now):
                self.rtt_seq = None
                self.stack.counters["fast_retransmits"] += 1
            delivered = sb.sacked - sacked_before
        elif new_sack:
            # an old (reordered) ACK still brings SACK news (RFC 6675 2, RFC 6937 DeliveredData)
            delivered = sb.sacked - sacked_before
        if rack is not None:
            if sb.sacked or rack.retrans_out or rack.lost_out:
                self._rack_detect(now)
            tlp = rack.tlp_end
            if tlp is not None and (self.snd_una > tlp or (dsack and self.snd_una >= tlp)):
                # RFC 8985 7.4 (as Linux's tcp_process_tlp_ack): an ACK beyond the probe
                # without a D-SACK for it means the probe repaired a loss: reduce as for one
                if rack.tlp_retrans and not dsack:
                    rec.on_ecn_echo(self.snd_una, self.snd_max, now)
                rack.tlp_end = None
        if delivered >= 0 and cc.in_recovery and rec.prr and self.sack_ok:
            # RFC 6937 DeliveredData: SND.UNA's advance plus the change in SACKed bytes
            rtx_acked = rack.rtx_acked if rack is not None else (ack > una and rtx_before > 0)
            rec.prr_update(delivered, self.snd_una, self.snd_nxt, self.snd_max, rtx_acked)
        if seg.flags & ECE and self.ecn_ok and self.snd_max > una:
            # RFC 3168 6.1.2: the peer saw congestion: reduce once per window, say CWR
            if rec.on_ecn_echo(una, self.snd_max, now):
                self.cwr_pending = True
        if self._tracer is not None:
            self._trace_cc(now)
        return self._ack_window(seg, sseq, ack, win, now)

    def _ack_window(self: Tcb, seg: Segment, sseq: int, ack: int, win: int, now: int) -> bool:
        """The end of _process_ack: the send window and our FIN. False = stop."""
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
                    self.timers.cancel("persist", now)
        # Our FIN acknowledged?
        if self.fin_queued and self.snd_una == self.send_buffer.end + 1:
            st = self.state
            if st is FIN_WAIT_1:
                self._set_state(FIN_WAIT_2, "FIN acked", now)
            elif st is CLOSING:
                self._set_state(TIME_WAIT, "FIN acked", now)
            elif st is LAST_ACK:
                self._set_state(CLOSED, "FIN acked", now)
                return False
        return True

    def _ecn_in(self: Tcb, seg: Segment) -> None:
        """RFC 3168 6.1.3: the peer's CWR ends our ECE; a CE mark (on this segment too)
        starts it: every ACK then carries ECE, the first at once (Linux: quick ACK)."""
        if seg.flags & CWR:
            self.ece_pending = False
        if seg.ecn:
            self.ecn_seen = True          # ECT or CE arrived (Linux's TCP_ECN_SEEN)
        if seg.ecn == CE:
            self.ece_pending = True
            self.delivered_ce += 1
            if seg.payload:
                self.ack_now = True

    def _rack_detect(self: Tcb, now: int) -> None:
        """RFC 8985 6.2 step 5 and the reordering timer (6.3)."""
        rec = self.recovery
        in_rec = rec.cc.in_recovery
        wait = rec.rack_detect(self.snd_una, self.snd_max, self.rtt.srtt or 0, now)
        if not in_rec and rec.cc.in_recovery:
            self.rtt_seq = None
            self.stack.counters["fast_retransmits"] += 1
        timers = self.timers
        if wait:
            timers.set("rack", now + wait, now)
        elif "rack" in timers.deadlines:
            timers.cancel("rack", now)

    # ------------------------------------------------------------------ challenge ACK
    def _challenge_ack(self: Tcb, seg: Segment, reason: str, now: int) -> None:
        """RFC 5961 3.2 / 4.2 / 5.2 challenge ACK, rate limited (RFC 5961 7)."""
        self._drop(seg, reason, now)
        if self.stack._challenge_allowed(now):
            self.stack.counters["challenge_acks"] += 1
            self.ack_now = True
            self._output(now)
        else:
            self.stack.counters["challenge_acks_limited"] += 1


def _inside(una: int, s: int, e: int, block: tuple[int, int]) -> bool:
    """RFC 2883 4: the first block lies within the second (a D-SACK above the ACK)."""
    s2, e2 = unwrap(una, block[0]), unwrap(una, block[1])
    return s2 <= s and e <= e2


def _rack_sacked(rack, sb, s: int, e: int, now: int) -> None:  # noqa: ANN001
    """Tell RACK the parts of [s, e) that the scoreboard did not have yet."""
    x = sb.skip(s)
    while x < e:
        nxt = sb.next_sacked_start(x)
        he = e if nxt is None or nxt > e else nxt
        rack.sacked(x, he, now)
        x = sb.skip(he)


__all__ = ["TcbInput"]
