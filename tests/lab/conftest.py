import pytest
from lab_helpers import snapshot


@pytest.fixture
def host_snapshot():
    """Lists of namespaces, root-namespace links and nft tables, before the test."""
    return snapshot()
