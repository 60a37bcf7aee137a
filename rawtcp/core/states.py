"""The connection states of RFC 9293 3.3.2 and every transition rawtcp allows, as data.

Theory of operation
-------------------
A connection is always in exactly one :class:`State`. ``Tcb._set_state`` is the one method
that changes it, and it consults :data:`TRANSITIONS`: a change that is not listed there is a
bug in rawtcp's core (a transition no RFC event produces). In tests it raises
:class:`TransitionError`; in production it is refused, counted (``bad_transitions``) and
traced, and the connection keeps its state.

Each transition carries the RFC 9293 section that causes it, so the table doubles as the
state diagram: ``docs/states.md`` is generated from it (``scripts/state_diagram.py``), and a
test keeps the two equal.

The named sets below are the questions other layers ask about a state (can it send, has the
peer finished, is our FIN out) so that nobody keeps a copy of them.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    """RFC 9293 3.3.2 connection states."""

    # by identity, in C: Enum's own __hash__ is a Python call, and ``state in DATA_STATES``
    # and the like run several times per segment (members are singletons, equal only to
    # themselves, so identity hashing agrees with ==)
    __hash__ = object.__hash__

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


LISTEN = State.LISTEN
SYN_SENT = State.SYN_SENT
SYN_RECEIVED = State.SYN_RECEIVED
ESTABLISHED = State.ESTABLISHED
FIN_WAIT_1 = State.FIN_WAIT_1
FIN_WAIT_2 = State.FIN_WAIT_2
CLOSE_WAIT = State.CLOSE_WAIT
CLOSING = State.CLOSING
LAST_ACK = State.LAST_ACK
TIME_WAIT = State.TIME_WAIT
CLOSED = State.CLOSED

# ------------------------------------------------------------------------ questions about states
#: Both ISNs are known (RFC 9293 3.3.2: every state after SYN-RECEIVED).
SYNCHRONIZED = frozenset({SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT,
                          CLOSING, LAST_ACK, TIME_WAIT})
#: Our FIN has been queued: no more user data may be sent.
FIN_STATES = frozenset({FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT})
#: States that accept segment text (RFC 9293 3.10.7.4 seventh step).
DATA_STATES = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
#: The handshake is still running.
OPENING = frozenset({SYN_SENT, SYN_RECEIVED})
#: The user may still send (the connection is open in our direction).
SEND_OPEN = frozenset({ESTABLISHED, CLOSE_WAIT})
#: The peer's FIN has arrived: no more data will come.
PEER_FINISHED = frozenset({CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT})
#: Our FIN is out but not acknowledged yet (SO_LINGER waits through these).
FIN_UNACKED = frozenset({FIN_WAIT_1, CLOSING, LAST_ACK})
#: Keep-alive probes run in these (RFC 1122 4.2.3.6: an idle, open connection).
KEEPALIVE_STATES = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2})


# ------------------------------------------------------------------------ the transition table
#: (old, new) -> the events that cause it, each with its RFC 9293 section.
TRANSITIONS: dict[tuple[State, State], str] = {
    # opening
    (CLOSED, SYN_SENT): "OPEN, active: send SYN (3.10.1)",
    (LISTEN, SYN_RECEIVED): "SYN arrives at a listener: send SYN,ACK (3.10.7.2); or the "
                            "ACK of a SYN cookie rebuilds the child (RFC 4987 3.6)",
    (SYN_SENT, ESTABLISHED): "SYN,ACK acknowledging our SYN (3.10.7.3 fourth)",
    (SYN_SENT, SYN_RECEIVED): "SYN without ACK: simultaneous open (3.10.7.3 fourth, 3.5)",
    (SYN_RECEIVED, ESTABLISHED): "ACK of our SYN (3.10.7.4 fifth)",
    # closing, our side first
    (SYN_RECEIVED, FIN_WAIT_1): "CLOSE: queue FIN (3.10.4)",
    (ESTABLISHED, FIN_WAIT_1): "CLOSE: queue FIN (3.10.4)",
    (FIN_WAIT_1, FIN_WAIT_2): "ACK of our FIN (3.10.7.4 fifth)",
    (FIN_WAIT_1, CLOSING): "FIN before the ACK of ours: simultaneous close (3.10.7.4 eighth)",
    (FIN_WAIT_1, TIME_WAIT): "FIN that also acknowledges ours (3.10.7.4 eighth)",
    (FIN_WAIT_2, TIME_WAIT): "FIN (3.10.7.4 eighth)",
    (CLOSING, TIME_WAIT): "ACK of our FIN (3.10.7.4 fifth)",
    (TIME_WAIT, CLOSED): "2 MSL timeout (3.10.8); RST without RFC 1337; new SYN (3.10.7.4)",
    # closing, the peer first
    (SYN_RECEIVED, CLOSE_WAIT): "FIN (3.10.7.4 eighth)",
    (ESTABLISHED, CLOSE_WAIT): "FIN (3.10.7.4 eighth)",
    (CLOSE_WAIT, LAST_ACK): "CLOSE: queue FIN (3.10.4)",
    (LAST_ACK, CLOSED): "ACK of our FIN (3.10.7.4 fifth); RST; ABORT; timeout",
    # RST, ABORT, CLOSE before synchronization, user and retransmission timeouts
    (LISTEN, CLOSED): "listener closed before the handshake went on (3.10.4)",
    (SYN_SENT, CLOSED): "RST (3.10.7.3 second); CLOSE/ABORT (3.10.4, 3.10.5); timeout (3.8.3)",
    (SYN_RECEIVED, CLOSED): "RST or SYN: back to LISTEN (3.10.7.4 second, fourth); ABORT; "
                            "timeout",
    (ESTABLISHED, CLOSED): "RST (3.10.7.4 second); ABORT (3.10.5); timeout (3.8.3); "
                           "close with unread data (RFC 2525 2.17)",
    (FIN_WAIT_1, CLOSED): "RST; ABORT; timeout; data after close (RFC 2525 2.17)",
    (FIN_WAIT_2, CLOSED): "RST (3.10.7.4 second); ABORT (3.10.5); orphan timeout (Linux "
                          "tcp_fin_timeout); data after close (RFC 2525 2.17)",
    (CLOSE_WAIT, CLOSED): "RST (3.10.7.4 second); ABORT (3.10.5); timeout (3.8.3); close with "
                          "unread data (RFC 2525 2.17)",
    (CLOSING, CLOSED): "RST (3.10.7.4 second); ABORT; timeout",
}


class TransitionError(AssertionError):
    """A state change the table does not allow: a bug in rawtcp's core."""


# the (old, new) pairs of TRANSITIONS, for a membership test on every state change (State
# hashes by identity: no Python call)
ALLOWED = frozenset(TRANSITIONS)


def diagram() -> str:
    """The state diagram as a Markdown page with a Mermaid graph and the table."""
    lines = [
        "# TCP connection states in rawtcp",
        "",
        "Generated from `rawtcp/core/states.py` (`TRANSITIONS`) by "
        "`scripts/state_diagram.py`; do not edit by hand. Sections are RFC 9293's.",
        "",
        "```mermaid",
        "stateDiagram-v2",
    ]
    for (old, new), why in TRANSITIONS.items():
        short = why.split(" (")[0].split(";")[0]
        lines.append(f"    {old.name} --> {new.name}: {short}")
    lines += ["```", "", "| from | to | caused by |", "| --- | --- | --- |"]
    for (old, new), why in TRANSITIONS.items():
        lines.append(f"| {old.name} | {new.name} | {why} |")
    return "\n".join(lines) + "\n"


__all__ = [
    "State", "TRANSITIONS", "TransitionError", "ALLOWED", "diagram", "SYNCHRONIZED",
    "FIN_STATES", "DATA_STATES", "OPENING", "SEND_OPEN", "PEER_FINISHED", "FIN_UNACKED",
    "KEEPALIVE_STATES",
]
