"""Two-stack transfers on the simulated link: bytes in == bytes out, and the whole close
sequence (FIN both ways, TIME_WAIT, CLOSED) completes on both sides."""

from __future__ import annotations

import pytest

from rawtcp.core.config import Config
from rawtcp.sim import Sim, transfer

MB = 1_000_000


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("loss", [0.0, 0.01, 0.05, 0.10, 0.20])
def test_one_megabyte_each_way_under_loss(loss: float, seed: int) -> None:
    """RFC 9293 3.10 data transfer + close under seeded loss (RFC 6298, RFC 5681/6582/6675)."""
    sim = Sim(seed=seed, loss=loss)
    res = transfer(sim, MB, seed=seed)
    assert res.recv_ab == res.sent_ab
    assert res.recv_ba == res.sent_ba
    assert res.closed and res.ok
    assert res.client.closed and res.server.closed
    assert res.client.error is None and res.server.error is None
    # RFC 9293 3.6: nothing is left in either stack, and the run lasted past the 2*MSL of
    # TIME_WAIT (a connection that skipped TIME_WAIT would have ended the run far earlier).
    assert sim.a.connections() == [] and sim.b.connections() == []
    assert res.time_us >= 2 * Config().msl
    if loss >= 0.05:
        assert res.info["client"]["total_retrans"] + res.info["server"]["total_retrans"] > 0
