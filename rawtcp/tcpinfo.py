"""Linux's ``struct tcp_info`` in bytes: what ``getsockopt(IPPROTO_TCP, TCP_INFO, buflen)``
returns on a rawtcp socket, laid out as Linux's include/uapi/linux/tcp.h lays it out
(native byte order and alignment) up to ``tcpi_total_rto_time``: 248 bytes. Older headers
stop earlier (the one on the machine this was written on at ``tcpi_snd_wnd``, 232 bytes)
and newer kernels add fields after it (its 6.18 kernel returns 280 bytes). A program that
unpacks a kernel socket's TCP_INFO reads a rawtcp socket's the same way, up to the fields
both have.

Without a buflen rawtcp's getsockopt returns the connection's ``info()`` as a dict (its own
names, documented in docs/contracts.md); with one, these bytes, cut to ``buflen`` as Linux
cuts them (``min(buflen, sizeof(struct tcp_info))``). Counters rawtcp does not keep per
connection (segments in and out, the ``last_*`` times, pacing, busy / limited times) are 0.
"""

from __future__ import annotations

import struct
from typing import Any

# tcpi_state: Linux's TCP state numbers (include/net/tcp_states.h)
LINUX_STATES = {
    "ESTABLISHED": 1, "SYN_SENT": 2, "SYN_RECEIVED": 3, "FIN_WAIT_1": 4, "FIN_WAIT_2": 5,
    "TIME_WAIT": 6, "CLOSED": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9, "LISTEN": 10, "CLOSING": 11,
}

# 8 one-byte fields (the sixth holds snd_wscale in its low and rcv_wscale in its high four
# bits, GCC's bit-field order on little-endian machines); 24 u32 (rto .. total_retrans: the
# 104 bytes older programs ask for); pacing and byte counters; ... up to total_rto_time
LAYOUT = struct.Struct("@8B24I4Q2I4IQ3Q2I2Q2I2I2IHHI")
FIELDS = (
    "state", "ca_state", "retransmits", "probes", "backoff", "options", "wscale",
    "app_limited",
    "rto", "ato", "snd_mss", "rcv_mss",
    "unacked", "sacked", "lost", "retrans", "fackets",
    "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv",
    "pmtu", "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss",
    "reordering",
    "rcv_rtt", "rcv_space",
    "total_retrans",
    "pacing_rate", "max_pacing_rate", "bytes_acked", "bytes_received",
    "segs_out", "segs_in",
    "notsent_bytes", "min_rtt", "data_segs_in", "data_segs_out",
    "delivery_rate",
    "busy_time", "rwnd_limited", "sndbuf_limited",
    "delivered", "delivered_ce",
    "bytes_sent", "bytes_retrans",
    "dsack_dups", "reord_seen",
    "rcv_ooopack", "snd_wnd",
    "rcv_wnd", "rehash",
    "total_rto", "total_rto_recoveries", "total_rto_time",
)

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


def _u(v: Any, top: int) -> int:
    """A counter as the kernel's unsigned field holds it: None is 0, the top is the cap."""
    if v is None or v is False:
        return 0
    v = int(v)
    return 0 if v < 0 else min(v, top)


def pack(info: dict[str, Any], buflen: int) -> bytes:
    """``info`` (Tcb.info()) as the first ``buflen`` bytes of a ``struct tcp_info``."""
    get = info.get
    values = {
        "state": LINUX_STATES.get(get("state", "CLOSED"), 7),
        "ca_state": get("ca_state", 0),
        "retransmits": min(_u(get("retransmits"), 255), 255),
        "probes": min(_u(get("probes"), 255), 255),
        "backoff": min(_u(get("backoff"), 255), 255),
        "options": _u(get("options"), 255),
        "wscale": (_u(get("snd_wscale"), 15) | _u(get("rcv_wscale"), 15) << 4),
        "rto": get("rto"), "ato": get("ato"),
        "snd_mss": get("snd_mss"), "rcv_mss": get("rcv_mss"),
        "unacked": -(-_u(get("unacked"), _U64) // max(1, _u(get("snd_mss"), _U32))),
        "sacked": get("sacked"), "lost": get("lost"), "retrans": get("retrans"),
        "pmtu": get("pmtu"), "rcv_ssthresh": get("rcv_wnd"),
        "rtt": get("srtt"), "rttvar": get("rttvar"),
        "snd_ssthresh": get("snd_ssthresh"), "snd_cwnd": get("snd_cwnd"),
        "advmss": get("advmss"), "reordering": get("reordering"),
        "rcv_rtt": get("rcv_rtt"), "rcv_space": get("rcv_space"),
        "total_retrans": get("total_retrans"),
        "max_pacing_rate": _U64,           # no pacing: Linux's "unlimited"
        "bytes_acked": get("bytes_acked"), "bytes_received": get("bytes_received"),
        "notsent_bytes": get("notsent_bytes"), "min_rtt": get("min_rtt"),
        "delivered": get("delivered"), "delivered_ce": get("delivered_ce"),
        "bytes_sent": get("bytes_sent"), "bytes_retrans": get("bytes_retrans"),
        "dsack_dups": get("dsack_dups"),
        "snd_wnd": get("snd_wnd"), "rcv_wnd": get("rcv_wnd"),
    }
    row = []
    for i, name in enumerate(FIELDS):
        code = _CODES[i]
        row.append(_u(values.get(name), _TOPS[code]))
    return LAYOUT.pack(*row)[:buflen]


def _codes() -> str:
    fmt = LAYOUT.format.lstrip("@")
    out, n = [], ""
    for ch in fmt:
        if ch.isdigit():
            n += ch
        else:
            out.append(ch * (int(n) if n else 1))
            n = ""
    return "".join(out)


_CODES = _codes()
_TOPS = {"B": 0xFF, "H": 0xFFFF, "I": _U32, "Q": _U64}
if len(_CODES) != len(FIELDS):     # the two lists above describe one layout
    raise ImportError(f"tcp_info layout: {len(_CODES)} fields, {len(FIELDS)} names")

SIZE = LAYOUT.size

__all__ = ["FIELDS", "LAYOUT", "LINUX_STATES", "SIZE", "pack"]
