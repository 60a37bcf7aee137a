"""The sans-IO stack: demultiplexing by 4-tuple, listeners (SYN queue + accept queue),
resets for segments that meet no connection (RFC 9293 3.10.7.1), ports and bindings, ISNs.

Inputs: ``on_packet(pkt, now)``, ``on_timer(now)`` and the user calls; outputs:
``take_packets()`` and ``poll_at()``. See docs/contracts.md.
"""

from __future__ import annotations

import collections
import errno
import random
from collections.abc import Callable
from typing import Any

from .config import SEC, Config
from .isn import IsnGenerator
from .ports import WILDCARDS, PortTable, canonical_ip, overlap
from .segment import ACK, FIN, RST, SYN, URG, Options, Packet, Segment, flags_str, new_packet
from .seq import MASK, add
from .states import CLOSED, LISTEN, TIME_WAIT
from .syncookies import TS_BITS, SynCookies, decode_ts_options, encode_ts_options
from .tcb import Tcb, TcbOptions, our_wscale
from .timers import TimerQueue
from .udp import UdpTable


def _canon(addr: str) -> str:
    try:
        return canonical_ip(addr)
    except ValueError:
        raise OSError(errno.EINVAL, f"{addr!r} is not an IPv4/IPv6 address") from None


class Binding:
    """A local (address, port) reserved by bind()."""

    def __init__(self, stack: Stack, addr: str, port: int, reuse: bool) -> None:
        self.stack = stack
        self.addr = addr
        self.port = port
        self.reuse = reuse
        self.listening = False
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.stack._ports.remove_binding(self)

    def __repr__(self) -> str:
        return f"<Binding {self.addr}:{self.port}{' reuse' if self.reuse else ''}>"


class Listener:
    """A passive open (RFC 9293 LISTEN). Children in SYN_RECEIVED wait in the SYN queue,
    established ones in the accept queue; both are bounded by the backlog."""

    def __init__(self, stack: Stack, binding: Binding, backlog: int,
                 options: TcbOptions | None = None) -> None:
        self.stack = stack
        self.binding = binding
        self.backlog = max(1, backlog)
        self.options = options
        self._syn: dict[Tcb, None] = {}       # the SYN queue, an insertion-ordered set
        self.accept_queue: collections.deque[Tcb] = collections.deque()
        self.closed = False
        self.watcher = None  # runtime's readiness hook (see Tcb.watcher)

    @property
    def addr(self) -> str:
        return self.binding.addr

    @property
    def port(self) -> int:
        return self.binding.port

    @property
    def syn_queue(self) -> list[Tcb]:
        """Children in SYN_RECEIVED, oldest first."""
        return list(self._syn)

    @property
    def pending(self) -> int:
        return len(self.accept_queue)

    def accept(self) -> Tcb | None:
        if self.closed:
            raise OSError(errno.EINVAL, "accept: the listener is closed")
        if self.accept_queue:
            t = self.accept_queue.popleft()
            t.listener = None
            return t
        return None

    def _has_room(self) -> bool:
        return len(self.accept_queue) < self.backlog

    def _established(self, tcb: Tcb) -> None:
        self._syn.pop(tcb, None)
        self.accept_queue.append(tcb)
        if self.watcher is not None:
            self.stack.changed.add(self)

    def _child_closed(self, tcb: Tcb) -> None:
        self._syn.pop(tcb, None)

    def on_segment(self, pkt: Packet, now: int) -> None:
        """RFC 9293 3.10.7.2 LISTEN."""
        seg = pkt.segment
        st = self.stack
        f = seg.flags
        if f & RST:
            st._drop(None, seg, "rst-to-listener", now, pkt)
            return
        if f & ACK:
            if not f & SYN and st.config.syncookies and self._cookie_ack(pkt, now):
                return
            st._reply_rst((pkt.dst, seg.dst_port), (pkt.src, seg.src_port), seg, now)
            st._drop(None, seg, "ack-to-listener", now, pkt)
            return
        if not f & SYN:
            st._drop(None, seg, "no-syn", now, pkt)
            return
        if f & FIN:
            # SYN+FIN (a scanner's probe): Linux discards it in LISTEN (tcp_rcv_state_process)
            st._drop(None, seg, "syn-fin", now, pkt)
            return
        if len(self.accept_queue) >= self.backlog:
            st._drop(None, seg, "backlog", now, pkt)  # Linux: drop the SYN, the peer retries
            return
        mode = st.config.syncookies
        if mode == 2 or (mode == 1 and len(self._syn) >= self.backlog):
            self._send_cookie(pkt, now)               # no state: a SYN flood costs nothing
            return
        if len(self._syn) >= self.backlog:
            st._drop(None, seg, "backlog", now, pkt)
            return
        child = Tcb(st, (pkt.dst, seg.dst_port), (pkt.src, seg.src_port), self.options)
        child.state = LISTEN   # born listening: its first transition is LISTEN -> SYN_RECEIVED
        child.listener = self
        st._add_tcb(child)
        self._syn[child] = None
        child._input_listen(seg, now)

    # ------------------------------------------------------------------ SYN cookies
    def _options(self) -> TcbOptions:
        return self.options if self.options is not None else TcbOptions(self.stack.config)

    def _send_cookie(self, pkt: Packet, now: int) -> None:
        """Answer the SYN with a SYN-ACK whose ISS is a cookie (syncookies.py), keep nothing.
        Window scale and SACK are offered only with timestamps, which carry them back."""
        st, seg, o = self.stack, pkt.segment, self._options()
        four = (pkt.dst, seg.dst_port, pkt.src, seg.src_port)
        peer = seg.options
        cookie, _mss = st.cookies().make(now, four, seg.seq, peer.mss or st.config.default_peer_mss)
        ts = None
        wscale = None
        sack = False
        if o.timestamps and peer.timestamps is not None:
            ws_peer = peer.wscale if o.window_scaling else None
            sack = bool(o.sack and peer.sack_permitted)
            bits = encode_ts_options(ws_peer, sack)
            ms = now // 1000
            val = (ms >> TS_BITS) << TS_BITS | bits
            if val > ms:             # never ahead of our clock: later TSvals must not be
                val -= 1 << TS_BITS  # older than this one (the peer's PAWS, RFC 7323 5)
            ts = (val & MASK, peer.timestamps[0])
            wscale = our_wscale(o.rcvbuf) if ws_peer is not None else None
        reply = Segment(seg.dst_port, seg.src_port, cookie, add(seg.seq, 1), SYN | ACK,
                        min(o.rcvbuf, 0xFFFF), Options(o.mss, wscale, sack, (), ts))
        st.counters["syncookies_sent"] += 1
        st._transmit(None, reply, now, pkt.dst, pkt.src)

    def _cookie_ack(self, pkt: Packet, now: int) -> bool:
        """The third segment of a cookie handshake: rebuild the child if the cookie checks
        (and the accept queue has room). False: not a valid cookie (the caller resets)."""
        st, seg = self.stack, pkt.segment
        four = (pkt.dst, seg.dst_port, pkt.src, seg.src_port)
        cookie = (seg.ack - 1) & MASK
        mss = st.cookies().check(now, four, (seg.seq - 1) & MASK, cookie)
        if mss is None:
            st.counters["syncookies_failed"] += 1
            return False
        if not self._has_room():
            st._drop(None, seg, "accept-queue-full", now, pkt)
            return True
        o = self._options()
        ws, sack = None, False
        ts = seg.options.timestamps
        if ts is not None and o.timestamps:
            ws, sack = decode_ts_options(ts[1])
            ws = ws if o.window_scaling else None
        st.counters["syncookies_recv"] += 1
        child = Tcb(st, (pkt.dst, seg.dst_port), (pkt.src, seg.src_port), self.options)
        if ws is None:
            child.rcv_wscale = 0
        child.state = LISTEN
        child.listener = self
        st._add_tcb(child)
        child._open_from_cookie(seg, now, cookie, mss, ws, sack and o.sack)
        return True

    def close(self, now: int, keep_binding: bool = False) -> None:
        """Stop listening; connections never accepted are reset. ``keep_binding``: the
        socket keeps its port (Linux's shutdown() of a listener), else it is released."""
        if self.closed:
            return
        self.closed = True
        for t in list(self._syn) + list(self.accept_queue):
            t.listener = None
            t.abort(now)
        self._syn.clear()
        self.accept_queue.clear()
        self.stack._listeners.pop((self.addr, self.port), None)
        self.stack._ports.unref(self.port)
        self.binding.listening = False
        if not keep_binding:
            self.binding.release()
        self.stack._trace_ev(now, "state", conn=f"{self.addr}:{self.port}>*:*",
                             old="LISTEN", new="CLOSED", reason="listener closed")


class Stack:
    """A sans-IO TCP stack; see docs/contracts.md for the full contract.

    ``strict``: a state change outside states.TRANSITIONS raises (tests) instead of being
    refused, counted and traced (production).
    """

    strict = False

    def __init__(
        self,
        config: Config | None = None,
        isn: Callable[[str, int, str, int, int], int] | None = None,
        rng: random.Random | None = None,
        tracer: Callable[[dict], None] | None = None,
    ) -> None:
        self.config = config if config is not None else Config()
        # every value in its documented range (ValueError, one line naming the field):
        # the command line checks its --config, the Python API gets the same check here
        self.config.validate()
        self.rng = rng if rng is not None else random.Random()
        self._isn = isn if isn is not None else IsnGenerator(self.rng)
        self.tracer = tracer
        self.counters: collections.Counter[str] = collections.Counter()
        self._tcbs: dict[tuple[str, int, str, int], Tcb] = {}
        self._listeners: dict[tuple[str, int], Listener] = {}
        self._ports = PortTable()
        self._out: list[Packet] = []
        self.timer_queue = TimerQueue()
        #: connections and listeners with a watcher whose user-visible state changed since
        #: the last notify_changed()
        self.changed: set[Any] = set()
        #: connections whose output waits for the end of a batch of input (on_packets)
        self._pending_output: dict[Tcb, None] | None = None
        self._challenge_window = -1
        self._challenge_count = 0
        #: largest TCP payload the link takes in one segment (segmentation offload), or
        #: None: one MSS per segment
        self.max_payload: int | None = None
        self._cookies: SynCookies | None = None
        #: UDP endpoints and ICMP error handling (core/udp.py); its datagrams and ICMP
        #: errors join the TCP packets in take_packets()
        self.udp = UdpTable(self)

    def cookies(self) -> SynCookies:
        """The SYN cookie keys, made on first use (so an unused feature draws no random
        numbers from a seeded rng)."""
        if self._cookies is None:
            self._cookies = SynCookies(self.rng)
        return self._cookies

    # ------------------------------------------------------------------ tracing
    def _trace_ev(self, now: int, ev: str, **fields: Any) -> None:
        if self.tracer is not None:
            d = {"t": now, "ev": ev}
            d.update(fields)
            self.tracer(d)

    def _seg_fields(self, tcb: Tcb | None, src: str, dst: str, seg: Segment, out: bool) -> dict:
        rseq = rack = None
        if tcb is not None:
            if out:
                rseq = (seg.seq - tcb.iss) & MASK if tcb.iss_chosen else None
                has_ack = tcb.irs is not None and seg.flags & ACK
                rack = (seg.ack - tcb.irs) & MASK if has_ack else None
            else:
                rseq = (seg.seq - tcb.irs) & MASK if tcb.irs is not None else None
                rack = (seg.ack - tcb.iss) & MASK if seg.flags & ACK and tcb.iss_chosen else None
        if rseq is None and not out and seg.flags & SYN:
            rseq = 0  # an incoming SYN defines the peer's ISN
        d = {
            "src": src, "dst": dst, "sport": seg.src_port, "dport": seg.dst_port,
            "seq": seg.seq, "ack": seg.ack, "rseq": rseq, "rack": rack,
            "flags": flags_str(seg.flags), "win": seg.window, "len": len(seg.payload),
            "opts": seg.options.to_dict(),
        }
        if seg.flags & URG:
            d["urp"] = seg.urgent         # the urgent pointer (RFC 9293 3.8.5)
        return d

    # ------------------------------------------------------------------ I/O
    def _transmit(self, tcb: Tcb | None, seg: Segment, now: int,
                  local: str | None = None, remote: str | None = None) -> None:
        if tcb is not None:
            src, dst = tcb.local[0], tcb.remote[0]
        else:
            src, dst = local, remote
            if src is None or dst is None:
                raise ValueError("_transmit without a connection needs both addresses")
        self._out.append(new_packet((src, dst, seg)))
        counters = self.counters
        counters["segments_out"] += 1
        if seg.flags & RST:
            counters["rst_sent"] += 1
        if self.tracer is not None:
            d = {"t": now, "ev": "seg", "dir": "out"}
            if tcb is not None:
                d["conn"] = tcb.conn
            d.update(self._seg_fields(tcb, src, dst, seg, True))
            d["state"] = tcb.state.name if tcb is not None else "CLOSED"
            self.tracer(d)

    def _drop(self, tcb: Tcb | None, seg: Segment, reason: str, now: int,
              pkt: Packet | None = None) -> None:
        self.counters["dropped_" + reason.replace("-", "_")] += 1
        if self.tracer is not None:
            d: dict[str, Any] = {"t": now, "ev": "drop", "reason": reason, "dir": "in"}
            if tcb is not None:
                d["conn"] = tcb.conn
                d.update(self._seg_fields(tcb, tcb.remote[0], tcb.local[0], seg, False))
            elif pkt is not None:
                d.update(self._seg_fields(None, pkt.src, pkt.dst, seg, False))
            self.tracer(d)

    def _reply_rst(self, local: tuple[str, int], remote: tuple[str, int], seg: Segment,
                   now: int) -> None:
        """RFC 9293 3.10.7.1: <SEQ=SEG.ACK><CTL=RST> if ACK set, else
        <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Never answer a RST."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            r = Segment(local[1], remote[1], seg.ack, 0, RST, 0)
        else:
            r = Segment(local[1], remote[1], 0, add(seg.seq, seg.seq_len), RST | ACK, 0)
        tcb = self._tcbs.get((local[0], local[1], remote[0], remote[1]))
        if tcb is not None:
            self._transmit(tcb, r, now)
        else:
            self._transmit(None, r, now, local[0], remote[0])

    def _challenge_allowed(self, now: int) -> bool:
        """RFC 5961 7: at most config.challenge_ack_limit challenge ACKs per second."""
        w = now // SEC
        if w != self._challenge_window:
            self._challenge_window = w
            self._challenge_count = 0
        if self._challenge_count >= self.config.challenge_ack_limit:
            return False
        self._challenge_count += 1
        return True

    def on_packet(self, pkt: Packet, now: int) -> None:
        """A segment arrived for us (already checksummed by the codec)."""
        seg = pkt.segment
        self.counters["segments_in"] += 1
        key = (pkt.dst, seg.dst_port, pkt.src, seg.src_port)
        tcb = self._tcbs.get(key)
        if self.tracer is not None:
            d = {"t": now, "ev": "seg", "dir": "in"}
            if tcb is not None:
                d["conn"] = tcb.conn
            d.update(self._seg_fields(tcb, pkt.src, pkt.dst, seg, False))
            lst0 = None if tcb else self._find_listener(pkt.dst, seg.dst_port)
            d["state"] = tcb.state.name if tcb is not None else ("LISTEN" if lst0 else "CLOSED")
            self.tracer(d)
        lst = None
        if tcb is not None:
            if tcb.state is TIME_WAIT and tcb.time_wait_accepts_syn(seg):
                lst = self._find_listener(pkt.dst, seg.dst_port)
                if lst is not None:
                    tcb._set_state(CLOSED, "new SYN in TIME_WAIT", now)
            if lst is None:
                tcb.on_segment(seg, now)
                return
        lst = lst or self._find_listener(pkt.dst, seg.dst_port)
        if lst is not None:
            lst.on_segment(pkt, now)
            return
        # RFC 9293 3.10.7.1: CLOSED (no TCB): answer with RST unless it is one.
        self._drop(None, seg, "no-listener", now, pkt)
        self._reply_rst((pkt.dst, seg.dst_port), (pkt.src, seg.src_port), seg, now)

    def on_datagram(self, d: Any, now: int, raw: bytes = b"") -> None:
        """A UDP datagram (rawtcp.core.datagram.Datagram) arrived for us: see core/udp.py."""
        self.udp.on_datagram(d, now, raw)

    def on_icmp(self, e: Any, now: int) -> None:
        """An ICMP/ICMPv6 error (rawtcp.core.datagram.IcmpError) arrived: see core/udp.py."""
        self.udp.on_icmp(e, now)

    def on_packets(self, pkts: list[Packet], now: int) -> None:
        """A batch of segments that arrived together: each is processed as by on_packet,
        but each connection decides what to send once, after the whole batch (one ACK for
        a burst of data, as Linux does for a GRO batch)."""
        if self._pending_output is not None:      # re-entered: behave as single packets
            for pkt in pkts:
                self.on_packet(pkt, now)
            return
        self._pending_output = pending = {}
        try:
            for pkt in pkts:
                self.on_packet(pkt, now)
        finally:
            self._pending_output = None
        for tcb in pending:
            tcb._output(now)

    def _output_soon(self, tcb: Tcb, now: int) -> None:
        """Run tcb's output now, or at the end of the batch being processed."""
        pending = self._pending_output
        if pending is None:
            tcb._output(now)
        else:
            pending[tcb] = None

    def _find_listener(self, addr: str, port: int) -> Listener | None:
        lst = self._listeners.get((addr, port))
        if lst is None:
            lst = self._listeners.get(("::" if ":" in addr else "0.0.0.0", port))
        return lst

    # ------------------------------------------------------------------ timers
    def on_timer(self, now: int) -> None:
        """Fire every connection timer due at ``now`` (found in the timer queue: idle
        connections cost nothing here)."""
        q = self.timer_queue
        for tcb in q.pop_due(now):
            if tcb.state is CLOSED:
                continue
            d = tcb.timers.next_deadline()
            if d is not None and d <= now:
                tcb.on_timer(now)
                d = tcb.timers.next_deadline()
            if d is not None:
                q.schedule(tcb, d)
        if len(q) > 2 * len(self._tcbs) + 1024:
            q.rebuild(self._tcbs.values())

    def poll_at(self) -> int | None:
        """The earliest deadline of any connection, or None."""
        return self.timer_queue.next_at()

    def take_packets(self) -> list[Packet]:
        out, self._out = self._out, []
        return out

    def notify_changed(self) -> None:
        """Call the watcher (the socket layer's readiness) of each connection or listener
        that changed since the last call, once each: no scan of the others."""
        changed = self.changed
        if changed:
            items = list(changed)
            changed.clear()
            for obj in items:
                w = obj.watcher
                if w is not None:
                    w()

    # ------------------------------------------------------------------ ports
    def _add_tcb(self, tcb: Tcb) -> None:
        self._tcbs[(tcb.local[0], tcb.local[1], tcb.remote[0], tcb.remote[1])] = tcb
        self._ports.add_conn(tcb.local[0], tcb.local[1])

    def bind(self, local_addr: str, port: int, reuse: bool = False) -> Binding:
        addr = _canon(local_addr)
        if not 0 <= port <= 65535:
            raise OSError(errno.EINVAL, f"port {port} out of range 0..65535")
        if port == 0:
            port = self._ports.ephemeral(self.config.ephemeral_low, self.config.ephemeral_high,
                                         self.rng)
        elif self._ports.in_use(addr, port, reuse, self._listeners):
            raise OSError(errno.EADDRINUSE,
                          f"{addr}:{port} is already in use (also by TIME_WAIT connections); "
                          "choose another port or set SO_REUSEADDR")
        b = Binding(self, addr, port, reuse)
        self._ports.add_binding(b)
        return b

    def listen(self, b: Binding, backlog: int, options: TcbOptions | None = None,
               now: int = 0) -> Listener:
        if b.released:
            raise OSError(errno.EINVAL, "listen: the binding was released; bind again")
        key = (b.addr, b.port)
        if key in self._listeners:
            if self._listeners[key].binding is b:
                self._listeners[key].backlog = max(1, backlog)
                return self._listeners[key]
            raise OSError(errno.EADDRINUSE, f"{b.addr}:{b.port} already has a listener")
        for (la, lp) in self._listeners:
            if lp == b.port and overlap(la, b.addr):
                raise OSError(errno.EADDRINUSE, f"{la}:{lp} already listens on this port")
        lst = Listener(self, b, backlog, options)
        b.listening = True
        self._listeners[key] = lst
        self._ports.ref(b.port)
        self._trace_ev(now, "state", conn=f"{b.addr}:{b.port}>*:*",
                       old="CLOSED", new="LISTEN", reason="listen")
        return lst

    def connect(self, b: Binding | None, local_addr: str, remote_addr: str, remote_port: int,
                now: int, options: TcbOptions | None = None) -> Tcb:
        laddr = _canon(local_addr)
        raddr = _canon(remote_addr)
        if laddr in WILDCARDS:
            raise OSError(errno.EINVAL, "connect: give a concrete local address (not a wildcard)")
        if not 0 <= remote_port <= 65535:
            # (port 0 is a port like another here: Linux sends the SYN, and the peer's RST
            # makes it ECONNREFUSED)
            raise OSError(errno.EINVAL, f"connect: remote port {remote_port} out of range 0..65535")
        if b is None:
            b = self.bind(laddr, 0)
        elif b.released:
            raise OSError(errno.EINVAL, "connect: the binding was released; bind again")
        key = (laddr, b.port, raddr, remote_port)
        if key in self._tcbs:
            raise OSError(errno.EADDRINUSE,
                          f"connect: {laddr}:{b.port}>{raddr}:{remote_port} already exists")
        tcb = Tcb(self, (laddr, b.port), (raddr, remote_port), options)
        tcb.binding = b
        self._add_tcb(tcb)
        tcb._open_active(now)
        return tcb

    def lookup(self, local_addr: str, local_port: int, remote_addr: str,
               remote_port: int) -> Tcb | None:
        return self._tcbs.get((local_addr, local_port, remote_addr, remote_port))

    def state_for(self, pkt: Packet, direction: str) -> str | None:
        """The state name of our connection that ``pkt`` belongs to (``direction`` "in": it
        arrived for us, "out": we send it), or None (what fault rules' ``state=`` match)."""
        s = pkt.segment
        if direction == "in":
            tcb = self._tcbs.get((pkt.dst, s.dst_port, pkt.src, s.src_port))
        else:
            tcb = self._tcbs.get((pkt.src, s.src_port, pkt.dst, s.dst_port))
        return tcb.state.name if tcb is not None else None

    def connections(self) -> list[Tcb]:
        return list(self._tcbs.values())

    def listeners(self) -> list[Listener]:
        return list(self._listeners.values())

    def _tcb_closed(self, tcb: Tcb) -> None:
        key = (tcb.local[0], tcb.local[1], tcb.remote[0], tcb.remote[1])
        if self._tcbs.get(key) is tcb:
            del self._tcbs[key]
            self._ports.remove_conn(tcb.local[0], tcb.local[1])
        if tcb.listener is not None:
            tcb.listener._child_closed(tcb)
        if tcb.binding is not None and not tcb.binding.listening:
            tcb.binding.release()
        if self.udp.soft_errors:
            self.udp.tcb_closed(tcb)

    def close(self, now: int) -> None:
        """Abort everything this stack owns (RST for synchronized connections)."""
        for lst in list(self._listeners.values()):
            lst.close(now)
        for t in list(self._tcbs.values()):
            t.abort(now)
        for lst in list(self._ports.bindings.values()):
            for b in list(lst):
                b.release()
        for ep in self.udp.endpoints():
            self.udp.close(ep)
