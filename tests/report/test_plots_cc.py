"""cwnd/ssthresh and RTT over time (rawtcp.report.ccplots) from `cc` events (rawtcp) and
`kernel` events carrying the kernel's TCP_INFO, on one time axis."""

from __future__ import annotations

import errno
import struct

import pytest

from rawtcp.lab.kernel import parse_diag, parse_info, parse_tcp_info
from rawtcp.report.ccplots import cwnd_plot, cwnd_series, has_cc, rtt_plot, rtt_series

from .report_fixture import memory_run

CONN = "10.0.0.1:40000>10.0.0.2:80"


def _cc(t: int, cwnd: int, ssthresh: int | None, ca: str = "open", algo: str = "cubic",
        conn: str = CONN) -> dict:
    return {"t": t, "ev": "cc", "conn": conn, "cwnd": cwnd, "ssthresh": ssthresh,
            "srtt": 2000, "rttvar": 500, "rto": 200_000, "pipe": 0, "ca": ca, "algo": algo}


def _k(t: int, cwnd: int, ssthresh: int | None, rtt: int = 300) -> dict:
    return {"t": t, "ev": "kernel", "state": "ESTABLISHED", "local": "10.0.0.2:80",
            "remote": "10.0.0.1:40000", "cwnd": cwnd, "ssthresh": ssthresh, "mss": 1000,
            "rtt": rtt, "rttvar": 100, "rto": 204_000, "ca": "open", "algo": "cubic"}


def trace() -> list[dict]:
    return [
        {"t": 1000, "ev": "state", "conn": CONN, "old": "SYN_SENT", "new": "ESTABLISHED"},
        _cc(2000, 14600, None), _k(2500, 10, None),
        _cc(4000, 29200, None), _k(4500, 20, None),
        _cc(6000, 20440, 20440, "recovery"), _k(6500, 14, 14),
        {"t": 7000, "ev": "kernel", "state": "CLOSE_WAIT", "local": "10.0.0.2:80",
         "remote": "10.0.0.1:40000", "retrans": 0},       # a state sample: no cwnd
    ]


def test_cwnd_series_on_one_axis() -> None:
    """rawtcp's cwnd in bytes as traced; the kernel's in segments times its mss; ssthresh
    None while infinite; times in ms from the run's first event."""
    s = cwnd_series(trace())
    assert list(s) == [f"rawtcp cubic {CONN}", "kernel cubic 10.0.0.2:80>10.0.0.1:40000"]
    r, k = s[f"rawtcp cubic {CONN}"], s["kernel cubic 10.0.0.2:80>10.0.0.1:40000"]
    assert r["t"] == [1.0, 3.0, 5.0] and r["cwnd"] == [14600, 29200, 20440]
    assert r["ssthresh"] == [None, None, 20440] and r["ca"] == ["open", "open", "recovery"]
    assert k["t"] == [1.5, 3.5, 5.5] and k["cwnd"] == [10_000, 20_000, 14_000]
    assert k["ssthresh"] == [None, None, 14_000] and k["who"] == "kernel"


def test_cwnd_series_labels_and_flow_alignment() -> None:
    ev = trace() + [_cc(50_000, 14600, None, algo="reno", conn="10.0.0.1:40001>10.0.0.2:80"),
                    _cc(52_000, 29200, None, algo="reno", conn="10.0.0.1:40001>10.0.0.2:80")]
    s = cwnd_series(ev, labels={"10.0.0.1:40001>10.0.0.2:80": "second"}, align="flow")
    assert s["second"]["t"] == [0.0, 2.0] and s["second"]["algo"] == "reno"
    assert s[f"rawtcp cubic {CONN}"]["t"] == [0.0, 2.0, 4.0]
    with pytest.raises(ValueError):
        cwnd_series(ev, align="wall")


def test_has_cc_and_empty_plots(tmp_path) -> None:
    """Without cc events or kernel cwnd samples there is nothing to draw; the plot says so
    instead of failing."""
    assert has_cc(trace()) and not has_cc(trace()[-1:]) and not has_cc([])
    p = tmp_path / "c.png"
    assert cwnd_plot([], p) == {} and p.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(OSError) as e:
        cwnd_plot(trace(), tmp_path / "c.jpg")
    assert e.value.errno == errno.EINVAL


def test_rtt_series_and_karn_samples(tmp_path) -> None:
    """srtt/rto from cc events, the kernel's rtt from its samples, and RTT samples measured
    from the segments: an ACK covering a segment sent once gives ACK time - send time; an ACK
    covering a retransmitted segment gives none (Karn's rule, RFC 6298 3)."""
    seg = {"ev": "seg", "conn": CONN, "src": "10.0.0.1", "dst": "10.0.0.2", "sport": 40000,
           "dport": 80, "win": 1000}
    ev = trace() + [
        dict(seg, t=10_000, dir="out", flags="PA", seq=1, ack=1, rseq=1, rack=1, len=100),
        dict(seg, t=13_000, dir="in", flags="A", seq=1, ack=101, rseq=1, rack=101, len=0),
        dict(seg, t=14_000, dir="out", flags="PA", seq=101, ack=1, rseq=101, rack=1, len=100),
        dict(seg, t=20_000, dir="out", flags="PA", seq=101, ack=1, rseq=101, rack=1, len=100),
        dict(seg, t=21_000, dir="in", flags="A", seq=1, ack=201, rseq=1, rack=201, len=0),
    ]
    s = rtt_series(ev)
    assert s[f"rawtcp {CONN}"]["srtt"] == [2.0, 2.0, 2.0]
    assert s["kernel 10.0.0.2:80>10.0.0.1:40000"]["srtt"] == [0.3, 0.3, 0.3]
    assert s[f"{CONN} samples"]["rtt"] == [3.0]        # the retransmitted one: no sample
    p = tmp_path / "rtt.svg"
    rtt_plot(ev, p)
    assert b"<svg" in p.read_bytes()


def test_real_run_plots(tmp_path) -> None:
    """A real run: RTT samples from every ACK of data sent once; a cwnd plot when the core
    traces cc events (every sample positive)."""
    events, _ = memory_run(tmp_path)
    s = rtt_series(events)
    samples = [v for k, v in s.items() if k.endswith("samples")]
    assert samples and all(r >= 0 for r in samples[0]["rtt"]) and samples[0]["rtt"]
    series = cwnd_plot(events, tmp_path / "cwnd.png")
    assert has_cc(events) == bool(series)
    assert all(c > 0 for v in series.values() for c in v["cwnd"])


def _tcp_info(ca: int, rto: int, mss: int, rtt: int, rttvar: int, ssthresh: int,
              cwnd: int, total_retrans: int) -> bytes:
    b = bytearray(104)
    b[1] = ca
    struct.pack_into("=IIII", b, 8, rto, 40_000, mss, 536)
    struct.pack_into("=IIIIII", b, 60, 1500, 65535, rtt, rttvar, ssthresh, cwnd)
    struct.pack_into("=I", b, 100, total_retrans)
    return bytes(b)


def test_tcp_info_and_sock_diag_parsing() -> None:
    """struct tcp_info fields at the offsets of include/uapi/linux/tcp.h; ssthresh
    0x7fffffff (TCP_INFINITE_SSTHRESH) is None; an inet_diag answer carries the endpoints,
    state, TCP_INFO and the congestion control name (INET_DIAG_CONG)."""
    info = _tcp_info(3, 204_000, 1448, 350, 120, 0x7FFFFFFF, 10, 4)
    got = parse_tcp_info(info)
    assert got["ca"] == "recovery" and got["rto"] == 204_000 and got["mss"] == 1448
    assert (got["rtt"], got["rttvar"], got["cwnd"]) == (350, 120, 10)
    assert got["ssthresh"] is None and got["total_retrans"] == 4
    assert parse_tcp_info(_tcp_info(0, 1, 1, 1, 1, 7, 9, 0))["ssthresh"] == 7
    # tcpi_options (byte 5: TCPI_OPT_ECN | TCPI_OPT_ECN_SEEN) and tcpi_delivered_ce (196)
    long = bytearray(_tcp_info(0, 1, 1, 1, 1, 7, 9, 0)) + bytes(128)
    long[5] = 8 | 16
    struct.pack_into("=I", long, 196, 42)
    got = parse_tcp_info(bytes(long))
    assert got["options"] == 24 and got["delivered_ce"] == 42
    assert "delivered_ce" not in parse_tcp_info(info)      # an older kernel's shorter struct
    # inet_diag_msg (72 bytes) + rtattr INFO + rtattr CONG, in one netlink message
    msg = bytes([2, 1, 0, 0]) + struct.pack(">HH", 40000, 80) + bytes([10, 0, 0, 1]) + \
        b"\0" * 12 + bytes([10, 0, 0, 2]) + b"\0" * 12 + b"\0" * 12 + b"\0" * 20
    cong = b"cubic\0"
    attrs = struct.pack("=HH", 4 + len(info), 2) + info + \
        struct.pack("=HH", 4 + len(cong), 4) + cong + b"\0\0"
    body = msg + attrs
    nl = struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body
    done = struct.pack("=IHHII", 20, 3, 2, 1, 0) + b"\0" * 4
    socks, finished = parse_diag(nl + done)
    assert finished and len(socks) == 1
    s = socks[0]
    assert (s["state"], s["local"], s["remote"]) == ("ESTABLISHED", "10.0.0.1:40000",
                                                     "10.0.0.2:80")
    assert s["algo"] == "cubic" and s["cwnd"] == 10 and s["ca"] == "recovery"
    err = struct.pack("=IHHII", 20, 2, 0, 1, 0) + struct.pack("=i", -errno.EPERM)
    with pytest.raises(OSError) as e:
        parse_diag(err)
    assert e.value.errno == errno.EPERM


def test_ss_info_line_gives_the_algorithm_cwnd_ssthresh_rtt() -> None:
    sock: dict = {}
    parse_info("\t cubic wscale:7,7 rto:204 rtt:0.35/0.12 mss:1448 cwnd:10 ssthresh:7 "
               "bytes_sent:100 retrans:0/2", sock)
    assert sock["algo"] == "cubic" and sock["cwnd"] == 10 and sock["ssthresh"] == 7
    assert sock["rtt_ms"] == 0.35 and sock["total_retrans"] == 2


def test_ss_socket_to_kernel_event_fields() -> None:
    """What KernelWatch adds to its `kernel` events from `ss -i`: cwnd/ssthresh in segments,
    times in us (ss prints ms)."""
    from rawtcp.lab.kernel import parse_ss, ss_cc_fields

    socks = parse_ss("ESTAB 0 0 10.0.0.2:80 10.0.0.1:40000\n"
                     "\t cubic rto:204 rtt:0.35/0.125 mss:1448 cwnd:12 ssthresh:9\n")
    assert ss_cc_fields(socks[0]) == {"cwnd": 12, "ssthresh": 9, "mss": 1448, "rtt": 350,
                                      "rttvar": 125, "rto": 204_000, "algo": "cubic"}
    assert ss_cc_fields({})["cwnd"] is None
