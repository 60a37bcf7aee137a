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

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .buffers import Reassembly, ReceiveBuffer, SendBuffer
from .buftune import TcbBufTune
from .config import Config
from .congestion import INFINITE_SSTHRESH
from .recovery import Recovery
from .rtt import RttEstimator
from .segment import Flags, Segment
from .seq import MASK, unwrap
from .states import (
    ALLOWED,
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN_STATES,
    FIN_WAIT_1,
    FIN_WAIT_2,
    KEEPALIVE_STATES,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    SYNCHRONIZED,
    TIME_WAIT,
    State,
    TransitionError,
)
from .tcb_info import TcbInfo
from .tcb_input import TcbInput
from .tcb_output import TcbOutput
from .timers import Timers
from .urgent import Urgent

if TYPE_CHECKING:
    from .stack import Binding, Listener, Stack

#: Config fields that are per-connection options (socket options) as well.
PER_CONNECTION = ("nodelay", "keepalive", "keepalive_time", "keepalive_intvl",
                  "keepalive_probes", "rcvbuf", "sndbuf", "mss", "window_scaling", "sack",
                  "timestamps", "congestion")


def our_wscale(rcvbuf: int) -> int:
    """The window scale that lets a 16-bit window field cover ``rcvbuf`` (RFC 7323 2.3)."""
    # the smallest s with rcvbuf >> s <= 0xFFFF, at most 14
    return min(14, max(0, rcvbuf.bit_length() - 16))


class TcbOptions:
    """Per-connection options (socket options): the :data:`PER_CONNECTION` fields of a
    Config, which gives their defaults; keywords override them. ``rcvbuf_locked`` says the
    user set the receive buffer (SO_RCVBUF): as in Linux, it is not autotuned, and when set
    before the connection opened the window scale covers that buffer instead of the largest
    one it could grow to. ``sndbuf_locked``: SO_SNDBUF was set, the send buffer is not
    autotuned (buftune.py)."""

    __slots__ = (*PER_CONNECTION, "rcvbuf_locked", "sndbuf_locked")

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else Config()
        self.rcvbuf_locked = bool(overrides.pop("rcvbuf_locked", False))
        self.sndbuf_locked = bool(overrides.pop("sndbuf_locked", False))
        for name in PER_CONNECTION:
            setattr(self, name, overrides.pop(name) if name in overrides else getattr(cfg, name))
        if overrides:
            raise TypeError(f"unknown connection options {sorted(overrides)}; "
                            f"valid: {', '.join(PER_CONNECTION)}")

    @classmethod
    def from_config(cls, cfg: Config) -> TcbOptions:
        """The Config's defaults (what ``cls(cfg)`` gives, without its keyword handling:
        every socket's connect builds one)."""
        new = _copy_fields(cfg, object.__new__(cls))
        new.rcvbuf_locked = new.sndbuf_locked = False
        return new

    def copy(self) -> TcbOptions:
        # field by field: going through __init__ would build a whole Config for defaults
        new = _copy_fields(self, object.__new__(TcbOptions))
        new.rcvbuf_locked = self.rcvbuf_locked
        new.sndbuf_locked = self.sndbuf_locked
        return new

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TcbOptions) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        return "TcbOptions(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"


def _fields_copier(names: tuple[str, ...]) -> Callable[[Any, Any], Any]:
    """``copy(src, dst)``: dst.name = src.name for each name, as straight-line code (every
    connect copies the per-connection fields twice; a getattr/setattr loop cost ~200
    bytecodes each time, this ~60)."""
    body = "".join(f"    dst.{n} = src.{n}\n" for n in names)
    scope: dict[str, Any] = {}
    exec(f"def copy(src, dst):\n{body}    return dst\n", scope)   # noqa: S102 - names above
    return scope["copy"]


_copy_fields = _fields_copier(PER_CONNECTION)


class _TimeWaitEmpty:
    """The empty structures TIME-WAIT connections share instead of their own (see
    Tcb._enter_time_wait). Nothing writes to them: TIME-WAIT accepts no data, processes no
    ACK and runs no timer but its own; tests/core/test_time_wait_memory.py checks that they
    stay as they were made."""

    def __init__(self) -> None:
        cfg = Config()
        self.out_of_order = Reassembly()
        self.rbuf = ReceiveBuffer()
        self.recovery = Recovery(cfg.mss, cfg.initial_cwnd_segments, cfg.congestion)
        self.rtt = RttEstimator(cfg.rto_initial, cfg.rto_min, cfg.rto_max)
        self.urgent = Urgent()
        self._fresh = self._values()

    def _values(self) -> tuple:
        rec, rtt, u = self.recovery, self.rtt, self.urgent
        return (rec.ca, rec.dupacks, rec.loss, rec.rack, rec.reordering, rec.undos,
                rec.dsack_dups, rec.cc.cwnd, rec.cc.ssthresh, rec.cc.in_recovery,
                len(rec.scoreboard), rtt.srtt, rtt.rttvar, rtt.backoff, rtt.base_rto,
                u.snd_up, u.rcv_seq, u.byte, u.inline)

    def empty(self) -> bool:
        """Nothing was written to any of them (tests)."""
        return (not self.out_of_order and not self.out_of_order.nbytes and not self.rbuf
                and self._values() == self._fresh)


TIME_WAIT_EMPTY = _TimeWaitEmpty()


class Tcb(TcbInput, TcbOutput, TcbBufTune, TcbInfo):
    """One connection. Created by Stack.connect() or by a Listener; see docs/contracts.md.

    Slots, not a __dict__: a connection's fields cost ~0.5 kB instead of ~2.5 kB, which is
    what thousands of idle or TIME-WAIT connections are made of."""

    __slots__ = ("ack_now", "binding", "bytes_acked", "bytes_retrans", "cc", "cc_last", "cfg",
                 "delivered_ce", "ecn_ok", "ecn_seen", "ece_pending", "cwr_pending",
                 "retrans_out", "conn", "dsack_block", "error", "fin_queued",
                 "fin_rcvd", "irs", "iss", "iss_chosen", "keepalive_out", "last_ack_sent",
                 "last_data_at", "pingpong", "quick",
                 "listener", "local", "max_snd_wnd", "nagle_end", "options", "orphan",
                 "out_of_order", "peer_fin", "peer_mss", "persist_backoff", "persist_probes",
                 "queued_at", "rbuf", "rcv_adv", "rcv_nxt", "rcv_wscale", "rd_shutdown",
                 "rcv_rtt", "rcv_rtt_mark", "rcv_rtt_at", "rcvq_space", "rcvq_seq", "rcvq_at",
                 "snd_nospace",
                 "recovery", "remote", "retransmits", "rtt", "rtt_seq", "rtt_time", "sack_ok",
                 "send_buffer", "smss", "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2",
                 "snd_wnd", "snd_wscale", "stack", "state", "timers", "total_retrans", "_tracer",
                 "ts_ok", "ts_recent", "ts_recent_set", "urgent", "was_established", "watcher",
                 "ws_ok", "final_cc")

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
        self.options = options.copy() if options is not None else TcbOptions(self.cfg)
        self._tracer = stack.tracer
        self.state = CLOSED
        self.was_established = False  # reached ESTABLISHED at some point (connect() succeeded)
        self.error: int | None = None
        self.binding: Binding | None = None
        self.listener: Listener | None = None
        self.queued_at: int | None = None  # the stack's TimerQueue entry (see timers.py)
        self.watcher: Any = None         # runtime's readiness hook: watcher(tcb) on changes
        # --- send sequence space (absolute) ---
        self.iss = 0
        self.iss_chosen = False          # an ISS was chosen (SYN sent or SYN-ACK planned)
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_max = 0
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.send_buffer = SendBuffer(0, self.options.sndbuf)
        self.nagle_end = 0               # end of the last small segment sent (Nagle)
        self.fin_queued = False          # user asked for FIN (close/shutdown(SHUT_WR))
        self.orphan = False              # close() called: no user any more
        # --- receive sequence space (absolute) ---
        self.irs: int | None = None
        self.rcv_nxt = 0
        self.rcv_adv = 0                 # right edge of the window we advertised
        self.rbuf = ReceiveBuffer()
        self.out_of_order = Reassembly()
        self.peer_fin: int | None = None  # absolute seq of the peer's FIN once seen
        self.fin_rcvd = False
        self.rd_shutdown = False
        self.urgent = Urgent()            # urgent data both ways (urgent.py)
        # --- buffer autotuning (buftune.py) ---
        self.rcv_rtt = 0                  # the receiver's RTT estimate (us), 0 = none yet
        self.rcv_rtt_mark: int | None = None   # last TSecr sampled / end of the timed window
        self.rcv_rtt_at = 0
        self.rcvq_space = 0               # bytes the application read in the last RTT
        self.rcvq_seq = 0                 # where the current measure started (read position)
        self.rcvq_at: int | None = None   # when it started; None before the first read
        self.snd_nospace = False          # a send found the buffer full (Linux SOCK_NOSPACE)
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
        self.last_data_at: int | None = None   # when in-order data last arrived
        self.quick = 0                          # quick ACKs left (Config.quickack)
        self.pingpong = False                   # interactive: ACKs ride on replies
        # --- ACK generation ---
        self.ack_now = False
        self.dsack_block: tuple[int, int] | None = None  # duplicate range to report (RFC 2883)
        # --- RTT, loss recovery, congestion ---
        self.rtt = RttEstimator(self.cfg.rto_initial, self.cfg.rto_min, self.cfg.rto_max)
        self.rtt_seq: int | None = None
        self.rtt_time = 0
        self.recovery = Recovery(self.smss, self.cfg.initial_cwnd_segments,
                                 self.options.congestion, self.cfg.prr, self.cfg.rack)
        self.cc = self.recovery.cc
        self.cc_last: tuple | None = None   # the last {ev: "cc"} values and time (trace)
        self.bytes_acked = 0             # tcpi_bytes_acked
        self.bytes_retrans = 0           # tcpi_bytes_retrans
        self.retrans_out = 0             # retransmitted bytes not yet acknowledged (approx.)
        # --- ECN (RFC 3168) ---
        self.ecn_ok = False              # negotiated: our data carries ECT(0)
        self.ecn_seen = False            # an ECT or CE packet arrived (tcpi_options ECN_SEEN)
        self.ece_pending = False         # CE seen: set ECE on ACKs until the peer's CWR
        self.cwr_pending = False         # cwnd reduced for an ECE: CWR on the next data
        self.delivered_ce = 0            # segments that arrived CE-marked
        self.retransmits = 0             # consecutive timeouts for the current snd_una
        self.total_retrans = 0
        self.persist_backoff = 0
        self.persist_probes = 0          # probes since the window was last open (tcpi_probes)
        self.keepalive_out = 0
        self.final_cc: tuple | None = None   # an orphan's congestion and RTT values in TIME-WAIT
        self.timers = Timers(self._trace_timer if self._tracer is not None else None,
                             stack.timer_queue, self)

    # ------------------------------------------------------------------ helpers
    def _our_wscale(self) -> int:
        """RFC 7323 2.3: a shift that covers the largest window we may advertise. As Linux
        (tcp_select_initial_window): the largest buffer the connection could get
        (``rmem_max``), unless the user fixed the buffer before opening."""
        o = self.options
        return our_wscale(o.rcvbuf if o.rcvbuf_locked else max(o.rcvbuf, self.cfg.rmem_max))

    def _trace(self, now: int, ev: str, **fields: Any) -> None:
        tr = self._tracer
        if tr is not None:
            d = {"t": now, "ev": ev, "conn": self.conn}
            d.update(fields)
            tr(d)

    def _trace_timer(self, name: str, action: str, at: int, now: int) -> None:
        self._trace(now, "timer", name=name, action=action, at=at)

    def _trace_cc(self, now: int) -> None:
        """{ev: "cc"} when a value changed since the last one: at most one per ACK (the
        caller), and at most one per ms unless the ca state changed. Only called when a
        tracer is attached."""
        rtt = self.rtt
        rec = self.recovery
        cc = rec.cc
        ca = rec.ca
        vals = (cc.cwnd, cc.ssthresh, rtt.srtt, rtt.rttvar, rtt.rto,
                rec.pipe(self.snd_una, self.snd_nxt, self.snd_max), ca, cc.name)
        last = self.cc_last
        if last is not None:
            if last[0] == vals:
                return
            if last[0][6] == ca and now - last[1] < 1000:
                return
        self.cc_last = (vals, now)
        self._trace(now, "cc", cwnd=vals[0],
                    ssthresh=None if vals[1] >= INFINITE_SSTHRESH else vals[1],
                    srtt=vals[2], rttvar=vals[3], rto=vals[4], pipe=vals[5], ca=ca,
                    algo=vals[7])

    def _changed(self) -> None:
        """Tell the runtime (readiness of the socket above) that something a user waits
        for may have changed."""
        if self.watcher is not None:
            self.stack.changed.add(self)

    # ------------------------------------------------------------------ state
    def _set_state(self, new: State, reason: str, now: int) -> None:
        """The one method that changes state (traced as {ev: "state"}); it refuses a change
        that is not in states.TRANSITIONS (a core bug: raised in strict mode, counted and
        traced otherwise)."""
        old = self.state
        if old is new:
            return
        if (old, new) not in ALLOWED:
            self.stack.counters["bad_transitions"] += 1
            self._trace(now, "bug", message=f"refused transition {old.name} -> {new.name}",
                        reason=reason)
            if self.stack.strict:
                raise TransitionError(f"{self.conn}: {old.name} -> {new.name} ({reason}) "
                                      "is not in states.TRANSITIONS")
            return
        if new is ESTABLISHED:
            self.was_established = True  # first: a reader without the lock sees the state
        self.state = new                 # only with what goes with it (socket.py _wait)
        if self.watcher is not None:     # _changed()
            self.stack.changed.add(self)
        if self._tracer is not None:
            self._trace(now, "state", old=old.name, new=new.name, reason=reason)
        if new is CLOSED:
            self.timers.cancel_all(now)
            self.stack._tcb_closed(self)
        elif new is TIME_WAIT:
            self._enter_time_wait(now)
        elif new is FIN_WAIT_2 and self.orphan:
            self.timers.set("fin_wait_2", now + self.cfg.fin_timeout, now)
        elif new is ESTABLISHED:
            if self.options.keepalive:
                self.timers.set("keepalive", now + self.options.keepalive_time, now)
            if self.listener is not None:
                self.listener._established(self)

    def _fail(self, err: int | None, reason: str, now: int) -> None:
        if err is not None:
            self.error = err
            name = errno.errorcode.get(err, str(err))
            self._trace(now, "error", errno=err, message=f"{name}: {reason}")
        self._set_state(CLOSED, reason, now)

    # ------------------------------------------------------------------ TIME_WAIT
    # Everything TIME-WAIT does is here: entering it, its timer, and what arrives in it
    # (a retransmitted FIN, RST, a new SYN: see _time_wait_segment).
    def _enter_time_wait(self, now: int) -> None:
        """RFC 9293 3.10.7.4 eighth: start the 2 MSL timer, turn off the others, and give
        back the buffers (a TIME-WAIT connection only remembers sequence numbers, as Linux's
        timewait sockets).

        TIME-WAIT takes no data and processes no ACK (_check_ack), so what held data or
        loss-recovery state is given back: the send buffer and the out-of-order queue, and
        once no socket holds the connection (orphan: its reads are over, its receive buffer
        empty) the receive buffer and the loss recovery, congestion, RTT and urgent-data
        state too (TCP_INFO's values of those kept as one tuple, ``final_cc``). They are
        replaced by shared empty ones that TIME-WAIT only reads (the window it advertises,
        the urgent pointer it does not send), so thousands of TIME-WAIT connections cost
        less memory and the garbage collector has far fewer objects to walk."""
        timers = self.timers
        running = timers.deadlines
        if running:
            for name in [n for n in running if n != "time_wait"]:   # (all the others)
                timers.cancel(name, now)
        self.send_buffer = SendBuffer(self.send_buffer.end, 0)
        self.out_of_order = TIME_WAIT_EMPTY.out_of_order
        if self.orphan and not self.rbuf.size:
            # what TCP_INFO reports of the congestion and RTT state is kept as one tuple
            # (info() reads it); the objects go
            rec, rtt = self.recovery, self.rtt
            cc = rec.cc
            self.final_cc = (cc.cwnd, cc.ssthresh, cc.name, rec.ca, rec.reordering,
                             rec.dsack_dups, rec.undos, rtt.rto, rtt.backoff, rtt.srtt,
                             rtt.rttvar, rtt.min_rtt)
            shared = TIME_WAIT_EMPTY
            self.rbuf = shared.rbuf
            self.recovery = shared.recovery
            self.cc = shared.recovery.cc
            self.rtt = shared.rtt
            self.urgent = shared.urgent
        d = self.cfg.time_wait_duration
        if d <= 0:
            # Ablation: no TIME_WAIT at all (still ACK the FIN that brought us here).
            self._output(now)
            self._set_state(CLOSED, "time-wait disabled", now)
        else:
            self.timers.set("time_wait", now + d, now)

    def _timer_time_wait(self, now: int) -> None:
        self._set_state(CLOSED, "time-wait expired", now)

    def _time_wait_fin(self, now: int) -> None:
        """RFC 9293 3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN: ACK it, restart 2 MSL."""
        self.timers.set("time_wait", now + self.cfg.time_wait_duration, now)
        self.ack_now = True

    def _time_wait_stray(self, seg: Segment, now: int) -> None:
        """An acceptable segment in TIME-WAIT that is not at RCV.NXT (a bare ACK there is
        simply taken): RFC 9293 expects only a retransmitted FIN here; as Linux
        (tcp_timewait_state_process) answer with an ACK, and restart 2 MSL if it acks."""
        if seg.flags & Flags.ACK:
            self.timers.set("time_wait", now + self.cfg.time_wait_duration, now)
        self.ack_now = True

    def _time_wait_rst(self, seg: Segment, now: int) -> None:
        """RST in TIME-WAIT: ignored with RFC 1337 protection, else CLOSED (3.10.7.4)."""
        if self.cfg.rfc1337:
            self._drop(seg, "rfc1337", now)
            return
        self._set_state(CLOSED, "RST in TIME_WAIT", now)

    def time_wait_accepts_syn(self, seg: Segment) -> bool:
        """RFC 9293 3.10.7.4 / RFC 6191 (Linux): a new SYN above the old sequence space may
        reopen a connection in TIME-WAIT (the stack checks there is a listener)."""
        return (self.state is TIME_WAIT
                and seg.flags & (Flags.SYN | Flags.ACK | Flags.RST) == Flags.SYN
                and unwrap(self.rcv_nxt, seg.seq) > self.rcv_nxt)

    # ------------------------------------------------------------------ properties
    @property
    def closed(self) -> bool:
        return self.state is CLOSED

    @property
    def readable(self) -> int:
        return len(self.rbuf)

    @property
    def eof(self) -> bool:
        return (self.fin_rcvd or self.rd_shutdown or self.error is not None) and not self.rbuf

    @property
    def send_space(self) -> int:
        """Room in the send buffer (SO_SNDBUF minus what is queued)."""
        return max(0, self.options.sndbuf - len(self.send_buffer))

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
        self.iss_chosen = True
        self.send_buffer.rebase(self.iss + 1)
        self._set_state(SYN_SENT, "active open", now)
        self._output(now)

    # ------------------------------------------------------------------ user calls
    def send(self, data: bytes, now: int) -> int:
        """Queue data and send what may go now; returns bytes accepted (0 when the buffer
        is full)."""
        st = self.state
        if self.error is not None and st is CLOSED:
            raise OSError(self.error, f"send: connection failed ({errno.errorcode[self.error]})")
        if self.fin_queued or st in FIN_STATES or st is CLOSED and self.iss_chosen:
            raise OSError(errno.EPIPE,
                          "send: the sending side was shut down; open a new connection")
        if st is CLOSED or st is LISTEN:
            raise OSError(errno.ENOTCONN, "send: not connected; call connect() first")
        sb = self.send_buffer
        sb.limit = self.options.sndbuf  # SO_SNDBUF may change at any time
        n = sb.write(data)
        if n < len(data):
            self.snd_nospace = True       # the buffer held the application back
        if n:
            self._changed()
        if n and st is not SYN_SENT and st is not SYN_RECEIVED:
            self._output(now)
        return n

    def recv(self, n: int, now: int) -> bytes:
        """Up to n bytes of in-order data; b"" when nothing is ready."""
        st = self.state
        if st is LISTEN or (st is CLOSED and not self.iss_chosen):
            raise OSError(errno.ENOTCONN, "recv: not connected; call connect() or accept() first")
        rbuf = self.rbuf
        if n <= 0 or not rbuf:
            return b""
        n = self.urgent.read_limit(n)     # a read stops at the urgent mark
        self.urgent.consumed(min(n, len(rbuf)))
        out = rbuf.take(n)
        self._changed()
        if st in SYNCHRONIZED and st is not TIME_WAIT and not self.fin_rcvd:
            self._rcv_space_adjust(now)   # the buffer may grow first (Linux's order)
            # A window update only when it matters (Linux tcp_cleanup_rbuf): what is left of
            # the advertised window is at most half the buffer and the new one at least
            # doubles it; and it opens by a non-silly amount (RFC 1122 4.2.3.3 receiver SWS),
            # which for a buffer more than half full means at least a 16th of it (Linux's
            # __tcp_select_window offers no window below that then): a program reading a
            # full 4 MB buffer 64 kB at a time sends an update every 256 kB, not every read.
            rcvbuf = self.options.rcvbuf
            free = rcvbuf - len(rbuf)
            cur = max(0, self.rcv_adv - self.rcv_nxt)
            if (2 * cur <= rcvbuf and free >= 2 * cur
                    and free - cur >= min(rcvbuf // 2, self.smss)
                    and (2 * free >= rcvbuf or free >= rcvbuf >> 4)):
                self.ack_now = True
                self._output(now)
        return out

    def recv_urgent(self, peek: bool = False) -> bytes:
        """recv(MSG_OOB): the peer's urgent byte (RFC 9293 3.8.5, as Linux tcp_recv_urg).
        EINVAL when there is none to read (or SO_OOBINLINE is on), EAGAIN when it is
        announced but has not arrived."""
        u = self.urgent
        if u.inline or u.taken or u.rcv_seq is None:
            raise OSError(errno.EINVAL, "recv(MSG_OOB): no urgent data to read (none came, "
                                        "it was read, or SO_OOBINLINE is on)")
        if u.byte is None:
            if self.fin_rcvd or self.state is CLOSED:
                return b""
            raise BlockingIOError(errno.EAGAIN, "recv(MSG_OOB): the urgent byte has not "
                                                "arrived yet")
        if not peek:
            u.taken = True
        return bytes([u.byte])

    def send_urgent(self, data: bytes, now: int) -> int:
        """send(MSG_OOB): queue ``data``; its last byte is urgent (the pointer points past
        it, as Linux)."""
        if not data:
            return 0
        u = self.urgent
        previous = u.snd_up
        u.snd_up = self.send_buffer.end + len(data)   # set before send() puts it on the wire
        try:
            n = self.send(data, now)
        except OSError:
            u.snd_up = previous
            raise
        u.snd_up = self.send_buffer.end if n else previous   # what was taken, if not all
        return n

    def shutdown(self, how: int, now: int) -> None:
        """SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2."""
        if how not in (0, 1, 2):
            raise OSError(errno.EINVAL,
                          "shutdown: how must be SHUT_RD (0), SHUT_WR (1) or SHUT_RDWR (2)")
        st = self.state
        if st is SYN_SENT:
            self._set_state(CLOSED, "shutdown in SYN_SENT", now)
            return
        if st is CLOSED or st is LISTEN:
            raise OSError(errno.ENOTCONN, "shutdown: not connected")
        if how in (0, 2):
            self.rd_shutdown = True
            self._changed()
        if how in (1, 2):
            self._queue_fin(now)

    def _queue_fin(self, now: int) -> None:
        """RFC 9293 3.10.4 CLOSE: queue a FIN after the data; state changes now."""
        if self.fin_queued:
            return
        st = self.state
        self.fin_queued = True
        if st is ESTABLISHED or st is SYN_RECEIVED:
            self._set_state(FIN_WAIT_1, "close", now)
        elif st is CLOSE_WAIT:
            self._set_state(LAST_ACK, "close", now)
        self._output(now)

    def close(self, now: int) -> None:
        """Full close: FIN after queued data, or RST when unread data is left (as Linux)."""
        st = self.state
        self.orphan = True
        if st is CLOSED:
            return
        if st is SYN_SENT or st is LISTEN:
            self._set_state(CLOSED, "close", now)
            return
        if self.rbuf or self.out_of_order:
            # RFC 2525 2.17 / Linux: data the user never read -> RST, not FIN.
            self.rbuf.clear()
            self._send_rst(now)
            self._set_state(CLOSED, "close with unread data", now)
            return
        if st is FIN_WAIT_2:
            self.timers.set("fin_wait_2", now + self.cfg.fin_timeout, now)
        self.rd_shutdown = True
        self._queue_fin(now)

    def abort(self, now: int) -> None:
        """RFC 9293 3.10.5 ABORT: RST in synchronized states, then CLOSED."""
        st = self.state
        if st is CLOSED:
            return
        if st in SYNCHRONIZED and st is not TIME_WAIT:
            self._send_rst(now)
        self.orphan = True
        self._set_state(CLOSED, "abort", now)

    # ------------------------------------------------------------------ timers
    def on_timer(self, now: int) -> None:
        for name in self.timers.pop_expired(now):
            if self.state is CLOSED:
                return
            getattr(self, "_timer_" + name)(now)

    def _timer_rtx(self, now: int) -> None:
        """RFC 6298 5.4-5.6: retransmit the earliest unacknowledged segment, back off."""
        st = self.state
        if st is SYN_SENT:
            limit = self.cfg.syn_retries
        elif st is SYN_RECEIVED and self.snd_una == self.iss:
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
        if self.snd_una != self.iss:
            self.recovery.on_timeout(self.snd_una, self.snd_max, now)
            if self._tracer is not None:
                self._trace_cc(now)
        # (else: our SYN or SYN-ACK is not acknowledged yet; send it again)
        self.snd_nxt = self.snd_una
        self._output(now, rto=True)

    def _timer_rack(self, now: int) -> None:
        """RFC 8985 6.3: the reordering window of a suspect segment has passed."""
        if self.recovery.rack is not None and self.snd_max > self.snd_una:
            self._rack_detect(now)
            self._output(now)
            if self._tracer is not None:
                self._trace_cc(now)

    def _timer_tlp(self, now: int) -> None:
        """RFC 8985 7.3: the probe timeout: send a tail loss probe. The PTO restarts at
        every ACK (7.2); instead of moving the timer each time, an early expiry moves it to
        the last ACK + PTO (cheaper on the hot path, the same effect)."""
        if self.state not in SYNCHRONIZED or self.state is TIME_WAIT:
            return
        rack = self.recovery.rack
        if rack is not None and rack.last_ack and self.snd_max > self.snd_una:
            due = rack.last_ack + self._pto()
            rtx = self.timers.deadlines.get("rtx")
            if due > now and (rtx is None or due < rtx):
                self.timers.set("tlp", due, now)
                return
        self._send_tlp(now)

    def _timer_persist(self, now: int) -> None:
        """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: probe a zero window, back off."""
        if self.state not in SYNCHRONIZED or self.state is TIME_WAIT:
            return
        if self.snd_wnd == 0:
            if self.orphan and self.persist_probes >= self.cfg.orphan_retries:
                # RFC 1122 4.2.2.17 lets the sender keep probing forever only while a user
                # owns the connection; an orphan gives up (Linux tcp_probe_timer with
                # tcp_orphan_retries). The RST carries the one sequence number a receiver
                # with a zero window accepts: SND.UNA (Linux tcp_acceptable_seq).
                self._send_rst(now, seq=self.snd_una)
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
        self.pingpong = False    # Linux: a delayed ACK that had to go alone ends pingpong
        self.ack_now = True
        self._output(now)

    def _timer_keepalive(self, now: int) -> None:
        """RFC 1122 4.2.3.6 keep-alive probes; ETIMEDOUT after keepalive_probes unanswered."""
        if self.state not in SYNCHRONIZED or self.state is TIME_WAIT:
            return
        if self.keepalive_out >= self.options.keepalive_probes:
            self._send_rst(now)
            self._fail(errno.ETIMEDOUT, "keepalive timeout", now)
            return
        self.keepalive_out += 1
        self._send_probe(now)
        self.timers.set("keepalive", now + self.options.keepalive_intvl, now)

    def _timer_fin_wait_2(self, now: int) -> None:
        if self.state is FIN_WAIT_2:
            self._set_state(CLOSED, "fin_wait_2 timeout", now)

    def _arm_persist(self, now: int) -> None:
        base = max(self.cfg.persist_min, min(self.rtt.rto, self.cfg.persist_max))
        self.timers.set("persist", now + min(base << self.persist_backoff, self.cfg.persist_max),
                        now)

    def _arm_keepalive(self, now: int) -> None:
        if self.options.keepalive and self.state in KEEPALIVE_STATES:
            self.keepalive_out = 0
            self.timers.set("keepalive", now + self.options.keepalive_time, now)

    def options_changed(self, now: int) -> None:
        """Apply changed ``tcb.options`` at once (SO_SNDBUF, TCP_NODELAY pushes pending
        small segments as Linux does, SO_KEEPALIVE, TCP_CONGESTION)."""
        if self.options.congestion != self.recovery.cc.name:
            self.recovery.set_algorithm(self.options.congestion)
            self.cc = self.recovery.cc
        self.send_buffer.limit = max(self.options.sndbuf, len(self.send_buffer))
        if self.options.keepalive and "keepalive" not in self.timers.deadlines:
            self._arm_keepalive(now)
        elif not self.options.keepalive and "keepalive" in self.timers.deadlines:
            self.timers.cancel("keepalive", now)
        if self.state in SYNCHRONIZED and self.snd_una > self.iss:
            self._output(now)
        self._changed()

    def __repr__(self) -> str:
        return f"<Tcb {self.conn} {self.state.name}>"


__all__ = ["State", "Tcb", "TcbOptions", "PER_CONNECTION", "Segment", "Flags", "unwrap",
           "SYNCHRONIZED"]
