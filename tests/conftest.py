"""Settings for the whole test suite."""

from __future__ import annotations

import pytest

from rawtcp.core.stack import Stack


@pytest.fixture(autouse=True, scope="session")
def _strict_state_machine():
    """A state change outside rawtcp.core.states.TRANSITIONS is a core bug: in tests it
    raises (in production it is refused, counted and traced)."""
    Stack.strict = True
    yield
    Stack.strict = False
