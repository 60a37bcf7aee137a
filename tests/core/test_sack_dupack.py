"""RFC 6675 section 2 (DupAck with SACK) and section 5 step 4 (IsLost(SND.UNA)).

Linux grows its advertised window while it autotunes, so its duplicate ACKs seldom repeat the
window exactly. With SACK, an ACK that SACKs new data counts as a duplicate whatever the
window, and three segments SACKed above SND.UNA trigger the fast retransmit.
"""

from __future__ import annotations

import pytest
from core_harness import (
    ISS,
    PISS,
    RTO,
    RTT,
    Harness,
    from_peer,
    plain_config,
    to_peer,
)

from rawtcp.core.segment import Options

SMSS = 1000  # the peer's MSS: segment k covers ISS+1+k*SMSS .. ISS+1+(k+1)*SMSS


@pytest.mark.parametrize("grow_window", [False, True])
def test_sacked_duplicates_trigger_fast_retransmit_even_if_window_changes(
        grow_window: bool) -> None:
    """RFC 6675 2 and 5 step 4: ACKs that SACK new data are duplicates even when their
    window differs; the third SACKed segment above SND.UNA (DupThresh) retransmits the
    first segment at once, long before the RTO."""
    h = Harness(plain_config(sack=True, rack=False))  # RFC 6675 DupThresh path
    tcb = h.connect()
    h.recv([to_peer(seq=ISS, ack=0, flags="S", opts=Options(mss=1460, sack_permitted=True))])
    h.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA", win=60000,
                     opts=Options(mss=SMSS, sack_permitted=True)), at=RTT)
    h.recv([to_peer()])
    tcb.send(b"x" * 10000, RTT)
    sent = h.take()
    assert len(sent) == 10                     # the initial window: ten segments of SMSS
    t = RTT
    for i in range(2, 6):  # segment 1 (ISS+1) lost; 2, 3.. SACKed, the window maybe growing
        t += 100
        h.send(from_peer(win=60000 + (i if grow_window else 0),
                         opts=Options(sack_blocks=((ISS + 1 + SMSS, ISS + 1 + i * SMSS),))),
               at=t)
        if i < 4:
            h.recv_nothing()                   # one, then two segments SACKed
        elif i == 4:                           # three: IsLost(SND.UNA), fast retransmit
            h.recv([to_peer(payload=b"x" * SMSS)])
        else:
            h.recv_nothing()                   # the retransmission is not repeated
    assert t < RTT + RTO                       # no retransmission timer ran
    assert h.stack.counters["fast_retransmits"] == 1
    assert h.stack.counters["retransmits"] == 1
    assert tcb.poll_at() is not None
