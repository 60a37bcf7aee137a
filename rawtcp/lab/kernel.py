"""The kernel's view of its TCP sockets inside a namespace, read with `ss -tanoiH state all`.

`kernel_sockets(netns, port)` returns one dict per socket:

  state      RFC 9293 name ("ESTABLISHED", "FIN_WAIT_1", "TIME_WAIT", ...)
  ss_state   ss's own name ("ESTAB", "FIN-WAIT-1", ...)
  recv_q, send_q, local, remote ("addr:port" strings, IPv6 as "[addr]:port"),
  local_addr, local_port, remote_addr, remote_port
  timer      {"name": "on"|"keepalive"|"timewait"|"persist"|"off", "expires_ms", "retrans"}
             or None
  rto_ms, rtt_ms, cwnd, mss, retrans (current), total_retrans, unacked, lost, snd_wnd, ...
             where ss printed them (missing keys: not reported)
  info       every `key:value` token of ss's info line, raw

`StatePoller` samples those states in a thread for a bounded time.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from typing import Self

from rawtcp.host.netns import exec_prefix

SS_TO_RFC = {
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECEIVED",
    "FIN-WAIT-1": "FIN_WAIT_1", "FIN-WAIT-2": "FIN_WAIT_2", "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK", "LISTEN": "LISTEN",
    "CLOSING": "CLOSING", "UNCONN": "CLOSED", "CLOSED": "CLOSED",
}
_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|sec|min|h|d)")
_SEC_DOT_MS = re.compile(r"(?:(\d+)min)?(\d+)\.(\d{3})ms")
_UNIT_MS = {"ms": 1, "sec": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> float | None:
    """ss timer expiry, e.g. "204ms", "59sec", "1min", "1min2sec" -> milliseconds."""
    # iproute2 runs seconds and milliseconds together with a dot: "4.988ms" is 4 s 988 ms.
    m = _SEC_DOT_MS.fullmatch(text)
    if m:
        mins, secs, msecs = m.groups()
        return int(mins or 0) * 60_000 + int(secs) * 1000 + int(msecs)
    parts = _DUR.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_MS[u] for n, u in parts)


def split_endpoint(ep: str) -> tuple[str, int]:
    host, _, port = ep.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%")[0]
    return host, int(port) if port.isdigit() else 0


def _num(v: str) -> int | float | str:
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def parse_timer(text: str) -> dict | None:
    m = re.fullmatch(r"timer:\((\w+),([^,]*),(\d+)\)", text)
    if not m:
        return None
    return {"name": m.group(1), "expires_ms": parse_duration_ms(m.group(2)),
            "retrans": int(m.group(3))}


def parse_info(line: str, sock: dict) -> None:
    info: dict[str, str] = {}
    for tok in line.split():
        if ":" in tok and not tok.startswith("("):
            k, _, v = tok.partition(":")
            info[k] = v
    sock["info"] = info
    if "rto" in info:
        sock["rto_ms"] = _num(info["rto"])
    if "rtt" in info:
        rtt, _, var = info["rtt"].partition("/")
        sock["rtt_ms"], sock["rttvar_ms"] = _num(rtt), _num(var) if var else None
    if "retrans" in info:
        cur, _, tot = info["retrans"].partition("/")
        sock["retrans"], sock["total_retrans"] = int(cur), int(tot or 0)
    for k in ("cwnd", "mss", "unacked", "lost", "snd_wnd", "rcv_space", "ssthresh",
              "bytes_sent", "bytes_acked", "bytes_received", "bytes_retrans", "segs_out",
              "segs_in", "data_segs_out", "data_segs_in", "backoff", "ato"):
        if k in info:
            sock[k] = _num(info[k])
    sock.setdefault("retrans", 0)


def parse_ss(text: str) -> list[dict]:
    """Parse `ss -tanoiH` output (main lines plus tab-indented info lines)."""
    socks: list[dict] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if raw[0] in " \t":
            if socks:
                parse_info(raw, socks[-1])
            continue
        f = raw.split()
        if len(f) < 5 or f[0] == "State":
            continue
        ss_state = f[0]
        la, lp = split_endpoint(f[3])
        ra, rp = split_endpoint(f[4])
        sock: dict = {"state": SS_TO_RFC.get(ss_state, ss_state), "ss_state": ss_state,
                      "recv_q": int(f[1]), "send_q": int(f[2]), "local": f[3], "remote": f[4],
                      "local_addr": la, "local_port": lp, "remote_addr": ra,
                      "remote_port": rp, "timer": None, "retrans": 0}
        for tok in f[5:]:
            if tok.startswith("timer:"):
                sock["timer"] = parse_timer(tok)
        socks.append(sock)
    return socks


def kernel_sockets(netns: str | None, port: int | None = None) -> list[dict]:
    """TCP sockets of the kernel in `netns` (local or remote port == port, if given)."""
    p = subprocess.run(exec_prefix(netns) + ["ss", "-tanoiH", "state", "all"],
                       capture_output=True, text=True, timeout=10, check=False)
    if p.returncode != 0:
        raise OSError(5, f"ss failed in namespace {netns}: {p.stderr.strip()}")
    socks = parse_ss(p.stdout)
    if port is not None:
        socks = [s for s in socks if port in (s["local_port"], s["remote_port"])]
    return socks


class StatePoller:
    """Samples the kernel's TCP states in a thread; records each change.

    samples: list of {"t": seconds since start, "local", "remote", "state"}; a socket that
    disappears is recorded once with state "GONE". Bounded by `duration` seconds.

        with StatePoller(netns, port=5000, duration=10) as poller:
            ...
        poller.states()  ->  ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", ...]
    """

    def __init__(self, netns: str | None, port: int | None = None, interval: float = 0.02,
                 duration: float = 30.0) -> None:
        self.netns, self.port, self.interval, self.duration = netns, port, interval, duration
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def start(self) -> StatePoller:
        self._thread = threading.Thread(target=self._run, daemon=True, name="ss-poller")
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        last: dict[tuple[str, str], str] = {}
        while not self._stop.is_set() and time.monotonic() - t0 < self.duration:
            try:
                socks = kernel_sockets(self.netns, self.port)
            except (OSError, subprocess.TimeoutExpired) as e:
                self.errors.append(str(e))
                break
            t = time.monotonic() - t0
            now = {(s["local"], s["remote"]): s["state"] for s in socks
                   if s["state"] != "LISTEN"}
            for key, st in now.items():
                if last.get(key) != st:
                    self.samples.append({"t": t, "local": key[0], "remote": key[1], "state": st})
            for key in last.keys() - now.keys():
                self.samples.append({"t": t, "local": key[0], "remote": key[1], "state": "GONE"})
            last = now
            self._stop.wait(self.interval)

    def stop(self) -> list[dict]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        return self.samples

    def states(self, local: str | None = None, remote: str | None = None) -> list[str]:
        return [s["state"] for s in self.samples
                if (local is None or s["local"] == local)
                and (remote is None or s["remote"] == remote)]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
