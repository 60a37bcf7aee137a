import pytest

from rawtcp.lab import TunLab, VethLab


@pytest.fixture
def tunlab_dual():
    with TunLab(family="dual") as lab:
        yield lab


@pytest.fixture
def vethlab_packet():
    with VethLab(mode="packet", family="dual") as lab:
        yield lab


@pytest.fixture
def vethlab_rawip():
    with VethLab(mode="rawip", family="dual", ports=range(5000, 5100)) as lab:
        yield lab
