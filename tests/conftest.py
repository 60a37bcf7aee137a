"""Settings for the whole test suite."""

from __future__ import annotations

import pytest

from rawtcp.core.stack import Stack


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-rounds", type=int, default=300,
                     help="hostile segments per state in tests/core/test_adversarial.py "
                          "(default 300: well under a minute; raise it for a long local run)")


@pytest.fixture(autouse=True, scope="session")
def _strict_state_machine():
    """A state change outside rawtcp.core.states.TRANSITIONS is a core bug: in tests it
    raises (in production it is refused, counted and traced)."""
    Stack.strict = True
    yield
    Stack.strict = False
