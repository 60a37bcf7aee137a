"""RFC 6675 section 2 (DupAck with SACK) and section 5 step 4 (IsLost(SND.UNA)).

Linux grows its advertised window while it autotunes, so its duplicate ACKs seldom repeat the
window exactly. With SACK, an ACK that SACKs new data counts as a duplicate whatever the
window, and three segments SACKed above SND.UNA trigger the fast retransmit.
"""

import random

import pytest

from rawtcp.core.config import MS, Config
from rawtcp.core.segment import Flags, Options, Packet, Segment
from rawtcp.core.stack import Stack


@pytest.mark.parametrize("grow_window", [False, True])
def test_sacked_duplicates_trigger_fast_retransmit_even_if_window_changes(grow_window):
    st = Stack(Config(window_scaling=False, timestamps=False, sack=True),
               isn=lambda *a: 1000, rng=random.Random(1))
    tcb = st.connect(st.bind("10.0.0.1", 80), "10.0.0.1", "10.0.0.2", 5000, 0)
    st.take_packets()
    now = 10 * MS

    def peer(ack: int, win: int, opts: Options = Options(), flags=Flags.ACK, seq=5001):
        st.on_packet(Packet("10.0.0.2", "10.0.0.1",
                            Segment(5000, 80, seq, ack, flags, win, opts)), now)

    peer(1001, 60000, Options(mss=1000, sack_permitted=True), Flags.SYN | Flags.ACK, 5000)
    st.take_packets()
    tcb.send(b"x" * 10000, now)
    assert len(st.take_packets()) == 10
    for i in range(2, 6):  # segment 1001 lost; 2001.. SACKed, window maybe growing
        now += 100
        peer(1001, 60000 + (i if grow_window else 0),
             Options(sack_blocks=((2001, 1001 + i * 1000),)))
    rtx = [p.segment for p in st.take_packets() if p.segment.seq == 1001]
    assert rtx and rtx[0].payload == b"x" * 1000, "no fast retransmit of the lost segment"
    assert st.counters["fast_retransmits"] == 1
    assert tcb.poll_at() is not None and now < 200 * MS  # long before any RTO
