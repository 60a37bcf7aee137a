"""Two core Stacks on a virtual clock over a simulated link (deterministic for a seed).

The clock jumps straight to the next event (a packet arrival, a stack timer or the end of a
fault rule's hold), so simulated minutes cost nothing.

Link impairments are fault rules, the same ones (and the same :class:`FaultEngine`) a real
link uses (docs/faults.md): one rule text acts the same in simulation and against a kernel.
The engine sits on stack ``a``'s side of the link, as it sits on rawtcp's side of a real
link: ``out`` is a -> b, ``in`` is b -> a, and ``state=`` is a's TCB state::

    sim = Sim(seed=1, faults=["drop in p=0.05", parse_rule("drop", "out flags=A nth=3")])

The impairment parameters are short for rules in both directions, added after ``faults``:

- ``loss=P``       ``drop p=P``       (the segment and any copies of it are lost)
- ``duplicate=P``  ``duplicate p=P``  (delivered twice)
- ``reorder=P``    ``reorder p=P ms=2*delay`` (held until the next segment in its direction
  overtook it, at most twice the one-way delay)

Each rule draws from its own generator, seeded from ``seed`` and the rule's position (or the
rule's own ``seed=``). ``delay_us`` is the one-way propagation delay, ``bandwidth_bps`` an
optional serialization rate; ``isn`` (optional) replaces both stacks' ISN generator (e.g. to
start near 2**32). A corrupted segment is dropped by its receiver, as a checksum check
would, and traced as ``{ev: "drop", reason: "bad-checksum"}``.

    sim = Sim(seed=1, loss=0.05)
    res = transfer(sim, 1_000_000)
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .core.config import MS, SEC, Config
from .core.segment import Packet
from .core.stack import Stack
from .core.tcb import State, Tcb
from .faults import FaultEngine, Rule, parse_action_rule

A_ADDR = "10.0.0.1"
B_ADDR = "10.0.0.2"


class Sim:
    """Stacks ``a`` (10.0.0.1) and ``b`` (10.0.0.2) joined by a lossy link."""

    def __init__(
        self,
        seed: int = 0,
        loss: float = 0.0,
        reorder: float = 0.0,
        duplicate: float = 0.0,
        delay_us: int = 10 * MS,
        bandwidth_bps: int | None = None,
        config: Config | None = None,
        config_b: Config | None = None,
        tracer: Callable[[dict], None] | None = None,
        drop: Callable[[str, Packet], bool] | None = None,
        isn: Callable[[str, int, str, int, int], int] | None = None,
        faults: Iterable[Rule | str] | FaultEngine = (),
    ) -> None:
        self.rng = random.Random(seed)
        self.loss = loss
        self.reorder = reorder
        self.duplicate = duplicate
        self.delay_us = delay_us
        self.bandwidth_bps = bandwidth_bps
        self.drop = drop  # optional rule: drop(direction "a>b"/"b>a", pkt) -> True to drop
        self.now = 0
        ta = (lambda ev: tracer(dict(ev, stack="a"))) if tracer else None
        tb = (lambda ev: tracer(dict(ev, stack="b"))) if tracer else None
        self._trace = {"a": ta, "b": tb}
        self.faults = self._engine(faults, seed, ta)
        self.corrupted = 0
        self.a = Stack(config or Config(), isn=isn, rng=random.Random(self.rng.getrandbits(64)),
                       tracer=ta)
        self.b = Stack(config_b or config or Config(), isn=isn,
                       rng=random.Random(self.rng.getrandbits(64)), tracer=tb)
        # (time, tie-break, destination stack or None for a callback, packet or callback)
        self._heap: list[tuple[int, int, Stack | None, Any]] = []
        self._n = 0
        self._busy_until = {id(self.a): 0, id(self.b): 0}
        self.hooks: list[Callable[[Sim], None]] = []
        self.delivered = 0
        self.lost = 0
        self.events = 0

    def _engine(self, faults: Iterable[Rule | str] | FaultEngine, seed: int,
                tracer: Callable[[dict], None] | None) -> FaultEngine | None:
        """The fault engine on a's side: the given rules, then the impairment parameters."""
        if isinstance(faults, FaultEngine):
            if self.loss or self.duplicate or self.reorder:
                raise ValueError("give loss/duplicate/reorder as rules of the FaultEngine "
                                 "you pass, or pass rules instead of an engine")
            engine = faults
        else:
            rules = [parse_action_rule(r) for r in faults]
            rules += impairment_rules(self.loss, self.duplicate, self.reorder, self.delay_us)
            if not rules:
                return None
            engine = FaultEngine(rules, seed=seed)
        if engine.tracer is None:
            engine.tracer = tracer
        if engine.state_of is None:
            engine.state_of = self._state_of
        return engine

    def _state_of(self, pkt: Packet, direction: str) -> str | None:
        return self.a.state_for(pkt, direction)   # the engine sits on a's side

    def peer(self, st: Stack) -> Stack:
        return self.b if st is self.a else self.a

    def _flush(self) -> None:
        for src in (self.a, self.b):
            pkts = src.take_packets()
            if not pkts:
                continue
            dst = self.peer(src)
            direction = "a>b" if src is self.a else "b>a"
            for p in pkts:
                self._send(src, dst, direction, p)

    def _send(self, src: Stack, dst: Stack, direction: str, p: Packet) -> None:
        t = self.now
        if self.bandwidth_bps:
            start = max(t, self._busy_until[id(src)])
            t = start + (len(p.segment.payload) + 40) * 8 * SEC // self.bandwidth_bps
            self._busy_until[id(src)] = t
        if self.drop is not None and self.drop(direction, p):
            self.lost += 1
            return
        if self.faults is None:
            self._push(t + self.delay_us, dst, p, False)
            return
        held = self.faults.held
        out = self.faults.process("out" if src is self.a else "in", p, self.now)
        if not out and self.faults.held == held:
            self.lost += 1
        for when, q, corrupt in out:     # a delay rule's time is added to the link's
            self._push(t + (when - self.now) + self.delay_us, dst, q, corrupt)

    def _push(self, at: int, dst: Stack, p: Packet, corrupt: bool) -> None:
        self._n += 1
        if corrupt:
            heapq.heappush(self._heap, (at, self._n, None, lambda s: s._bad_checksum(dst)))
        else:
            heapq.heappush(self._heap, (at, self._n, dst, p))

    def _bad_checksum(self, dst: Stack) -> None:
        """A corrupted segment reaches ``dst``: its checksum check drops it."""
        self.corrupted += 1
        trace = self._trace["a" if dst is self.a else "b"]
        if trace is not None:
            trace({"t": self.now, "ev": "drop", "dir": "in", "reason": "bad-checksum"})

    def _release_held(self) -> None:
        """Segments a reorder rule held whose longest hold is over go on the wire now."""
        assert self.faults is not None
        for direction, dst in (("out", self.b), ("in", self.a)):
            for _when, q, corrupt in self.faults.release_due(self.now, direction):
                self._push(self.now + self.delay_us, dst, q, corrupt)

    def _next_at(self) -> int | None:
        cands = [x for x in (self.a.poll_at(), self.b.poll_at(),
                             self._heap[0][0] if self._heap else None,
                             self.faults.pending_release_at() if self.faults else None)
                 if x is not None]
        return min(cands, default=None)

    def call_at(self, at: int, fn: Callable[[Sim], None]) -> None:
        """Schedule an application callback (e.g. a slow reader's next read)."""
        self._n += 1
        heapq.heappush(self._heap, (at, self._n, None, fn))

    def step(self) -> bool:
        """Advance to the next event and process it. False when nothing is left to do."""
        self._flush()
        ta, tb = self.a.poll_at(), self.b.poll_at()
        tp = self._heap[0][0] if self._heap else None
        tf = self.faults.pending_release_at() if self.faults is not None else None
        cands = [x for x in (ta, tb, tp, tf) if x is not None]
        if not cands:
            return False
        t = min(cands)
        if t > self.now:
            self.now = t
        self.events += 1
        if tf is not None and tf == t:
            self._release_held()
        elif tp is not None and tp == t:
            _, _, dst, p = heapq.heappop(self._heap)
            if dst is None:
                p(self)
            else:
                self.delivered += 1
                dst.on_packet(p, self.now)
        elif ta is not None and ta == t:
            self.a.on_timer(self.now)
        else:
            self.b.on_timer(self.now)
        for h in self.hooks:
            h(self)
        self._flush()
        return True

    def run_until(self, predicate: Callable[[], bool], max_time_us: int) -> bool:
        """Run events until predicate() is true (True) or time/events run out (False)."""
        for h in self.hooks:
            h(self)
        self._flush()
        while not predicate():
            if self.now > max_time_us:
                return False
            if not self.step():
                return predicate()
        return True

    def run_for(self, duration_us: int) -> None:
        end = self.now + duration_us
        while True:
            self._flush()
            at = self._next_at()
            if at is None or at > end:
                self.now = max(self.now, end)
                return
            self.step()


def impairment_rules(loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0,
                     delay_us: int = 10 * MS) -> list[Rule]:
    """The rules the simulator's ``loss``/``duplicate``/``reorder`` parameters stand for (both
    directions): ``drop p=loss``, ``duplicate p=duplicate``, ``reorder p=reorder ms=2*delay``."""
    rules = []
    if loss:
        rules.append(Rule("drop", p=loss))
    if duplicate:
        rules.append(Rule("duplicate", p=duplicate))
    if reorder:
        rules.append(Rule("reorder", p=reorder, ms=(2 * delay_us + 1) / 1000))
    return rules


@dataclass
class TransferResult:
    ok: bool
    sent_ab: bytes
    sent_ba: bytes
    recv_ab: bytes = b""
    recv_ba: bytes = b""
    client: Tcb | None = None
    server: Tcb | None = None
    closed: bool = False
    time_us: int = 0
    info: dict = field(default_factory=dict)


class _App:
    """A simple application: write everything, shutdown(SHUT_WR), read to EOF, close()."""

    def __init__(self, data: bytes, read_chunk: int | None = None, read_after: int = 0) -> None:
        self.read_chunk = read_chunk
        self.read_after = read_after
        self.data = memoryview(data)
        self.off = 0
        self.tcb: Tcb | None = None
        self.got = bytearray()
        self.shut = False
        self.closed = False

    def pump(self, now: int, tick: bool = False) -> None:
        t = self.tcb
        if t is None or self.closed:
            return
        st = t.state
        if st in (State.SYN_SENT, State.SYN_RECEIVED, State.LISTEN):
            return
        if t.error is not None or st is State.CLOSED:
            self.closed = True
            return
        if not self.shut:
            while self.off < len(self.data):
                n = t.send(self.data[self.off : self.off + 65536], now)
                if n == 0:
                    break
                self.off += n
            if self.off >= len(self.data):
                t.shutdown(1, now)
                self.shut = True
        if now < self.read_after:
            pass  # the application is busy: nothing is read, windows close
        elif self.read_chunk is not None:
            if tick:  # a slow reader: read_chunk bytes every 5 ms
                self.got += t.recv(self.read_chunk, now)
        else:
            while t.readable:
                self.got += t.recv(1 << 20, now)
        if t.eof and self.shut:
            t.close(now)
            self.closed = True


def transfer(sim: Sim, nbytes_each_way: int, max_time_us: int = 3600 * SEC,
             port: int = 5000, seed: int = 0,
             read_chunk: int | None = None, read_after_us: int = 0) -> TransferResult:
    """Connect a (client) to b (server), send nbytes each way at once, close both ways.

    ok = both byte streams arrived identical and both connections reached CLOSED (the
    active closer after TIME_WAIT). ``read_chunk`` makes both applications slow readers
    (that many bytes every 5 ms), so receive windows fill up; ``read_after_us`` delays all
    reading, so the windows close completely (zero-window probing)."""
    rnd = random.Random(seed)
    d_ab = rnd.randbytes(nbytes_each_way)
    d_ba = rnd.randbytes(nbytes_each_way)
    lst = sim.b.listen(sim.b.bind(B_ADDR, port), 16)
    ca = _App(d_ab, read_chunk, sim.now + read_after_us)
    cb = _App(d_ba, read_chunk, sim.now + read_after_us)
    ca.tcb = sim.a.connect(None, A_ADDR, B_ADDR, port, sim.now)

    def hook(s: Sim) -> None:
        if cb.tcb is None:
            cb.tcb = lst.accept()
        ca.pump(s.now)
        cb.pump(s.now)

    sim.hooks.append(hook)
    if read_chunk is not None or read_after_us:
        def tick(s: Sim) -> None:  # the slow reader wakes up every 5 ms
            ca.pump(s.now, tick=True)
            cb.pump(s.now, tick=True)
            if not (ca.closed and cb.closed):
                s.call_at(s.now + 5 * MS, tick)
        sim.call_at(sim.now + 5 * MS, tick)
    try:
        done = sim.run_until(
            lambda: ca.closed and cb.closed and ca.tcb is not None and cb.tcb is not None
            and ca.tcb.closed and cb.tcb.closed,
            max_time_us,
        )
    finally:
        sim.hooks.remove(hook)
        lst.close(sim.now)
    res = TransferResult(
        ok=False, sent_ab=d_ab, sent_ba=d_ba, recv_ab=bytes(cb.got), recv_ba=bytes(ca.got),
        client=ca.tcb, server=cb.tcb, closed=done, time_us=sim.now,
    )
    if ca.tcb is not None:
        res.info["client"] = ca.tcb.info()
    if cb.tcb is not None:
        res.info["server"] = cb.tcb.info()
    res.ok = (done and res.recv_ab == d_ab and res.recv_ba == d_ba
              and ca.tcb is not None and ca.tcb.error is None
              and cb.tcb is not None and cb.tcb.error is None)
    return res
