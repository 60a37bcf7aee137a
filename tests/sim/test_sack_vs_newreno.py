"""SACK recovery against plain NewReno under heavy loss, in the simulator (virtual time, so
the figures are deterministic for the seeds: no wall-clock threshold).

RFC 6675 (SACK-based loss recovery) should never make a transfer much slower than RFC 6582
(NewReno) on the same link. Issue 8 found it twice as slow at 30 % loss: segments carrying a
SACK option are shorter than SMSS, so the receiver (counting "2 * SMSS" for its delayed ACK,
RFC 5681 4.2) ACKed only every third segment, and IsLost (RFC 6675 4) wanted 3 full SMSS
SACKed; with 30 % of ACKs lost, fewer ACKs meant more timeouts and inflated RTTs."""

from __future__ import annotations

from rawtcp.core.config import SEC, Config
from rawtcp.sim import Sim, transfer

MB = 1_000_000
LOSS = 0.30
SEEDS = range(1, 41)
FACTOR = 1.5  # generous: 1.14 after the fix, 2.0 before it, on these seeds


def _run(sack: bool, seed: int) -> int:
    # retries2 raised so that a long run of losses on one seed cannot abort the comparison
    sim = Sim(seed=seed, loss=LOSS, config=Config(sack=sack, retries2=30))
    res = transfer(sim, MB, seed=seed, max_time_us=100_000 * SEC)
    assert res.ok, f"seed {seed} sack={sack}: transfer failed"
    assert res.recv_ab == res.sent_ab and res.recv_ba == res.sent_ba
    if sack:
        assert res.info["client"]["sack"] and res.info["server"]["sack"]
    return res.time_us


def test_sack_not_slower_than_newreno_at_30_percent_loss() -> None:
    """RFC 6675 vs RFC 6582: 1 MB each way at 30 % loss in both directions on 40 fixed seeds;
    every transfer completes with identical bytes, and the SACK runs take in total at most
    FACTOR times the virtual time of the NewReno runs."""
    t_sack = sum(_run(True, s) for s in SEEDS)
    t_newreno = sum(_run(False, s) for s in SEEDS)
    assert t_sack <= FACTOR * t_newreno, (
        f"SACK {t_sack / SEC:.0f} s vs NewReno {t_newreno / SEC:.0f} s "
        f"(ratio {t_sack / t_newreno:.2f} > {FACTOR})")
