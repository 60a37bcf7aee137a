"""The congestion state as trace events ({ev: "cc"}), tcp_info() and the Config switches of
issue 13 (docs/contracts.md)."""

from __future__ import annotations

import pytest
from core_harness import ISS, MSS, RTT, Harness, from_peer, plain_config

from rawtcp.core.config import MS, Config, check_value

T = RTT


def cc_events(h: Harness) -> list[dict]:
    return [e for e in h.events if e["ev"] == "cc"]


def test_config_switches_and_their_choices() -> None:
    c = Config()
    assert (c.congestion, c.rack, c.prr, c.ecn, c.undo) == ("cubic", True, True, 2, True)
    assert Config().with_overrides({"congestion": "reno", "ecn": "1", "rack": "off"}) == \
        Config(congestion="reno", ecn=1, rack=False)
    with pytest.raises(ValueError, match="cubic, reno"):
        check_value("congestion", "bbr")
    with pytest.raises(ValueError, match="0..2"):
        check_value("ecn", 3)


def test_cc_event_per_ack_with_every_field_and_infinite_ssthresh_as_null() -> None:
    """Slow start (RFC 5681 3.1): each ACK grows cwnd, each growth is one cc event."""
    h = Harness(plain_config(nodelay=True, congestion="reno"))
    h.passive_open()
    h.tcb.send(bytes(4 * MSS), T)
    h.take(at=T)
    h.send(from_peer(ack=ISS + 1 + MSS), at=T + 10 * MS)
    h.send(from_peer(ack=ISS + 1 + 2 * MSS), at=T + 12 * MS)
    ev = cc_events(h)
    assert [e["cwnd"] for e in ev] == [11 * MSS, 12 * MSS]
    e = ev[0]
    assert set(e) >= {"t", "conn", "cwnd", "ssthresh", "srtt", "rttvar", "rto", "pipe", "ca",
                      "algo"}
    assert e["ssthresh"] is None and e["ca"] == "open" and e["algo"] == "reno"
    assert e["pipe"] == 3 * MSS and e["rto"] == h.tcb.rtt.rto


def test_cc_events_are_bounded_to_one_per_ms_unless_the_state_changes() -> None:
    """Two ACKs within the same millisecond give one event; nothing changes, nothing
    traced; entering recovery is traced at once."""
    h = Harness(plain_config(nodelay=True, congestion="reno", rack=False))
    h.passive_open()
    h.tcb.send(bytes(8 * MSS), T)
    h.take(at=T)
    t = T + 10 * MS
    h.send(from_peer(ack=ISS + 1 + MSS), at=t)
    h.send(from_peer(ack=ISS + 1 + 2 * MSS), at=t + 100)
    assert len(cc_events(h)) == 1
    h.take()
    for i in range(3):                                # duplicate ACKs: disorder, recovery
        h.send(from_peer(ack=ISS + 1 + 2 * MSS), at=t + 200 + i)
    cas = [e["ca"] for e in cc_events(h)]
    assert cas == ["open", "disorder", "recovery"]
    assert cc_events(h)[-1]["ssthresh"] is not None


def test_no_cc_events_without_a_tracer_and_tcp_info_names() -> None:
    h = Harness(plain_config(nodelay=True))
    h.stack.tracer = None
    h.passive_open()
    h.tcb._tracer = None
    h.tcb.send(bytes(2 * MSS), T)
    h.take(at=T)
    h.send(from_peer(ack=ISS + 1 + 2 * MSS), at=T + 10 * MS)
    assert h.tcb.cc_last is None
    info = h.tcb.info()
    assert info["congestion"] == "cubic" and info["ca_state"] == 0
    assert info["snd_cwnd"] == 12 and info["delivered"] == 2 and info["bytes_acked"] == 2 * MSS
    assert info["rtt"] == info["srtt"] and info["min_rtt"] == 10 * MS
