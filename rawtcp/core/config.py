"""Every tunable of the stack, in one place, with defaults close to Linux's.

All durations are integer microseconds (the core's one time unit). Each field carries its
documentation as data (`dataclasses.field(metadata=...)`: unit, valid range, meaning), so the
CLI's `rawtcp config`, `--config KEY=VALUE` and the docs read it from here:

    Config.fields_info()                   -> [FieldInfo(name, type, default, unit, range,
                                               meaning), ...]
    Config().validate()                    -> None, or ValueError (one line) for a bad value
    Config().with_overrides({"msl": 1_000_000, "sack": "off"})  -> a new, validated Config
    Config.parse_assignments(["msl=1000000", "time_wait=none"]) -> {"msl": 1000000, ...}
    check_value("sack", "off")             -> False (one field's type and range only)

Constructing a `Config` does not validate it (tests build ablations on purpose);
`with_overrides` always does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, NamedTuple

MS = 1_000
SEC = 1_000_000

#: an integer's text (int() also takes '1_000', ' 5', '+5' and other scripts' digits)
_DIGITS = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"-?[0-9]+")
_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no")


class FieldInfo(NamedTuple):
    """One Config field, described: what `rawtcp config` prints."""

    name: str
    type: str             # "int", "bool", "int | None" or "str"
    default: int | bool | str | None
    unit: str             # "us", "bytes", "segments", "count", "per second", "port", "" (bool)
    range: tuple[int, int] | None   # inclusive bounds of an int field; None for a bool/str
    meaning: str
    choices: tuple[str, ...] | None = None   # the values a "str" field takes


def _f(default: Any, unit: str, meaning: str, lo: int | None = None,
       hi: int | None = None) -> Any:
    """A dataclass field with its documentation as metadata."""
    rng = None if lo is None or hi is None else (lo, hi)
    return field(default=default, metadata={"unit": unit, "range": rng, "meaning": meaning})


def _flag(default: bool, meaning: str) -> Any:
    return _f(default, "", meaning)


def _choice(default: str, choices: tuple[str, ...], meaning: str) -> Any:
    """A text field that takes one of ``choices``."""
    return field(default=default, metadata={"unit": "", "range": None, "meaning": meaning,
                                            "choices": choices})


#: Congestion control algorithms (Config.congestion, TCP_CONGESTION), Linux's names.
CONGESTION_ALGORITHMS = ("cubic", "reno")


@dataclass
class Config:
    # --- segment sizes and buffers -------------------------------------------------------
    mss: int = _f(1460, "bytes", "MSS we announce (link MTU - 40 for IPv4)", 88, 65495)
    default_peer_mss: int = _f(536, "bytes", "peer's MSS when its SYN has no MSS option "
                                             "(RFC 9293 3.7.1)", 88, 65495)
    rcvbuf: int = _f(256 * 1024, "bytes", "receive buffer: drives the advertised window "
                                          "(SO_RCVBUF)", 256, 1 << 30)
    sndbuf: int = _f(256 * 1024, "bytes", "send buffer (SO_SNDBUF)", 256, 1 << 30)
    rmem_max: int = _f(6 << 20, "bytes", "largest receive buffer a connection may get: "
                                         "setsockopt(SO_RCVBUF) is clamped to it, and the "
                                         "window scale covers it unless SO_RCVBUF was set "
                                         "before the connection opened (Linux: the larger "
                                         "of net.core.rmem_max and tcp_rmem[2], 6 MiB)",
                       2048, 1 << 30)
    sndbuf_max: int = _f(4 << 20, "bytes", "largest send buffer autotuning gives a "
                                           "connection (twice its cwnd) unless SO_SNDBUF was "
                                           "set (Linux tcp_wmem[2], 4 MiB); set it to sndbuf "
                                           "for a fixed buffer", 256, 1 << 30)
    moderate_rcvbuf: bool = _flag(True, "grow a connection's receive buffer to twice what "
                                        "the application reads per RTT, up to rmem_max, "
                                        "unless SO_RCVBUF was set (Linux's receive-buffer "
                                        "autotuning, net.ipv4.tcp_moderate_rcvbuf)")
    wmem_max: int = _f(16 << 20, "bytes", "largest send buffer setsockopt(SO_SNDBUF) may ask "
                                          "for; larger values are clamped (net.core.wmem_max)",
                       2048, 1 << 30)
    # --- options (RFC 7323, RFC 2018) -----------------------------------------------------
    window_scaling: bool = _flag(True, "offer the window scale option (RFC 7323 2)")
    sack: bool = _flag(True, "offer and use selective acknowledgements (RFC 2018)")
    timestamps: bool = _flag(True, "offer the timestamps option, PAWS (RFC 7323 3, 5)")
    dsack: bool = _flag(True, "report duplicate segments with a D-SACK block when SACK is "
                              "in use (RFC 2883; net.ipv4.tcp_dsack)")
    # --- retransmission (RFC 6298) --------------------------------------------------------
    rto_initial: int = _f(1 * SEC, "us", "RTO before the first RTT sample (RFC 6298 2.1)",
                          1 * MS, 3600 * SEC)
    rto_min: int = _f(200 * MS, "us", "lower bound of the RTO (Linux TCP_RTO_MIN)",
                      1 * MS, 60 * SEC)
    rto_max: int = _f(120 * SEC, "us", "upper bound of the RTO (Linux TCP_RTO_MAX)",
                      1 * MS, 3600 * SEC)
    syn_retries: int = _f(6, "count", "SYN retransmissions before ETIMEDOUT "
                                      "(net.ipv4.tcp_syn_retries)", 0, 127)
    synack_retries: int = _f(5, "count", "SYN-ACK retransmissions before the embryonic "
                                         "connection is dropped (net.ipv4.tcp_synack_retries)",
                             0, 255)
    retries2: int = _f(15, "count", "retransmissions of data or FIN before ETIMEDOUT "
                                    "(net.ipv4.tcp_retries2)", 0, 255)
    # --- close sequence -------------------------------------------------------------------
    msl: int = _f(30 * SEC, "us", "maximum segment lifetime: TIME_WAIT lasts 2*MSL",
                  0, 3600 * SEC)
    time_wait: int | None = _f(None, "us", "TIME_WAIT duration instead of 2*MSL; none = "
                                           "2*MSL, 0 = ablation (no TIME_WAIT)", 0, 7200 * SEC)
    rfc1337: bool = _flag(True, "ignore RST in TIME_WAIT (RFC 1337 protection)")
    fin_timeout: int = _f(60 * SEC, "us", "lifetime of an orphaned FIN_WAIT_2 connection "
                                          "(net.ipv4.tcp_fin_timeout)", 0, 86400 * SEC)
    # --- ACKs, Nagle, keepalive ------------------------------------------------------------
    delayed_ack: int = _f(40 * MS, "us", "delayed ACK timeout, 0 = ACK every segment at once; "
                                         "the core caps it at 200 ms (RFC 1122 4.2.3.2)",
                          0, 500 * MS)
    quickack: int = _f(16, "segments", "quick-ACK mode: the first data segments (and the "
                                       "first after an idle RTO) are ACKed at once, up to "
                                       "this many (Linux TCP_MAX_QUICKACKS); 0 = delayed ACKs "
                                       "from the start", 0, 1000)
    nodelay: bool = _flag(False, "disable Nagle's algorithm (TCP_NODELAY)")
    keepalive: bool = _flag(False, "send keep-alive probes on idle connections (SO_KEEPALIVE)")
    keepalive_time: int = _f(7200 * SEC, "us", "idle time before the first keep-alive probe "
                                               "(TCP_KEEPIDLE)", 1 * MS, 32767 * SEC)
    keepalive_intvl: int = _f(75 * SEC, "us", "time between keep-alive probes (TCP_KEEPINTVL)",
                              1 * MS, 32767 * SEC)
    keepalive_probes: int = _f(9, "count", "unanswered keep-alive probes before ETIMEDOUT "
                                           "(TCP_KEEPCNT)", 1, 127)
    # --- persist (zero window) --------------------------------------------------------------
    persist_min: int = _f(200 * MS, "us", "lower bound of the zero-window probe interval",
                          1 * MS, 60 * SEC)
    persist_max: int = _f(60 * SEC, "us", "upper bound of the zero-window probe interval "
                                          "(backoff doubles up to it)", 1 * MS, 3600 * SEC)
    # Linux's net.ipv4.tcp_orphan_retries reads 0 as 8; here the number is literal.
    orphan_retries: int = _f(8, "count", "zero-window probes an orphaned connection (closed by "
                                         "its application) sends before it resets, ETIMEDOUT; "
                                         "0 = RST at the first persist expiry", 0, 255)
    # --- RFC 5961 ----------------------------------------------------------------------------
    challenge_ack_limit: int = _f(1000, "per second", "challenge ACKs sent per second "
                                                      "(RFC 5961 7)", 0, 2**31 - 1)
    syncookies: int = _f(1, "mode", "SYN cookies (RFC 4987 3.6): 0 off, 1 when a listener's "
                                    "SYN queue is full, 2 always (net.ipv4.tcp_syncookies)",
                         0, 2)
    # --- congestion control -------------------------------------------------------------------
    initial_cwnd_segments: int = _f(10, "segments", "initial congestion window (RFC 6928, "
                                                    "Linux)", 1, 1000)
    congestion: str = _choice("cubic", CONGESTION_ALGORITHMS,
                              "congestion control: cubic (RFC 9438 with HyStart++, RFC 9406) "
                              "or reno (NewReno, RFC 5681 + RFC 6582); per socket with "
                              "TCP_CONGESTION (net.ipv4.tcp_congestion_control)")
    rack: bool = _flag(True, "RACK-TLP loss detection (RFC 8985) when SACK is in use; off = "
                             "RFC 6675 duplicate-ACK threshold, no tail loss probe "
                             "(net.ipv4.tcp_recovery bit 1)")
    prr: bool = _flag(True, "Proportional Rate Reduction (RFC 6937) of cwnd during SACK "
                            "recovery; off = RFC 6675 with cwnd = ssthresh at once")
    ecn: int = _f(2, "mode", "explicit congestion notification (RFC 3168): 0 off, 1 ask for "
                             "it on outgoing connections and accept it, 2 accept it when a "
                             "peer asks (net.ipv4.tcp_ecn)", 0, 2)
    undo: bool = _flag(True, "undo a cwnd reduction found spurious by D-SACK or timestamps "
                             "(RFC 3708 / RFC 4015 Eifel response, as Linux's undo)")
    # --- ports ---------------------------------------------------------------------------------
    ephemeral_low: int = _f(32768, "port", "lowest ephemeral port "
                                           "(net.ipv4.ip_local_port_range)", 1, 65535)
    ephemeral_high: int = _f(60999, "port", "highest ephemeral port "
                                            "(net.ipv4.ip_local_port_range)", 1, 65535)
    # --- links -----------------------------------------------------------------------------------
    offload: bool = _flag(False, "TUN GSO/GRO offload (IFF_VNET_HDR); off by default for "
                                 "per-segment realism")

    @property
    def time_wait_duration(self) -> int:
        return 2 * self.msl if self.time_wait is None else self.time_wait

    # ----------------------------------------------------------------------- described fields
    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The field names, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def fields_info(cls) -> list[FieldInfo]:
        """Every field with its type, default, unit, valid range and meaning."""
        out = []
        for f in fields(cls):
            default = None if f.default is MISSING else f.default
            out.append(FieldInfo(f.name, _type_name(f.type), default, f.metadata["unit"],
                                 f.metadata["range"], f.metadata["meaning"],
                                 f.metadata.get("choices")))
        return out

    def validate(self) -> None:
        """Raise ValueError (a one-line message naming the field) if a value is of the wrong
        type or out of its range, or if a lower bound exceeds its upper bound."""
        for info in self.fields_info():
            _check(info, getattr(self, info.name))
        for lo, hi in (("rto_min", "rto_max"), ("persist_min", "persist_max"),
                       ("ephemeral_low", "ephemeral_high")):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"config {lo}={getattr(self, lo)} is above "
                                 f"{hi}={getattr(self, hi)}")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Config:
        """A copy with `overrides` applied, validated. Values are typed (int, bool, None) or
        text as on a command line (see `parse_value`). Unknown keys and bad values raise
        ValueError with one line (an unknown key's message lists the valid keys)."""
        values = {key: check_value(key, value) for key, value in overrides.items()}
        new = replace(self, **values)
        new.validate()
        return new

    @classmethod
    def parse_assignments(cls, texts: Iterable[str]) -> dict[str, Any]:
        """["KEY=VALUE", ...] -> {key: typed value}; ValueError (one line) for bad text.
        A later assignment of the same key wins."""
        out: dict[str, Any] = {}
        for text in texts:
            key, sep, value = text.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"config {text!r}: expected KEY=VALUE "
                                 f"(keys: {', '.join(cls.keys())})")
            out[key] = parse_value(key, value)
        return out


def parse_value(key: str, text: str) -> int | bool | str | None:
    """The text of one value, as on a command line: an integer in the field's unit in plain
    ASCII decimal digits (no suffixes, blanks, '_' or '+'; a leading '-' only where the
    field's range goes below 0), a boolean as 0/1/true/false/on/off/yes/no, "none" where
    None is allowed, one of the choices of a text field (these three in any case, blanks
    around them ignored)."""
    info = _info(key)
    t = text.strip().lower()
    if info.type == "str":
        return t
    if info.type == "bool":
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        raise ValueError(f"config {key}={text!r}: expected a boolean "
                         "(0/1, true/false, on/off, yes/no)")
    if t == "none" and info.type == "int | None":
        return None
    signed = info.range is not None and info.range[0] < 0
    if not (_SIGNED if signed else _DIGITS).fullmatch(text):
        digits = "digits 0-9, a leading '-' for a negative" if signed else "digits 0-9"
        none = ' or "none"' if info.type == "int | None" else ""
        raise ValueError(f"config {key}={text!r}: expected an integer in {info.unit} "
                         f"({digits}){none}")
    return int(text, 10)


def check_value(key: str, value: Any) -> int | bool | str | None:
    """One field's value, typed (text is parsed with `parse_value`) and checked against the
    field's type and range alone (not against other fields: `validate` does that)."""
    info = _info(key)
    typed = parse_value(key, value) if isinstance(value, str) else value
    _check(info, typed)
    return typed


def _type_name(t: Any) -> str:
    text = t if isinstance(t, str) else getattr(t, "__name__", str(t))
    return "int | None" if text in ("int | None", "Optional[int]") else text


def _info(key: str) -> FieldInfo:
    for info in Config.fields_info():
        if info.name == key:
            return info
    raise ValueError(f"unknown config key {key!r} (valid keys: {', '.join(Config.keys())})")


def _check(info: FieldInfo, value: Any) -> None:
    where = f"config {info.name}={value!r}"
    if info.type == "str":
        if value not in (info.choices or ()):
            raise ValueError(f"{where}: expected one of {', '.join(info.choices or ())}; "
                             f"{info.name}: {info.meaning}")
        return
    if info.type == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected a boolean")
        return
    if value is None and info.type == "int | None":
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer in {info.unit}")
    assert info.range is not None
    lo, hi = info.range
    if not lo <= value <= hi:
        raise ValueError(f"{where} is out of range {lo}..{hi} {info.unit}; {info.name}: "
                         f"{info.meaning}")


__all__ = ["CONGESTION_ALGORITHMS", "MS", "SEC", "Config", "FieldInfo", "check_value",
           "parse_value"]
