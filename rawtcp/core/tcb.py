"""One TCP connection (a Transmission Control Block, RFC 9293 3.3.1).

Theory of operation
-------------------
Sequence numbers inside the TCB are *absolute* Python ints: ``iss`` and ``irs`` are the
32-bit values from the wire and every later number grows from them without wrapping
(``snd_una``, ``snd_nxt``, ``snd_max``, ``rcv_nxt`` ...). Incoming 32-bit numbers are
unwrapped next to a reference (``unwrap``), outgoing ones are masked when a Segment is built.

Three parts:

- this file: states, the one state-changing method ``_set_state``, user calls (send, recv,
  shutdown, close, abort), timers and their handlers;
- ``tcb_input.py``: segment arrival in the order of RFC 9293 3.10.7;
- ``tcb_output.py``: ``_output(now)``, the one place that decides what to send.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from .buffers import Reassembly, SendBuffer
from .config import Config
from .congestion import NewReno, Scoreboard
from .rtt import RttEstimator
from .segment import Flags, Segment
from .seq import MASK, sub
from .tcb_input import TcbInput
from .tcb_output import TcbOutput
from .timers import Timers

if TYPE_CHECKING:
    from .stack import Binding, Listener, Stack


class State(enum.Enum):
    """RFC 9293 3.3.2 connection states."""

    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"
    CLOSED = "CLOSED"


SYNCHRONIZED = frozenset(
    {
        State.SYN_RECEIVED,
        State.ESTABLISHED,
        State.FIN_WAIT_1,
        State.FIN_WAIT_2,
        State.CLOSE_WAIT,
        State.CLOSING,
        State.LAST_ACK,
        State.TIME_WAIT,
    }
)
# States in which our FIN has been queued (no more user data may be sent).
FIN_STATES = frozenset(
    {State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.LAST_ACK, State.TIME_WAIT}
)
# States that accept segment text (RFC 9293 3.10.7.4 seventh step).
DATA_STATES = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})


@dataclass
class TcbOptions:
    """Per-connection options (socket options); defaults come from Config."""

    nodelay: bool = False
    keepalive: bool = False
    keepalive_time: int = 7200 * 1_000_000
    keepalive_intvl: int = 75 * 1_000_000
    keepalive_probes: int = 9
    rcvbuf: int = 256 * 1024
    sndbuf: int = 256 * 1024
    mss: int = 1460
    window_scaling: bool = True
    sack: bool = True
    timestamps: bool = True

    @classmethod
    def from_config(cls, cfg: Config) -> TcbOptions:
        return cls(
            nodelay=cfg.nodelay,
            keepalive=cfg.keepalive,
            keepalive_time=cfg.keepalive_time,
            keepalive_intvl=cfg.keepalive_intvl,
            keepalive_probes=cfg.keepalive_probes,
            rcvbuf=cfg.rcvbuf,
            sndbuf=cfg.sndbuf,
            mss=cfg.mss,
            window_scaling=cfg.window_scaling,
            sack=cfg.sack,
            timestamps=cfg.timestamps,
        )

    def copy(self) -> TcbOptions:
        return TcbOptions(**{f.name: getattr(self, f.name) for f in fields(self)})


def unwrap(ref: int, wire: int) -> int:
    """The absolute number nearest to ``ref`` whose low 32 bits are ``wire``."""
    return ref + sub(wire, ref & MASK)


class Tcb(TcbInput, TcbOutput):
    """One connection. Created by Stack.connect() or by a Listener; see docs/contracts.md."""

    def __init__(
        self,
        stack: Stack,
        local: tuple[str, int],
        remote: tuple[str, int],
        options: TcbOptions | None = None,
    ) -> None:
        self.stack = stack
        self.cfg: Config = stack.config
        self.local = local
        self.remote = remote
        self.conn = f"{local[0]}:{local[1]}>{remote[0]}:{remote[1]}"
        self.options = options.copy() if options is not None else TcbOptions.from_config(self.cfg)
        self._tracer = stack.tracer
        self._now = 0
        self.state = State.CLOSED
        self.was_established = False  # reached ESTABLISHED at some point (connect() succeeded)
        self.error: int | None = None
        self.binding: Binding | None = None
        self.listener: Listener | None = None
        # --- send sequence space (absolute) ---
        self.iss = 0
        self.opened = False              # an ISS was chosen (SYN sent or SYN-ACK planned)
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_max = 0
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.sbuf = SendBuffer(0, self.options.sndbuf)
        self.snd_sml = 0                 # end of the last small segment sent (Nagle)
        self.fin_queued = False          # user asked for FIN (close/shutdown(SHUT_WR))
        self.orphan = False              # close() called: no user any more
        # --- receive sequence space (absolute) ---
        self.irs: int | None = None
        self.rcv_nxt = 0
        self.rcv_adv = 0                 # right edge of the window we advertised
        self.rbuf = bytearray()
        self.ooo = Reassembly()
        self.peer_fin: int | None = None  # absolute seq of the peer's FIN once seen
        self.fin_rcvd = False
        self.rd_shutdown = False
        # --- negotiated options ---
        self.peer_mss = self.cfg.default_peer_mss
        self.smss = min(self.peer_mss, self.options.mss)
        self.ws_ok = False
        self.snd_wscale = 0              # shift for windows the peer sends
        self.rcv_wscale = self._our_wscale() if self.options.window_scaling else 0
        self.sack_ok = False
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_recent_set = False
        self.last_ack_sent = 0
        # --- ACK generation ---
        self.ack_now = False
        # --- RTT, congestion ---
        self.rtt = RttEstimator(self.cfg.rto_initial, self.cfg.rto_min, self.cfg.rto_max)
        self.rtt_seq: int | None = None
        self.rtt_time = 0
        self.cc = NewReno(self.smss, self.cfg.initial_cwnd_segments)
        self.sb = Scoreboard()
        self.dupacks = 0
        self.rtx_pending = False         # NewReno: retransmit snd_una now
        self.rtx_next = 0                # SACK recovery: next hole to retransmit from
        self.retransmits = 0             # consecutive timeouts for the current snd_una
        self.total_retrans = 0
        self.persist_backoff = 0
        self.persist_probes = 0          # probes since the window was last open (tcpi_probes)
        self.keepalive_out = 0
        self._rto_episode = False
        self.timers = Timers(self._trace_timer if self._tracer is not None else None)

    # ------------------------------------------------------------------ helpers
    def _our_wscale(self) -> int:
        s = 0
        while (self.options.rcvbuf >> s) > 0xFFFF and s < 14:
            s += 1
        return s

    def _trace(self, now: int, ev: str, **fields: Any) -> None:
        tr = self._tracer
        if tr is not None:
            d = {"t": now, "ev": ev, "conn": self.conn}
            d.update(fields)
            tr(d)

    def _trace_timer(self, name: str, action: str, at: int) -> None:
        now = self.stack._now
        self._trace(now, "timer", name=name, action=action, at=at)

    def rel_seq(self, seq32: int) -> int:
        return (seq32 - self.iss) & MASK

    def rel_ack(self, ack32: int) -> int | None:
        return None if self.irs is None else (ack32 - self.irs) & MASK

    # ------------------------------------------------------------------ state
    def _set_state(self, new: State, reason: str, now: int) -> None:
        """The one method that changes state (traced as {ev: "state"})."""
        old = self.state
        if old is new:
            return
        self.state = new
        if new is State.ESTABLISHED:
            self.was_established = True
        self._trace(now, "state", old=old.name, new=new.name, reason=reason)
        if new is State.CLOSED:
            self.timers.cancel_all()
            self.stack._tcb_closed(self)
        elif new is State.TIME_WAIT:
            for name in ("rtx", "persist", "delack", "keepalive", "fin_wait_2"):
                self.timers.cancel(name)
            d = self.cfg.time_wait_duration
            if d <= 0:
                # Ablation: no TIME_WAIT at all (still ACK the FIN that brought us here).
                self._output(now)
                self._set_state(State.CLOSED, "time-wait disabled", now)
            else:
                self.timers.set("time_wait", now + d)
        elif new is State.FIN_WAIT_2 and self.orphan:
            self.timers.set("fin_wait_2", now + self.cfg.fin_timeout)
        elif new is State.ESTABLISHED:
            if self.options.keepalive:
                self.timers.set("keepalive", now + self.options.keepalive_time)
            if self.listener is not None:
                self.listener._established(self)

    def _fail(self, err: int | None, reason: str, now: int) -> None:
        if err is not None:
            self.error = err
            name = errno.errorcode.get(err, str(err))
            self._trace(now, "error", errno=err, message=f"{name}: {reason}")
        self._set_state(State.CLOSED, reason, now)

    # ------------------------------------------------------------------ properties
    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def readable(self) -> int:
        return len(self.rbuf)

    @property
    def eof(self) -> bool:
        return (self.fin_rcvd or self.rd_shutdown or self.error is not None) and not self.rbuf

    @property
    def send_space(self) -> int:
        self.sbuf.limit = self.options.sndbuf
        return self.sbuf.free

    def info(self) -> dict:
        return {
            "state": self.state.name,
            "rto": self.rtt.rto,
            "srtt": self.rtt.srtt,
            "rttvar": self.rtt.rttvar,
            "cwnd": self.cc.cwnd,
            "ssthresh": self.cc.ssthresh,
            "retransmits": self.retransmits,
            "total_retrans": self.total_retrans,
            "probes": self.persist_probes,
            "snd_una": self.snd_una & MASK,
            "snd_nxt": self.snd_nxt & MASK,
            "snd_max": self.snd_max & MASK,
            "rcv_nxt": self.rcv_nxt & MASK,
            "snd_wnd": self.snd_wnd,
            "rcv_wnd": max(0, self.rcv_adv - self.rcv_nxt),
            "mss": self.smss,
            "peer_mss": self.peer_mss,
            "iss": self.iss,
            "irs": self.irs,
            "snd_wscale": self.snd_wscale,
            "rcv_wscale": self.rcv_wscale if self.ws_ok else 0,
            "sack": self.sack_ok,
            "timestamps": self.ts_ok,
            "in_recovery": self.cc.in_recovery,
            "unacked": self.snd_max - self.snd_una,
            "send_queue": len(self.sbuf),
            "recv_queue": len(self.rbuf),
            "error": self.error,
        }

    def poll_at(self) -> int | None:
        return self.timers.next_deadline()

    # ------------------------------------------------------------------ opens
    def _choose_iss(self, now: int) -> int:
        """RFC 9293 3.4.1 / RFC 6528: the injected ISN generator, masked to 32 bits."""
        return self.stack._isn(self.local[0], self.local[1], self.remote[0], self.remote[1],
                               now) & MASK

    def _open_active(self, now: int) -> None:
        """RFC 9293 3.10.1 OPEN call, active: select ISS, send SYN, enter SYN-SENT."""
        self.iss = self._choose_iss(now)
        self.snd_una = self.snd_nxt = self.snd_max = self.iss
        self.opened = True
        self.sbuf.rebase(self.iss + 1)
        self._set_state(State.SYN_SENT, "active open", now)
        self._output(now)

    # ------------------------------------------------------------------ user calls
    def send(self, data: bytes, now: int) -> int:
        """Queue data; returns bytes accepted (0 when the buffer is full)."""
        self.stack._now = now
        st = self.state
        if self.error is not None and st is State.CLOSED:
            raise OSError(self.error, f"send: connection failed ({errno.errorcode[self.error]})")
        if self.fin_queued or st in FIN_STATES or st is State.CLOSED and self.opened:
            raise OSError(errno.EPIPE,
                          "send: the sending side was shut down; open a new connection")
        if st in (State.CLOSED, State.LISTEN):
            raise OSError(errno.ENOTCONN, "send: not connected; call connect() first")
        self.sbuf.limit = self.options.sndbuf  # SO_SNDBUF may change at any time
        n = self.sbuf.write(data)
        if n and st not in (State.SYN_SENT, State.SYN_RECEIVED):
            self._output(now)
        return n

    def recv(self, n: int, now: int) -> bytes:
        """Up to n bytes of in-order data; b"" when nothing is ready."""
        self.stack._now = now
        if self.state in (State.LISTEN,) or (self.state is State.CLOSED and not self.opened):
            raise OSError(errno.ENOTCONN, "recv: not connected; call connect() or accept() first")
        if n <= 0 or not self.rbuf or self.rd_shutdown:
            return b""
        out = bytes(self.rbuf[:n])
        del self.rbuf[:n]
        if self.state in SYNCHRONIZED and self.state is not State.TIME_WAIT and not self.fin_rcvd:
            # Window update when the window opened enough (RFC 1122 4.2.3.3 receiver SWS).
            free = self.options.rcvbuf - len(self.rbuf)
            cur = max(0, self.rcv_adv - self.rcv_nxt)
            if free - cur >= min(self.options.rcvbuf // 2, 2 * self.smss):
                self.ack_now = True
                self._output(now)
        return out

    def shutdown(self, how: int, now: int) -> None:
        """SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2."""
        self.stack._now = now
        if how not in (0, 1, 2):
            raise OSError(errno.EINVAL,
                          "shutdown: how must be SHUT_RD (0), SHUT_WR (1) or SHUT_RDWR (2)")
        if self.state in (State.CLOSED, State.LISTEN, State.SYN_SENT):
            if self.state is State.SYN_SENT:
                self._set_state(State.CLOSED, "shutdown in SYN_SENT", now)
                return
            raise OSError(errno.ENOTCONN, "shutdown: not connected")
        if how in (0, 2):
            self.rd_shutdown = True
        if how in (1, 2):
            self._queue_fin(now)

    def _queue_fin(self, now: int) -> None:
        """RFC 9293 3.10.4 CLOSE: queue a FIN after the data; state changes now."""
        if self.fin_queued:
            return
        st = self.state
        self.fin_queued = True
        if st in (State.ESTABLISHED, State.SYN_RECEIVED):
            self._set_state(State.FIN_WAIT_1, "close", now)
        elif st is State.CLOSE_WAIT:
            self._set_state(State.LAST_ACK, "close", now)
        self._output(now)

    def close(self, now: int) -> None:
        """Full close: FIN after queued data, or RST when unread data is left (as Linux)."""
        self.stack._now = now
        st = self.state
        self.orphan = True
        if st is State.CLOSED:
            return
        if st in (State.SYN_SENT, State.LISTEN):
            self._set_state(State.CLOSED, "close", now)
            return
        if self.rbuf or self.ooo:
            # RFC 2525 2.17 / Linux: data the user never read -> RST, not FIN.
            self.rbuf.clear()
            self._send_rst_here(now)
            self._set_state(State.CLOSED, "close with unread data", now)
            return
        if self.state is State.FIN_WAIT_2:
            self.timers.set("fin_wait_2", now + self.cfg.fin_timeout)
        self.rd_shutdown = True
        self._queue_fin(now)

    def abort(self, now: int) -> None:
        """RFC 9293 3.10.5 ABORT: RST in synchronized states, then CLOSED."""
        self.stack._now = now
        st = self.state
        if st is State.CLOSED:
            return
        if st in SYNCHRONIZED and st is not State.TIME_WAIT:
            self._send_rst_here(now)
        self.orphan = True
        self._set_state(State.CLOSED, "abort", now)

    # ------------------------------------------------------------------ timers
    def on_timer(self, now: int) -> None:
        self.stack._now = now
        for name in self.timers.pop_expired(now):
            if self.state is State.CLOSED:
                return
            getattr(self, "_timer_" + name)(now)

    def _timer_rtx(self, now: int) -> None:
        """RFC 6298 5.4-5.6: retransmit the earliest unacknowledged segment, back off."""
        st = self.state
        if st is State.SYN_SENT:
            limit = self.cfg.syn_retries
        elif st is State.SYN_RECEIVED and self.snd_una == self.iss:
            limit = self.cfg.synack_retries
        else:
            limit = self.cfg.retries2
        if self.snd_nxt <= self.snd_una and self.snd_max <= self.snd_una:
            return
        if self.retransmits >= limit:
            self._fail(errno.ETIMEDOUT, "retransmission timeout", now)
            return
        self.retransmits += 1
        self.rtt.back_off()
        self._trace(now, "rto", rto=self.rtt.rto, srtt=self.rtt.srtt, rttvar=self.rtt.rttvar)
        self.rtt_seq = None  # Karn: never time a retransmitted segment
        if self.snd_una == self.iss:
            # SYN or SYN-ACK not acknowledged yet.
            self.snd_nxt = self.iss
        else:
            flight = self.snd_max - self.snd_una
            self.cc.on_timeout(flight, first=not self._rto_episode)
            self.cc.recover = self.snd_max  # RFC 6582 3.2 step 1 after a timeout
            self._rto_episode = True
            self.sb.clear()
            self.dupacks = 0
            self.rtx_pending = False
            self.snd_nxt = self.snd_una
        self._output(now, rto=True)

    def _timer_persist(self, now: int) -> None:
        """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: probe a zero window, back off."""
        if self.state not in SYNCHRONIZED or self.state is State.TIME_WAIT:
            return
        if self.snd_wnd == 0:
            if self.orphan and self.persist_probes >= self.cfg.orphan_retries:
                # RFC 1122 4.2.2.17 lets the sender keep probing forever only while a user
                # owns the connection; an orphan gives up (Linux tcp_probe_timer with
                # tcp_orphan_retries). The RST carries the one sequence number a receiver
                # with a zero window accepts: SND.UNA (Linux tcp_acceptable_seq).
                self._send_rst_here(now, seq=self.snd_una)
                self._fail(errno.ETIMEDOUT, "orphan-persist-limit", now)
                return
            self._send_probe(now)
            self.persist_probes += 1
            self.persist_backoff += 1
            self._arm_persist(now)
        else:
            # RFC 1122 4.2.3.4 override: send what the (small) window allows.
            self._output(now, force=True)

    def _timer_delack(self, now: int) -> None:
        self.ack_now = True
        self._output(now)

    def _timer_keepalive(self, now: int) -> None:
        """RFC 1122 4.2.3.6 keep-alive probes; ETIMEDOUT after keepalive_probes unanswered."""
        if self.state not in SYNCHRONIZED or self.state is State.TIME_WAIT:
            return
        if self.keepalive_out >= self.options.keepalive_probes:
            self._send_rst_here(now)
            self._fail(errno.ETIMEDOUT, "keepalive timeout", now)
            return
        self.keepalive_out += 1
        self._send_probe(now)
        self.timers.set("keepalive", now + self.options.keepalive_intvl)

    def _timer_time_wait(self, now: int) -> None:
        self._set_state(State.CLOSED, "time-wait expired", now)

    def _timer_fin_wait_2(self, now: int) -> None:
        if self.state is State.FIN_WAIT_2:
            self._set_state(State.CLOSED, "fin_wait_2 timeout", now)

    def _arm_persist(self, now: int) -> None:
        base = max(self.cfg.persist_min, min(self.rtt.rto, self.cfg.persist_max))
        self.timers.set("persist", now + min(base << self.persist_backoff, self.cfg.persist_max))

    def _arm_keepalive(self, now: int) -> None:
        if self.options.keepalive and self.state in (State.ESTABLISHED, State.CLOSE_WAIT,
                                                     State.FIN_WAIT_1, State.FIN_WAIT_2):
            self.keepalive_out = 0
            self.timers.set("keepalive", now + self.options.keepalive_time)

    def options_changed(self, now: int | None = None) -> None:
        """Apply changed ``tcb.options`` at once (SO_SNDBUF, TCP_NODELAY pushes pending
        small segments as Linux does, SO_KEEPALIVE)."""
        now = self.stack._now if now is None else now
        self.stack._now = now
        self.sbuf.limit = max(self.options.sndbuf, len(self.sbuf))
        if self.options.keepalive and "keepalive" not in self.timers.deadlines:
            self._arm_keepalive(now)
        elif not self.options.keepalive and "keepalive" in self.timers.deadlines:
            self.timers.cancel("keepalive")
        if self.state in SYNCHRONIZED and self.snd_una > self.iss:
            self._output(now)

    def set_keepalive(self, on: bool, now: int) -> None:
        """Turn keep-alive on/off after the connection is open (SO_KEEPALIVE)."""
        self.stack._now = now
        self.options.keepalive = on
        if on:
            self._arm_keepalive(now)
        else:
            self.timers.cancel("keepalive")

    def __repr__(self) -> str:
        return f"<Tcb {self.conn} {self.state.name}>"


__all__ = ["State", "Tcb", "TcbOptions", "Segment", "Flags", "unwrap", "SYNCHRONIZED"]
