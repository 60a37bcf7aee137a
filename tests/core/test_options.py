"""Option negotiation: MSS (RFC 9293 3.7.1), window scale and timestamps with PAWS
(RFC 7323), SACK (RFC 2018, RFC 6675)."""

from __future__ import annotations

from core_harness import ISS, MSS, PISS, RCVBUF, Harness, from_peer, plain_config, to_peer

from rawtcp.core.config import MS, Config
from rawtcp.core.segment import Options
from rawtcp.core.tcb import State

T = 20 * MS
ALL = Options(mss=MSS, wscale=7, sack_permitted=True, timestamps=(100, 0))


def full_config(**kw) -> Config:
    return plain_config(window_scaling=True, sack=True, timestamps=True, rcvbuf=256 * 1024,
                        **kw)


def test_all_options_negotiated_when_both_offer() -> None:
    """RFC 7323 1.3/2.2/3.2, RFC 2018 2: the SYN-ACK carries each option the peer offered."""
    h = Harness(full_config())
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=ALL), at=0)
    h.recv([to_peer(seq=ISS, flags="SA", win=65535, opts=Options(
        mss=MSS, wscale=3, sack_permitted=True, timestamps=(0, 100)))])
    h.send(from_peer(win=100, opts=Options(timestamps=(101, 0))), at=5 * MS)
    t = h.listener.accept()
    info = t.info()
    assert info["sack"] and info["timestamps"] and info["snd_wscale"] == 7
    assert info["rcv_wscale"] == 3
    assert info["snd_wnd"] == 100 << 7          # the peer's windows are scaled
    assert info["mss"] == MSS - 12               # room for the timestamps option


def test_only_mss_when_peer_offers_only_mss() -> None:
    """RFC 7323 1.3, RFC 2018 2: options the peer did not offer are not used."""
    h = Harness(full_config())
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=1000)), at=0)
    h.recv([to_peer(seq=ISS, flags="SA", win=65535, opts=Options(mss=MSS))])
    h.send(from_peer(win=30000), at=5 * MS)
    t = h.listener.accept()
    info = t.info()
    assert not info["sack"] and not info["timestamps"] and info["snd_wscale"] == 0
    assert info["mss"] == 1000 and info["snd_wnd"] == 30000
    # Our windows are not scaled either: a full 64 KiB field caps at 65535.
    t.send(b"x", 6 * MS)
    seg = h.take(at=6 * MS)[0]
    assert seg.window == 65535 and seg.options == Options()


def test_default_mss_536_without_option() -> None:
    """RFC 9293 3.7.1: without an MSS option the peer's MSS is 536."""
    h = Harness()
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S"), at=0)
    h.take()
    h.send(from_peer(), at=5 * MS)
    assert h.listener.accept().info()["mss"] == 536


def test_active_open_offers_everything_and_follows_synack() -> None:
    """RFC 7323 2.2: our SYN offers wscale/TS/SACK; a SYN-ACK without them turns them off."""
    h = Harness(full_config())
    tcb = h.connect()
    h.recv([to_peer(seq=ISS, ack=0, flags="S", win=65535, opts=Options(
        mss=MSS, wscale=3, sack_permitted=True, timestamps=(0, 0)))])
    h.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA", win=5000, opts=Options(mss=MSS)),
           at=10 * MS)
    h.recv([to_peer(win=65535)])
    assert tcb.state is State.ESTABLISHED
    assert not tcb.info()["timestamps"] and tcb.info()["rcv_wscale"] == 0


def _ts_established() -> Harness:
    h = Harness(plain_config(timestamps=True))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS, timestamps=(100, 0))), at=0)
    h.recv([to_peer(seq=ISS, flags="SA", win=RCVBUF, opts=Options(mss=MSS, timestamps=(0, 100)))])
    h.send(from_peer(opts=Options(timestamps=(101, 0))), at=10 * MS)
    h.tcb = h.listener.accept()
    return h


def test_timestamps_echoed() -> None:
    """RFC 7323 3.2/4.3: TSval from our 1 ms clock, TSecr echoes TS.Recent."""
    h = _ts_established()
    h.send(from_peer(flags="PA", payload=b"a", opts=Options(timestamps=(150, 10))), at=T)
    h.recv([to_peer(ack=PISS + 2, win=RCVBUF - 1, opts=Options(timestamps=(60, 150)))],
           at=T + 40 * MS)


def test_paws_drops_old_timestamp() -> None:
    """RFC 7323 5.3 R1: TSval older than TS.Recent -> drop and send an ACK."""
    h = _ts_established()
    h.send(from_peer(flags="PA", payload=b"old", opts=Options(timestamps=(90, 0))), at=T)
    h.recv([to_peer(opts=Options(timestamps=(20, 101)))])
    assert h.tcb.readable == 0
    assert h.stack.counters["dropped_paws"] == 1
    h.send(from_peer(flags="PA", payload=b"new", opts=Options(timestamps=(102, 0))), at=T + 1 * MS)
    assert h.tcb.readable == 3


def test_paws_does_not_apply_to_rst() -> None:
    """RFC 7323 5.3: PAWS is not applied to RST segments."""
    h = _ts_established()
    h.send(from_peer(flags="R", win=0, opts=Options(timestamps=(5, 0))), at=T)
    assert h.tcb.state is State.CLOSED


def _sack_established(**kw) -> Harness:
    h = Harness(plain_config(sack=True, nodelay=True, **kw))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS, sack_permitted=True)), at=0)
    h.recv([to_peer(seq=ISS, flags="SA", win=RCVBUF, opts=Options(mss=MSS, sack_permitted=True))])
    h.send(from_peer(), at=10 * MS)
    h.tcb = h.listener.accept()
    return h


def test_receiver_sends_sack_blocks() -> None:
    """RFC 2018 4: out-of-order data -> ACK with SACK blocks, most recent block first."""
    h = _sack_established()
    h.send(from_peer(seq=PISS + 101, flags="A", payload=b"b" * 100), at=T)
    h.recv([to_peer(opts=Options(sack_blocks=((PISS + 101, PISS + 201),)))])
    h.send(from_peer(seq=PISS + 301, flags="A", payload=b"d" * 100), at=T + 1)
    h.recv([to_peer(opts=Options(
        sack_blocks=((PISS + 301, PISS + 401), (PISS + 101, PISS + 201))))])
    h.send(from_peer(seq=PISS + 1, flags="A", payload=b"a" * 100), at=T + 2)
    h.recv([to_peer(ack=PISS + 201, win=RCVBUF - 200,
                    opts=Options(sack_blocks=((PISS + 301, PISS + 401),)))])


def test_sack_recovery_retransmits_only_holes() -> None:
    """RFC 6675 5: after 3 duplicate ACKs, retransmit the holes the SACK scoreboard shows,
    not the SACKed segments (the RFC 6675 path: no RACK, cwnd = ssthresh without PRR)."""
    h = _sack_established(rack=False, prr=False)
    h.tcb.send(bytes(6 * MSS), T)
    assert len(h.take(at=T)) == 6
    s = ISS + 1

    def sack(*blocks):
        return Options(sack_blocks=tuple((s + a * MSS, s + b * MSS) for a, b in blocks))

    # segments 1 and 3 (0-based) lost; 2, 4, 5 arrive
    h.send(from_peer(ack=s + MSS, opts=sack((2, 3))), at=T + 10 * MS)
    h.send(from_peer(ack=s + MSS, opts=sack((4, 5), (2, 3))), at=T + 11 * MS)
    h.recv_nothing()
    h.send(from_peer(ack=s + MSS, opts=sack((4, 6), (2, 3))), at=T + 12 * MS)
    got = h.take()
    assert got[:2] == [to_peer(seq=s + MSS, payload=bytes(MSS)),
                       to_peer(seq=s + 3 * MSS, payload=bytes(MSS))]
    assert all(g.seq not in (s + 2 * MSS, s + 4 * MSS, s + 5 * MSS) for g in got)


def test_peer_offers_everything_we_offer_nothing() -> None:
    """RFC 7323 1.3 / 2.2 / 3.2, RFC 2018 2: options are used only when BOTH sides offer
    them. We have window scaling, SACK and timestamps switched off: the SYN-ACK carries only
    the MSS, later segments carry no options, and the peer's windows are not scaled."""
    h = Harness()   # plain_config: wscale, SACK, timestamps off
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=ALL), at=0)
    h.recv([to_peer(seq=ISS, flags="SA", win=RCVBUF, opts=Options(mss=MSS))])
    h.send(from_peer(win=1000, opts=Options(timestamps=(101, 0))), at=5 * MS)
    t = h.listener.accept()
    info = t.info()
    assert not info["sack"] and not info["timestamps"]
    assert info["snd_wscale"] == 0 and info["rcv_wscale"] == 0
    assert info["snd_wnd"] == 1000 and info["mss"] == MSS
    h.send(from_peer(seq=PISS + 101, payload=b"x", opts=Options(timestamps=(102, 0))), at=T)
    assert h.take() == [to_peer(win=RCVBUF)]   # out of order: ACK at once, no SACK, no TS


def test_synack_with_options_we_did_not_offer_are_ignored() -> None:
    """RFC 7323 1.3 / 2.2: a SYN-ACK may carry window scale or timestamps only if our SYN
    offered them; if it does anyway, they are not used (and the peer's window field is
    taken unscaled)."""
    h = Harness()
    tcb = h.connect()
    h.recv([to_peer(seq=ISS, ack=0, flags="S", win=RCVBUF, opts=Options(mss=MSS))])
    h.send(from_peer(seq=PISS, ack=ISS + 1, flags="SA", win=5000, opts=ALL), at=10 * MS)
    h.recv([to_peer()])
    info = tcb.info()
    assert not info["sack"] and not info["timestamps"] and info["snd_wscale"] == 0
    h.send(from_peer(win=3000), at=20 * MS)
    assert tcb.info()["snd_wnd"] == 3000


def test_window_scaling_in_both_directions() -> None:
    """RFC 7323 2.2-2.3: after the handshake every window field is shifted: the peer's by
    its scale (we send up to field << 2), ours by our scale (field = free >> 3); the SYN and
    SYN-ACK windows are never scaled."""
    h = Harness(plain_config(window_scaling=True, rcvbuf=256 * 1024, nodelay=True))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", win=65535, opts=Options(mss=MSS, wscale=2)), at=0)
    h.recv([to_peer(seq=ISS, flags="SA", win=65535, opts=Options(mss=MSS, wscale=3))])
    h.send(from_peer(win=730), at=10 * MS)                  # 730 << 2 = 2 * MSS
    h.tcb = h.listener.accept()
    assert h.tcb.info()["snd_wnd"] == 2 * MSS
    h.tcb.send(bytes(5 * MSS), T)
    got = h.take(at=T)
    assert [len(g.payload) for g in got] == [MSS, MSS]   # exactly the scaled window
    assert all(g.window == (256 * 1024) >> 3 for g in got)
    h.send(from_peer(flags="PA", payload=b"x" * 100, ack=ISS + 1 + 2 * MSS, win=365),
           at=T + 10 * MS)
    got = h.take(at=T + 100 * MS)
    assert got[0].seq == ISS + 1 + 2 * MSS and len(got[0].payload) == MSS
    assert got[0].window == (256 * 1024 - 100) >> 3


def test_duplicate_segment_gets_a_dsack_block() -> None:
    """RFC 2883 4 (D-SACK): a segment whose text was already received is acknowledged at
    once with its range as the first SACK block; the block is reported once."""
    h = _sack_established()
    h.send(from_peer(seq=PISS + 1, flags="PA", payload=b"a" * 100), at=T)
    h.take(at=T + 50 * MS)                                   # the delayed ACK of it
    h.send(from_peer(seq=PISS + 1, flags="PA", payload=b"a" * 100), at=T + 60 * MS)
    h.recv([to_peer(ack=PISS + 101, win=RCVBUF - 100,
                    opts=Options(sack_blocks=((PISS + 1, PISS + 101),)))])
    h.send(from_peer(seq=PISS + 101, flags="PA", payload=b"b" * 100), at=T + 70 * MS)
    h.recv([to_peer(ack=PISS + 201, win=RCVBUF - 200)], at=T + 200 * MS)   # no D-SACK again


def test_partly_duplicate_segment_reports_only_the_old_part() -> None:
    """RFC 2883 4.1.1 and 3: a segment that overlaps RCV.NXT: the D-SACK block covers the
    part received before, the new bytes are taken."""
    h = _sack_established()
    h.send(from_peer(seq=PISS + 1, flags="PA", payload=b"a" * 100), at=T)
    h.take(at=T + 50 * MS)
    h.send(from_peer(seq=PISS + 51, flags="PA", payload=b"a" * 50 + b"b" * 50),
           at=T + 60 * MS)
    h.recv([to_peer(ack=PISS + 151, win=RCVBUF - 150,
                    opts=Options(sack_blocks=((PISS + 51, PISS + 101),)))], at=T + 100 * MS)
    assert h.tcb.recv(1000, T + 101 * MS) == b"a" * 100 + b"b" * 50


def test_dsack_off() -> None:
    """Config.dsack=False (net.ipv4.tcp_dsack=0): a duplicate gets a plain ACK."""
    h = Harness(plain_config(sack=True, nodelay=True, dsack=False))
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=Options(mss=MSS, sack_permitted=True)), at=0)
    h.take()
    h.send(from_peer(), at=10 * MS)
    h.tcb = h.listener.accept()
    h.send(from_peer(seq=PISS + 1, flags="PA", payload=b"a" * 100), at=T)
    h.take(at=T + 50 * MS)
    h.send(from_peer(seq=PISS + 1, flags="PA", payload=b"a" * 100), at=T + 60 * MS)
    h.recv([to_peer(ack=PISS + 101, win=RCVBUF - 100)])


def test_window_scale_covers_the_largest_buffer_unless_the_buffer_was_fixed() -> None:
    """RFC 7323 2.3: the shift is chosen once, in the SYN, so it must cover the largest window
    the connection may ever advertise. As Linux (tcp_select_initial_window): that is the
    largest buffer it could get (Config.rmem_max: 6 MiB gives 7, Linux's default; 15 MiB, as
    packetdrill's defaults set tcp_rmem, gives 8), or the buffer itself when the user fixed
    it with SO_RCVBUF before connecting (TcbOptions.rcvbuf_locked)."""
    from rawtcp.core.stack import Stack
    from rawtcp.core.tcb import TcbOptions

    def syn_wscale(cfg: Config, **opts) -> int | None:
        st = Stack(cfg)
        t = st.connect(st.bind("10.0.0.1", 0), "10.0.0.1", "10.0.0.2", 80, 0,
                       options=TcbOptions(cfg, **opts) if opts else None)
        (pkt,) = st.take_packets()
        assert t.state is State.SYN_SENT
        return pkt.segment.options.wscale

    assert syn_wscale(Config()) == 7
    assert syn_wscale(Config(rmem_max=15 << 20)) == 8
    assert syn_wscale(Config(rcvbuf=8192, rmem_max=8192)) == 0
    assert syn_wscale(Config(), rcvbuf=8192, rcvbuf_locked=True) == 0
    assert syn_wscale(Config(), rcvbuf=256 * 1024, rcvbuf_locked=True) == 3


def test_rst_carries_timestamps_once_negotiated() -> None:
    """RFC 7323 3.2: with timestamps negotiated, TSopt SHOULD be sent in an RST as well (Linux
    does; packetdrill's reset_tsval checks it): here the RST of a close with unread data
    (RFC 2525 2.17) echoes the peer's latest TSval."""
    h = Harness(full_config())
    h.listen()
    h.send(from_peer(seq=PISS, ack=0, flags="S", opts=ALL), at=0)
    h.take()
    h.send(from_peer(win=100, opts=Options(timestamps=(101, 0))), at=5 * MS)
    t = h.listener.accept()
    h.send(from_peer(flags="PA", payload=b"unread", win=100,
                     opts=Options(timestamps=(150, 5))), at=10 * MS)
    h.take(at=10 * MS)
    t.close(30 * MS)
    (rst,) = h.take(at=30 * MS)
    assert rst.flags & 0x04 and rst.options.timestamps == (30, 150)


def test_connection_options_from_a_config_are_its_per_connection_fields() -> None:
    """TcbOptions.from_config (what every connect() builds, written out field by field for
    speed) holds exactly the Config's PER_CONNECTION values, as TcbOptions(cfg) does: a field
    added to PER_CONNECTION and forgotten there fails here."""
    from rawtcp.core.tcb import PER_CONNECTION, TcbOptions

    cfg = Config(nodelay=True, keepalive=True, keepalive_time=77, keepalive_intvl=5,
                 keepalive_probes=4, rcvbuf=123_456, sndbuf=65_432, mss=1000,
                 window_scaling=False, sack=False, timestamps=False, congestion="reno")
    made = TcbOptions.from_config(cfg)
    assert made == TcbOptions(cfg)
    for name in PER_CONNECTION:
        assert getattr(made, name) == getattr(cfg, name), name
    assert not made.rcvbuf_locked and not made.sndbuf_locked
