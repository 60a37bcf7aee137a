"""The state table (rawtcp.core.states): every transition the core makes is listed with its
RFC 9293 section, the one state-changing method refuses anything else, and the diagram in
the docs is generated from the table."""

from __future__ import annotations

import pathlib
import re

import pytest
from core_harness import Harness

from rawtcp.core.states import TRANSITIONS, State, TransitionError, diagram

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "states.md"


def test_every_state_is_reachable_and_can_end() -> None:
    """RFC 9293 3.3.2 figure 5: every state but LISTEN (where a listener is born) is
    entered from somewhere, and every state can reach CLOSED."""
    targets = {new for _, new in TRANSITIONS}
    assert set(State) - targets == {State.LISTEN}      # CLOSED is entered, LISTEN is born
    for st in State:
        seen, todo = {st}, [st]
        while todo:
            cur = todo.pop()
            for old, new in TRANSITIONS:
                if old is cur and new not in seen:
                    seen.add(new)
                    todo.append(new)
        assert State.CLOSED in seen, st


# Transitions whose reason in states.py gives no section number yet (reported to the lead).
NO_SECTION: set[tuple[State, State]] = set()
SECTION = re.compile(r"\((RFC \d+ )?\d+(\.\d+)+")   # "(3.10.7.4 fifth" or "(RFC 2525 2.17"


def test_every_transition_but_the_listed_gaps_names_its_rfc_section() -> None:
    """RFC 9293 3.3.2: each allowed transition cites the section that makes it (RFC 9293
    unless another RFC is named); NO_SECTION lists the ones that do not yet, and an entry
    there that has gained a section fails too."""
    for (old, new), why in TRANSITIONS.items():
        cites = SECTION.search(why) is not None
        assert cites != ((old, new) in NO_SECTION), (old, new, why)


def test_a_transition_outside_the_table_raises_in_strict_mode(est: Harness) -> None:
    """RFC 9293 3.3.2 figure 5 has no ESTABLISHED -> LAST_ACK edge (it skips CLOSE-WAIT):
    in strict mode (tests) the change raises and the state stays."""
    assert (State.ESTABLISHED, State.LAST_ACK) not in TRANSITIONS
    with pytest.raises(TransitionError):
        est.tcb._set_state(State.LAST_ACK, "test", est.now)
    assert est.tcb.state is State.ESTABLISHED


def test_a_transition_outside_the_table_is_refused_counted_and_traced(est: Harness,
                                                                        monkeypatch) -> None:
    """RFC 9293 3.3.2 figure 5 (as above): in production (strict off) the bad change does not
    happen; it is counted and traced as a core bug."""
    monkeypatch.setattr(type(est.stack), "strict", False)
    est.tcb._set_state(State.LAST_ACK, "test", est.now)
    assert est.tcb.state is State.ESTABLISHED
    assert est.stack.counters["bad_transitions"] == 1
    bugs = [e for e in est.events if e["ev"] == "bug"]
    assert len(bugs) == 1 and "ESTABLISHED -> LAST_ACK" in bugs[0]["message"]


def test_the_state_diagram_in_the_docs_is_generated_from_the_table() -> None:
    """docs/states.md is scripts/state_diagram.py's output: regenerate it after a change."""
    assert DOC.read_text() == diagram()
    for (old, new) in TRANSITIONS:
        assert f"{old.name} --> {new.name}" in diagram()
