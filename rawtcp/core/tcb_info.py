"""TCP_INFO: what a connection reports of itself (a mixin of Tcb), with Linux's tcpi_*
names without the prefix (rawtcp.tcpinfo lays the same values out as Linux's struct)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .congestion import INFINITE_SSTHRESH
from .recovery import CA_STATES
from .seq import MASK

if TYPE_CHECKING:
    from .tcb import Tcb


class TcbInfo:
    __slots__ = ()

    def info(self: Tcb) -> dict:
        """TCP_INFO-like (Linux's tcpi_* names without the prefix; rawtcp's older names kept
        beside them). Windows and thresholds: ``cwnd``/``ssthresh`` in bytes,
        ``snd_cwnd``/``snd_ssthresh`` in segments as Linux; times in us."""
        rec = self.recovery
        cc = rec.cc
        rtt = self.rtt
        fin = self.final_cc
        if fin is None:
            cwnd, ssthresh, algo, ca, reordering, dsack_dups, undos = (
                cc.cwnd, cc.ssthresh, cc.name, rec.ca, rec.reordering, rec.dsack_dups,
                rec.undos)
            rto, backoff, srtt, rttvar, min_rtt = (rtt.rto, rtt.backoff, rtt.srtt, rtt.rttvar,
                                                   rtt.min_rtt)
        else:       # an orphan in TIME-WAIT (_enter_time_wait): nothing is outstanding
            (cwnd, ssthresh, algo, ca, reordering, dsack_dups, undos, rto, backoff, srtt,
             rttvar, min_rtt) = fin
        mss = self.smss or 1
        una = self.snd_una
        sb = rec.scoreboard
        sacked = sb.sacked
        lost = 0
        rack = rec.rack
        if rack is not None:
            lost = rack.lost_out                  # RACK's marks (Linux's lost_out)
        elif ca == "loss":
            lost = max(0, self.snd_max - max(una, rec.next_hole) - sacked)
        elif ca == "recovery" and sb:
            hs = sb.highest or una
            lost = sb.unsacked_between(max(rec.next_hole, una), hs)
        options = ((1 if self.ts_ok else 0) | (2 if self.sack_ok else 0)
                   | (4 if self.ws_ok else 0) | (8 if self.ecn_ok else 0)
                   | (16 if self.ecn_seen else 0))
        return {
            "state": self.state.name,
            "ca_state": CA_STATES[ca],
            "ca": ca,
            "congestion": algo,
            "rto": rto,
            "backoff": backoff,
            "srtt": srtt,
            "rttvar": rttvar,
            "rtt": srtt or 0,
            "min_rtt": min_rtt,
            "cwnd": cwnd,
            "ssthresh": ssthresh,
            "snd_cwnd": -(-cwnd // mss),
            "snd_ssthresh": ssthresh // mss if ssthresh < INFINITE_SSTHRESH else 0x7FFFFFFF,
            "pipe": rec.pipe(una, self.snd_nxt, self.snd_max),
            "retransmits": self.retransmits,
            "retrans": -(-(rack.retrans_out if rack is not None else self.retrans_out) // mss),
            "total_retrans": self.total_retrans,
            "bytes_retrans": self.bytes_retrans,
            "lost": -(-lost // mss),
            "sacked": -(-sacked // mss),
            "reordering": reordering,
            "dsack_dups": dsack_dups,
            "undo_count": undos,
            "delivered": self.bytes_acked // mss,
            "bytes_acked": self.bytes_acked,
            "delivered_ce": self.delivered_ce,
            "options": options,
            "ecn": self.ecn_ok,
            "ecn_seen": self.ecn_seen,
            "probes": self.persist_probes,
            "snd_una": self.snd_una & MASK,
            "snd_nxt": self.snd_nxt & MASK,
            "snd_max": self.snd_max & MASK,
            "rcv_nxt": self.rcv_nxt & MASK,
            "snd_wnd": self.snd_wnd,
            "rcv_wnd": max(0, self.rcv_adv - self.rcv_nxt),
            "rcv_rtt": self.rcv_rtt,          # tcpi_rcv_rtt (us)
            "rcv_space": self.rcvq_space,     # tcpi_rcv_space: read in the last measured RTT
            "rcvbuf": self.options.rcvbuf,    # the buffers now (they grow: buftune.py)
            "sndbuf": self.options.sndbuf,
            "mss": self.smss,
            "snd_mss": self.smss,
            "rcv_mss": self.smss,         # what the peer sends in full-sized segments
            "advmss": self.options.mss,   # the MSS we announced
            "pmtu": self.options.mss + (60 if ":" in self.local[0] else 40),
            "ato": self.cfg.delayed_ack,  # the delayed-ACK timeout (us)
            "bytes_received": (self.rcv_nxt - self.irs - 1 - (1 if self.fin_rcvd else 0)
                               if self.irs is not None else 0),
            "bytes_sent": (max(0, min(self.snd_max, self.send_buffer.end) - self.iss - 1)
                           + self.bytes_retrans if self.iss_chosen else 0),
            "notsent_bytes": max(0, self.send_buffer.end - self.snd_nxt),
            "peer_mss": self.peer_mss,
            "iss": self.iss,
            "irs": self.irs,
            "snd_wscale": self.snd_wscale,
            "rcv_wscale": self.rcv_wscale if self.ws_ok else 0,
            "sack": self.sack_ok,
            "timestamps": self.ts_ok,
            "in_recovery": cc.in_recovery,
            "unacked": self.snd_max - self.snd_una,
            "send_queue": len(self.send_buffer),
            "recv_queue": len(self.rbuf),
            "error": self.error,
        }
