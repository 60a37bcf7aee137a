"""Fault injection on rawtcp's own path: drop, delay, duplicate, reorder or corrupt segments,
rewrite them (mangle) or forge new ones (inject).

Theory of operation
-------------------
A :class:`FaultEngine` sits between the link and the stack, in both directions. The runtime
(or the simulator) hands it every packet and sends on what comes back::

    engine = FaultEngine([parse_rule("drop", "out flags=A state=TIME_WAIT nth=1")],
                         seed=0, tracer=tracer, state_of=lookup_state)

    # a packet the stack wants to send, or one that arrived from the link:
    for release_us, pkt, corrupt in engine.process("out", pkt, now_us):
        queue.push(...)                      # deliver at release_us (now or later)

``process(direction, pkt, now)`` returns ``(release_time_us, Packet, corrupt_checksum)`` for
every copy to deliver, in delivery order; an empty list means dropped.

- ``release_time_us == now`` for most packets; a ``delay`` rule puts it in the future. By
  default the caller schedules such deliveries (:class:`ReleaseQueue` is a small heap for
  that: ``push(items)``, ``next_at()``, ``pop_due(now)``, stable for equal times so
  duplicates stay in order). With ``FaultEngine(..., hold_delays=True)`` the engine keeps
  them itself: ``process`` returns only what is due now, and delayed packets come out of
  ``release_due(now, direction)`` like reordered ones, so the engine owns every held packet.
- ``corrupt_checksum`` True means: encode the packet, then spoil its TCP checksum
  (:func:`rawtcp.trace.encode_packet` ``(pkt, corrupt=True)`` encodes and does it;
  :func:`corrupt_tcp_checksum` does it on IP bytes). For the ``in`` direction the runtime
  should hand the spoiled bytes to its decoder so that the stack's checksum check sees them;
  a runtime that cannot, drops the packet and traces ``{ev:"drop", reason:"bad-checksum"}``.
- ``reorder`` *holds* the packet inside the engine. It comes back out of a later
  ``process()`` call in the same direction, placed after the K-th packet that passed
  (``after=K``, default 1), or, when no such packets come, from ``release_due(now)`` once its
  maximum hold time (``ms=``, default 1000 ms) is over. So the runtime must also do::

        t = engine.pending_release_at()       # absolute us, or None: wake up no later
        ...
        for item in engine.release_due(now):  # held packets whose time has come
            deliver(item)

  ``flush()`` releases everything still held (call it on close if you want them sent).

Every fault applied is traced: ``{t, ev:"fault", action, rule, dir, conn, src, dst, sport,
dport, seq, ack, rseq, rack, flags, win, len}`` plus ``ms`` (delay), ``copies`` (duplicate),
``after``/``max_ms`` (reorder). When a held packet is released: ``{ev:"fault_release", ...}``.
``rseq``/``rack`` are relative to the ISNs the engine saw in SYNs (null when unknown).

Rules are evaluated in order for each packet. Every rule whose conditions hold counts a
*match*; if its ``nth``/``count``/``p`` gates let it fire it counts *applied* and acts:
``drop`` ends the evaluation; ``delay`` adds its delay; ``duplicate`` adds copies;
``corrupt`` marks all copies; the first ``reorder`` holds the packet (with its copies).
Per-rule counters: ``engine.rules[i].matched`` / ``.applied`` or ``engine.stats()``.

The text form of rules (CLI ``--drop 'out flags=A nth=1'``) is documented in docs/faults.md.
The simulator takes the same rules (``Sim(faults=[parse_rule("drop", "in p=0.05 seed=7")])``):
one rule text acts the same in simulation and on a real link.

``mangle`` rewrites the packet in place of the original (``process`` returns the rewritten
one; ``engine.ttl_for(pkt)`` gives a TTL a rule set, for the encoder). ``inject`` rules make
the engine keep a table of the connections it sees (only then) and hand crafted segments
out through ``release_due(now, direction)`` (``out``: to the link, ``in``: to the stack),
announced by ``pending_release_at()``; so a runtime that serves held packets serves
injected ones too.

Modules: :mod:`~rawtcp.faults.grammar` (the rule language: Rule, parse_rule,
parse_action_rule), :mod:`~rawtcp.faults.forge` (the parts after ``set`` and ``send``),
:mod:`~rawtcp.faults.engine` (matching, one function per action, held packets),
:mod:`~rawtcp.faults.inject` (connections seen on the wire, on=/at= triggers),
:mod:`~rawtcp.faults.personas` (presets made of rules), :mod:`~rawtcp.faults.release`
(ReleaseQueue), :mod:`~rawtcp.faults.corrupt` (the corrupt action on bytes).
"""

from rawtcp.faults.corrupt import corrupt_tcp_checksum
from rawtcp.faults.engine import FaultEngine
from rawtcp.faults.forge import Change, SendSpec
from rawtcp.faults.grammar import (
    ACTIONS,
    DEFAULT_REORDER_MS,
    KEYS,
    STATES,
    FlagMatch,
    NumMatch,
    Rule,
    RuleError,
    parse_action_rule,
    parse_rule,
)
from rawtcp.faults.release import Delivery, ReleaseQueue

__all__ = [
    "ACTIONS",
    "DEFAULT_REORDER_MS",
    "Change",
    "SendSpec",
    "KEYS",
    "STATES",
    "Delivery",
    "FaultEngine",
    "FlagMatch",
    "NumMatch",
    "ReleaseQueue",
    "Rule",
    "RuleError",
    "corrupt_tcp_checksum",
    "parse_action_rule",
    "parse_rule",
]
