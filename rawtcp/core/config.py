"""Every tunable of the stack, in one place, with defaults close to Linux's.

All durations are integer microseconds (the core's one time unit).
"""

from __future__ import annotations

from dataclasses import dataclass

MS = 1_000
SEC = 1_000_000


@dataclass
class Config:
    # --- segment sizes and buffers -------------------------------------------------------
    mss: int = 1460                    # MSS we announce (link MTU - 40 for IPv4)
    default_peer_mss: int = 536        # RFC 9293 3.7.1 when the peer sends no MSS option
    rcvbuf: int = 256 * 1024           # receive buffer: drives the advertised window
    sndbuf: int = 256 * 1024           # send buffer
    # --- options (RFC 7323, RFC 2018) -----------------------------------------------------
    window_scaling: bool = True
    sack: bool = True
    timestamps: bool = True
    # --- retransmission (RFC 6298) --------------------------------------------------------
    rto_initial: int = 1 * SEC         # RFC 6298 2.1
    rto_min: int = 200 * MS            # Linux TCP_RTO_MIN
    rto_max: int = 120 * SEC           # Linux TCP_RTO_MAX
    syn_retries: int = 6               # net.ipv4.tcp_syn_retries
    synack_retries: int = 5            # net.ipv4.tcp_synack_retries
    retries2: int = 15                 # net.ipv4.tcp_retries2 (data, FIN)
    # --- close sequence -------------------------------------------------------------------
    msl: int = 30 * SEC                # TIME_WAIT lasts 2*MSL
    time_wait: int | None = None       # override TIME_WAIT duration; 0 = ablation (no TIME_WAIT)
    rfc1337: bool = True               # ignore RST in TIME_WAIT (RFC 1337 protection)
    fin_timeout: int = 60 * SEC        # orphaned FIN_WAIT_2 lifetime (net.ipv4.tcp_fin_timeout)
    # --- ACKs, Nagle, keepalive ------------------------------------------------------------
    delayed_ack: int = 40 * MS         # delayed ACK timeout; capped at 200 ms (RFC 1122: < 500)
    nodelay: bool = False              # disable Nagle
    keepalive: bool = False
    keepalive_time: int = 7200 * SEC
    keepalive_intvl: int = 75 * SEC
    keepalive_probes: int = 9
    # --- persist (zero window) --------------------------------------------------------------
    persist_min: int = 200 * MS
    persist_max: int = 60 * SEC
    orphan_retries: int = 8            # zero-window probes an orphaned connection (closed by
    #                                    its application) sends before it gives up: the next
    #                                    persist expiry sends RST, ETIMEDOUT (Linux
    #                                    net.ipv4.tcp_orphan_retries, whose 0 means 8; here the
    #                                    number is literal, 0 = RST at the first expiry)
    # --- RFC 5961 ----------------------------------------------------------------------------
    challenge_ack_limit: int = 1000    # challenge ACKs per second
    # --- congestion control -------------------------------------------------------------------
    initial_cwnd_segments: int = 10    # RFC 6928 / Linux
    # --- ports ---------------------------------------------------------------------------------
    ephemeral_low: int = 32768         # net.ipv4.ip_local_port_range
    ephemeral_high: int = 60999

    @property
    def time_wait_duration(self) -> int:
        return 2 * self.msl if self.time_wait is None else self.time_wait
