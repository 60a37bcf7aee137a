"""Output processing: ``_output(now)`` is the one place that decides what a connection sends
(SYN, SYN-ACK, data, retransmissions, FIN, pure ACKs), plus the segment builder.

Order of decisions in ``_output``:
1. handshake segments (SYN in SYN-SENT, SYN-ACK until our SYN is acknowledged);
2. NewReno fast retransmit of snd_una (RFC 5681 3.2 / RFC 6582), or SACK hole
   retransmissions bounded by ``pipe`` (RFC 6675 5);
3. new data / go-back-N after a timeout from snd_nxt, limited by the peer's window and cwnd,
   with sender SWS avoidance and Nagle (RFC 1122 4.2.3.4, RFC 896), and the FIN after the data;
4. a pure ACK when one is owed (``ack_now``);
5. timers: retransmission (RFC 6298 5.1-5.3) or persist (RFC 9293 3.8.6.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .segment import (
    ACK,
    CWR,
    ECE,
    ECT0,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    Options,
    Segment,
    flags_str,
    new_options,
    new_segment,
)
from .seq import MASK
from .states import CLOSED, LISTEN, SYN_SENT, TIME_WAIT

if TYPE_CHECKING:
    from .tcb import Tcb

_NO_OPTS = Options()
PTO_MIN = 10_000      # us: the shortest tail loss probe timeout (see TcbOutput._pto)


class TcbOutput:
    __slots__ = ()

    # ------------------------------------------------------------------ segment building
    def _tsval(self: Tcb, now: int) -> int:
        return (now // 1000) & MASK  # RFC 7323 5.4: a 1 ms timestamp clock

    def _syn_options(self: Tcb, now: int, reply: bool) -> Options:
        o = self.options
        if not reply:  # SYN: offer everything we have enabled
            return Options(
                mss=o.mss,
                wscale=self.rcv_wscale if o.window_scaling else None,
                sack_permitted=o.sack,
                timestamps=(self._tsval(now), 0) if o.timestamps else None,
            )
        # SYN-ACK: only what both sides offered (RFC 7323 1.3, 2.2; RFC 2018 2)
        return Options(
            mss=o.mss,
            wscale=self.rcv_wscale if self.ws_ok else None,
            sack_permitted=self.sack_ok,
            timestamps=(self._tsval(now), self.ts_recent) if self.ts_ok else None,
        )

    def _window_field(self: Tcb, syn: bool) -> int:
        """Receive window to advertise, with receiver SWS avoidance (RFC 1122 4.2.3.3) and
        without ever shrinking the right edge (RFC 9293 3.8.6.2.2)."""
        rcvbuf = self.options.rcvbuf
        free = rcvbuf - self.rbuf.size
        if free < 0:
            free = 0
        if syn:
            w = min(free, 0xFFFF)  # RFC 7323 2.2: the SYN window is never scaled
            if self.irs is not None and self.rcv_nxt + w > self.rcv_adv:
                self.rcv_adv = self.rcv_nxt + w
            return w
        rcv_nxt = self.rcv_nxt
        right = rcv_nxt + free
        cur = self.rcv_adv
        if right <= cur:
            right = cur  # never shrink
        else:
            # do not open by a silly amount: less than min(rcvbuf / 2, SMSS) past the
            # current edge (or RCV.NXT, if that is further)
            base = cur if cur > rcv_nxt else rcv_nxt
            step = rcvbuf // 2
            if self.smss < step:
                step = self.smss
            if right - base < step:
                right = base
        shift = self.rcv_wscale if self.ws_ok else 0
        field = (right - rcv_nxt) >> shift
        if field > 0xFFFF:
            field = 0xFFFF
        adv = rcv_nxt + (field << shift)
        if adv > cur:
            self.rcv_adv = adv
        return field

    def _sack_option_len(self: Tcb) -> int:
        """Bytes the SACK option takes in our next segment (NOP, NOP, kind, len, blocks)."""
        # (.nbytes: held bytes, nonzero exactly when blocks are held; no __bool__ call)
        if not (self.sack_ok and (self.out_of_order.nbytes or self.dsack_block)):
            return 0
        n = len(self.out_of_order.blocks) + (self.dsack_block is not None)
        k = min(n, 3 if self.ts_ok else 4)
        return 4 + 8 * k if k else 0

    def _make_segment(self: Tcb, seq: int, flags: int, payload: bytes, now: int) -> Segment:
        syn = flags & SYN
        ooo = self.out_of_order
        if syn:
            opts = self._syn_options(now, reply=bool(flags & ACK))
        elif self.ts_ok or (self.sack_ok and (ooo.nbytes or self.dsack_block)):
            blocks: tuple = ()
            if self.sack_ok and (ooo.nbytes or self.dsack_block):
                lim = 3 if self.ts_ok else 4
                ranges = ooo.sack_blocks(lim) if ooo else []
                d = self.dsack_block
                if d is not None and flags & ACK:
                    # RFC 2883 4: the D-SACK block first, once
                    ranges = [d] + [r for r in ranges if r != d][: lim - 1]
                    self.dsack_block = None
                blocks = tuple((s & MASK, e & MASK) for s, e in ranges)
            opts = new_options((
                None, None, False, blocks,
                ((now // 1000) & MASK, self.ts_recent) if self.ts_ok else None,
            ))
        else:
            opts = _NO_OPTS
        ack = self.rcv_nxt & MASK if flags & ACK else 0
        urp = self.urgent.pointer_for(seq) if self.urgent.snd_up is not None else 0
        if urp:
            flags |= URG                  # RFC 9293 3.8.5: until the urgent byte is acked
        ecn = 0
        if self.ecn_ok and not syn:
            if self.ece_pending and flags & ACK:
                flags |= ECE              # RFC 3168 6.1.3: until the peer's CWR
            if payload and seq >= self.snd_max:
                ecn = ECT0                # RFC 3168 6.1.2: new data is ECN-capable
                if self.cwr_pending:      # (retransmissions are not, 6.1.5)
                    flags |= CWR          # the window was reduced for an ECE
                    self.cwr_pending = False
        return new_segment((
            self.local[1], self.remote[1], seq & MASK, ack, flags,
            self._window_field(syn), opts, payload, urp, ecn,
        ))

    def _emit(self: Tcb, seg: Segment, now: int) -> None:
        if seg.flags & ACK:
            self.last_ack_sent = self.rcv_nxt
            self.ack_now = False
            if "delack" in self.timers.deadlines:
                self.timers.cancel("delack", now)
        self.stack._transmit(self, seg, now)

    # ------------------------------------------------------------------ special segments
    def _send_rst(self: Tcb, now: int, seq: int | None = None) -> None:
        """RST|ACK from our current position (abort, close with unread data), or from
        ``seq`` when given."""
        seq = self.snd_max if seq is None else seq
        # RFC 7323 3.2: once negotiated, TSopt SHOULD be sent in an RST too (Linux does)
        opts = (Options(timestamps=(self._tsval(now), self.ts_recent)) if self.ts_ok
                else _NO_OPTS)
        seg = Segment(self.local[1], self.remote[1], seq & MASK,
                      self.rcv_nxt & MASK, RST | ACK, 0, opts)
        self.stack._transmit(self, seg, now)

    def _send_probe(self: Tcb, now: int) -> None:
        """Zero-window probe / keep-alive: seq = SND.UNA - 1, no data, elicits an ACK."""
        seg = self._make_segment(self.snd_una - 1, ACK, b"", now)
        self._emit(seg, now)

    def _send_seq(self: Tcb, seq: int, n: int, flags: int, now: int) -> int:
        """Send n data bytes from seq (plus FIN if in flags). Returns the end sequence."""
        return self._send_seg(seq, n, flags, now, None)[0]

    def _send_seg(self: Tcb, seq: int, n: int, flags: int, now: int,
                  like: Segment | None) -> tuple[int, Segment]:
        """_send_seq, also returning the segment. ``like``: a segment made earlier in the
        same burst (same ``now``, no input since, flags with ACK, no SYN, URG, ECN or
        D-SACK block: see _output), whose ACK, window and options this one repeats instead
        of working them out again."""
        payload = self.send_buffer.peek(seq, n) if n else b""
        if like is None:
            seg = self._make_segment(seq, flags, payload, now)
        else:
            seg = new_segment((like.src_port, like.dst_port, seq & MASK, like.ack, flags,
                               like.window, like.options, payload, 0, 0))
        end = seq + n + (1 if flags & (FIN | SYN) else 0)
        snd_max = self.snd_max
        rack = self.recovery.rack
        if rack is not None and n:
            if seq >= snd_max:
                rack.sent(seq, seq + n, now)
            else:
                rack.resent(seq, min(seq + n, snd_max), now)
                if seq + n > snd_max:
                    rack.sent(snd_max, seq + n, now)
        if seq < snd_max:
            self.total_retrans += 1
            self.bytes_retrans += n
            self.retrans_out += n
            rec = self.recovery
            if rec.undo_marker:
                # RFC 3708 / RFC 4015: count the episode's retransmissions, remember the
                # timestamp of the first (Linux's undo_retrans, retrans_stamp)
                rec.undo_retrans += max(1, -(-n // (self.smss or 1)))
                if rec.retrans_stamp is None:
                    rec.retrans_stamp = self._tsval(now)
            self.rtt_seq = None  # Karn's algorithm (RFC 6298 3)
            self.stack.counters["retransmits"] += 1
            if self._tracer is not None:
                self._trace(now, "retransmit", seq=seg.seq, rseq=(seg.seq - self.iss) & MASK,
                            len=n, flags=flags_str(flags), count=self.retransmits)
        else:
            if self.rtt_seq is None:
                self.rtt_seq = end
                self.rtt_time = now
            last = self.last_data_at
            if n and last is not None and now - last < self.cfg.delayed_ack:
                self.pingpong = True      # a reply within the delayed-ACK time (Linux)
            if 0 < n < self.smss:
                self.nagle_end = end
        if end > self.snd_max:
            self.snd_max = end
        self._emit(seg, now)
        return end, seg

    # ------------------------------------------------------------------ the output function
    def _output(self: Tcb, now: int, rto: bool = False, force: bool = False) -> None:
        st = self.state
        if st is CLOSED or st is LISTEN:
            return
        if st is TIME_WAIT:
            if self.ack_now:
                self._emit(self._make_segment(self.snd_max, ACK, b"", now), now)
            return
        if self.snd_una == self.iss:
            # Our SYN is not acknowledged yet: SYN-SENT, or SYN-RECEIVED (maybe FIN queued).
            if self.snd_nxt == self.iss:
                flags = SYN if st is SYN_SENT else SYN | ACK
                if st is SYN_SENT:
                    # RFC 3168 6.1.1: an ECN-setup SYN (ECE and CWR) when Config.ecn = 1;
                    # a retransmitted SYN goes without (6.1.1.1, as Linux)
                    if self.cfg.ecn == 1 and not self.retransmits:
                        flags |= ECE | CWR
                elif self.ecn_ok:
                    flags |= ECE          # RFC 3168 6.1.1: ECN-setup SYN-ACK
                self.snd_nxt = self._send_seq(self.iss, 0, flags, now)
            elif self.ack_now and st is not SYN_SENT:
                self._emit(self._make_segment(self.snd_max, ACK, b"", now), now)
            self.ack_now = False
            self._arm_timers(now)
            return

        data_end = self.send_buffer.end
        rec = self.recovery
        nxt = self.snd_nxt
        if ((nxt > data_end or (nxt == data_end and not self.fin_queued))
                and not rec.resend_una and not rec.cc.in_recovery):
            # Nothing to send or resend (what steps 2 and 3 below would find): at most the
            # ACK owed (step 4)
            if self.ack_now:
                self._emit(self._make_segment(self.snd_max, ACK, b"", now), now)
            self._arm_timers(now)
            return

        sent = False
        # SACK blocks ride on data segments too, so the payload shrinks to leave them room
        # and the packet still fits the peer's MSS (RFC 9293 3.7.1: MSS counts no options;
        # Linux's tcp_current_mss() does the same).
        smss = self.smss
        if self.sack_ok and (self.out_of_order.nbytes or self.dsack_block):
            smss -= self._sack_option_len()
        fin_queued = self.fin_queued
        sb = rec.scoreboard
        cc = rec.cc
        una = self.snd_una

        # 2a. NewReno: fast retransmit / partial ACK retransmits SND.UNA (ignores cwnd).
        if rec.resend_una:
            rec.resend_una = False
            n = min(smss, data_end - una)
            if n > 0:
                fl = ACK | (FIN if fin_queued and una + n == data_end else 0)
                end = self._send_seq(una, n, fl, now)
                sent = True
                if end > self.snd_nxt:
                    self.snd_nxt = end
            elif fin_queued and una == data_end:
                self._send_seq(una, 0, ACK | FIN, now)
                sent = True

        wnd_edge = una + self.snd_wnd
        extra = cwnd_edge = 0
        # 2b. SACK recovery (RFC 6675 5): retransmit holes while pipe < cwnd.
        rack = rec.rack
        if cc.in_recovery and rack is not None:
            # RFC 6675 NextSeg rule 1 with RACK's losses (RFC 8985 6.2): the segments RACK
            # marked lost, lowest first; the fast retransmit goes out whatever pipe says
            # (RFC 6937: at least one segment at the start of recovery)
            pipe = rec.pipe(una, self.snd_nxt, self.snd_max)
            first = rec.prr_out == 0
            while pipe < cc.cwnd or first:
                nl = rack.next_lost()
                if nl is None:
                    break
                seq = max(nl[0], una)
                n = min(smss, nl[1] - seq, data_end - seq)
                if n <= 0:
                    break
                first = False
                fl = ACK | (FIN if fin_queued and seq + n == data_end else 0)
                self._send_seq(seq, n, fl, now)
                rec.prr_out += n
                pipe += n
                sent = True
            edge = min(wnd_edge, self.snd_nxt + max(0, cc.cwnd - pipe))
        elif cc.in_recovery and self.sack_ok:
            pipe = rec.pipe(una, self.snd_nxt)
            hs = sb.highest
            # RFC 6675 5 (4.3): the first segment presumed lost goes out at once, whatever
            # pipe says; later holes wait for pipe < cwnd.
            first = rec.next_hole <= una
            while hs is not None and (pipe < cc.cwnd or first):
                first = False
                seq = sb.skip(max(rec.next_hole, una))
                if seq >= hs or seq >= data_end:
                    break
                hole_end = sb.next_sacked_start(seq) or hs
                n = min(smss, hole_end - seq, data_end - seq)
                fl = ACK | (FIN if fin_queued and seq + n == data_end else 0)
                self._send_seq(seq, n, fl, now)
                rec.next_hole = seq + n
                rec.prr_out += n
                pipe += n
                sent = True
            edge = min(wnd_edge, self.snd_nxt + max(0, cc.cwnd - pipe))
        else:
            cwnd_edge = una + cc.cwnd
            # only new data (RFC 3042 2), never a go-back-N resend after a timeout
            extra = (rec.limited_transmit(smss) if rec.dupacks and self.snd_nxt >= self.snd_max
                     else 0)
            edge = cwnd_edge + extra
            if wnd_edge < edge:
                edge = wnd_edge

        # 3. New data, or go-back-N after a timeout, from SND.NXT. With segmentation offload
        #    (Config.offload on a link that splits), new data leaves in chunks of whole
        #    MSS-sized segments that the link cuts up (GSO); the decisions stay per MSS.
        nxt0 = self.snd_nxt
        big = self.stack.max_payload
        chunk = smss if big is None or big < 2 * smss else big // smss * smss
        nodelay = self.options.nodelay
        # a burst's segments share ACK, window and options: the first is made in full, the
        # others copy it (_send_seq's like=), unless urgent data, ECN or a D-SACK block
        # makes them differ
        plain = not self.ecn_ok and self.urgent.snd_up is None and self.dsack_block is None
        like = None
        while True:
            seq = self.snd_nxt
            if seq < self.snd_max and sb.sacked:
                s2 = sb.skip(seq)
                if s2 != seq:
                    self.snd_nxt = seq = min(s2, self.snd_max)
            avail = data_end - seq
            if avail > 0:
                room = edge - seq
                n = min(avail, chunk, room)
                if n <= 0:
                    if force and self.snd_wnd > 0 and seq < wnd_edge:
                        n = min(avail, smss, wnd_edge - seq)
                    else:
                        break
                if n < smss and seq >= self.snd_max and not force:
                    if n < avail:
                        # Limited by a window: sender SWS avoidance (RFC 1122 4.2.3.4).
                        if not (edge == wnd_edge and n >= self.max_snd_wnd // 2):
                            break
                    elif not nodelay and self.nagle_end > una and not fin_queued:
                        # Nagle (RFC 896, RFC 1122 4.2.3.4) with Minshall's refinement (as
                        # Linux): no new small segment while a small one is unacknowledged.
                        break
                force = False
                fl = ACK
                if seq + n == data_end:
                    fl |= PSH
                    if fin_queued:
                        fl |= FIN
                self.snd_nxt, seg = self._send_seg(seq, n, fl, now, like)
                if plain:
                    like = seg
                if extra and self.snd_nxt > cwnd_edge:
                    rec.limited += self.snd_nxt - max(seq, cwnd_edge)
                sent = True
                continue
            if fin_queued and seq == data_end and seq < wnd_edge:
                # FIN alone (first time, or again after a timeout). A FIN takes a sequence
                # number, so it waits for a window like data (as Linux's tcp_snd_wnd_test);
                # meanwhile the persist timer probes the zero window (RFC 9293 3.8.6.1).
                self.snd_nxt = self._send_seq(seq, 0, ACK | FIN, now)
                sent = True
            break

        if cc.in_recovery and self.snd_nxt > nxt0:
            rec.prr_out += self.snd_nxt - nxt0      # RFC 6937: data sent in recovery
        # 4. A pure ACK if one is owed and nothing carried it. Its sequence number is
        #    SND.MAX, not a rewound SND.NXT: the peer may already hold everything up to
        #    SND.MAX and would find an older number unacceptable (and ignore the ACK).
        if not sent and self.ack_now:
            self._emit(self._make_segment(self.snd_max, ACK, b"", now), now)
        self._arm_timers(now)

    def _pto(self: Tcb) -> int:
        """RFC 8985 7.2: PTO = 2 SRTT, plus the peer's worst delayed-ACK time when one
        segment is in flight (at least 2 ms)."""
        srtt = self.rtt.srtt
        pto = 2 * srtt if srtt else 1_000_000
        if self.snd_max - self.snd_una <= self.smss + 1:     # one segment (with its FIN)
            pto += 200_000            # WCDelAckT (RFC 8985 7.2; Linux TCP_RTO_MIN)
        else:
            pto += 2_000              # Linux: + TCP_TIMEOUT_MIN (2 jiffies)
        # at least PTO_MIN: a Python event loop may spend a few ms sending a burst, with the
        # ACKs for it already waiting to be read; a shorter probe timeout would fire first
        return max(pto, PTO_MIN)

    def _arm_tlp(self: Tcb, now: int) -> None:
        """RFC 8985 7.2: the probe timeout, not later than the RTO would fire."""
        rtx = self.timers.deadlines.get("rtx")
        at = now + self._pto()
        if rtx is not None and at >= rtx:
            return                    # the RTO comes first: no probe
        self.timers.set("tlp", at, now)

    def _send_tlp(self: Tcb, now: int) -> None:
        """RFC 8985 7.3: one probe: a new segment if the windows allow, else the last
        segment sent again. At most one probe is outstanding (TLPRxtOut)."""
        rec = self.recovery
        rack = rec.rack
        una = self.snd_una
        if (rack is None or rack.tlp_end is not None or self.snd_max <= una
                or una == self.iss or rec.cc.in_recovery or rec.loss):
            return                        # (una == iss: our SYN is not acknowledged)
        smss = self.smss - self._sack_option_len()
        end = self.send_buffer.end
        nxt = self.snd_nxt
        fin = FIN if self.fin_queued else 0
        if end > nxt and nxt + min(smss, end - nxt) <= una + self.snd_wnd:
            n = min(smss, end - nxt)
            self.snd_nxt = self._send_seq(nxt, n, ACK | PSH | (fin if nxt + n == end else 0),
                                          now)
            rack.tlp_retrans = False
        else:
            top = min(self.snd_max, end)
            n = min(smss, top - max(una, self.send_buffer.start))
            if n <= 0:
                return
            seq = top - n
            self._send_seq(seq, n, ACK | (PSH if top == end else 0)
                           | (fin if self.snd_max > end else 0), now)
            rack.tlp_retrans = True
        rack.tlp_end = self.snd_max
        self.stack.counters["tlp_probes"] += 1
        if "rtx" in self.timers.deadlines:     # RFC 8985 7.3: the RTO restarts
            self.timers.set("rtx", now + self.rtt.rto, now)

    def _arm_timers(self: Tcb, now: int) -> None:
        timers = self.timers
        if self.snd_nxt > self.snd_una:
            if "persist" in timers.deadlines:
                timers.cancel("persist", now)
            if "rtx" not in timers.deadlines:
                timers.set("rtx", now + self.rtt.rto, now)  # RFC 6298 5.1
            rec = self.recovery
            rack = rec.rack
            if (rack is not None and rack.tlp_end is None and "tlp" not in timers.deadlines
                    and not rec.cc.in_recovery and not rec.loss and not rack.sacked_segs
                    and self.snd_una != self.iss):
                self._arm_tlp(now)
        else:
            if "rtx" in timers.deadlines:
                timers.cancel("rtx", now)  # RFC 6298 5.2
            end = self.send_buffer.end
            pending = end > self.snd_nxt or (self.fin_queued and self.snd_nxt <= end)
            if pending and self.snd_una > self.iss:
                if "persist" not in timers.deadlines:
                    self._arm_persist(now)
            elif "persist" in timers.deadlines:
                timers.cancel("persist", now)
                self.persist_backoff = 0
                self.persist_probes = 0
