"""Measuring the kernel itself: how long Linux keeps TIME_WAIT.

RFC 9293 3.6: TIME-WAIT lasts 2 MSL. Linux fixes it at TCP_TIMEWAIT_LEN = 60 s (a compile-
time constant, include/net/tcp.h); net.ipv4.tcp_fin_timeout sets only how long an orphaned
FIN_WAIT_2 socket lives, although its name is often read as the TIME_WAIT length.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

from rawtcp.experiments.base import Run, experiment, lab_config, wait_until
from rawtcp.host.netns import exec_prefix
from rawtcp.lab.kernel import kernel_sockets

PORT = 7
FIN_TIMEOUT_S = 5
TCP_TIMEWAIT_LEN_S = 60
FULL_ENV = "RAWTCP_FULL_TIME_WAIT"


def _kernel_sock(netns: str, rawtcp_port: int) -> dict | None:
    for k in kernel_sockets(netns, PORT):
        if k["state"] != "LISTEN" and k["remote_port"] == rawtcp_port:
            return k
    return None


def _read_to_eof(s) -> int:
    n = 0
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return n
        n += len(chunk)


_SS_TIMER = re.compile(r"^(?:(\d+)min)?(?:(\d+)sec)?(?:(\d+)\.(\d{3})ms|(\d+)ms)?$")


def ss_timer_seconds(text: str) -> float | None:
    """An `ss -o` timer expiry in seconds. iproute2 prints it as minutes, seconds and
    milliseconds run together: "59sec", "1min2sec", "200ms", and "4.988ms" for 4 s 988 ms
    (seconds, a dot, then milliseconds)."""
    m = _SS_TIMER.match(text)
    if not m or not text:
        return None
    mins, secs, s_dot, ms_dot, ms = m.groups()
    total = int(mins or 0) * 60 + int(secs or 0)
    if s_dot is not None:
        total += int(s_dot) + int(ms_dot) / 1000
    if ms is not None:
        total += int(ms) / 1000
    return round(float(total), 3)


def _timers(netns: str) -> dict[int, tuple[str, float | None]]:
    """{rawtcp's port: (timer name, seconds left)} for the kernel's sockets on PORT, read from
    the raw `ss -tanoH` text (rawtcp.lab.kernel's parser reads "4.988ms" as 4.988 ms)."""
    p = subprocess.run(exec_prefix(netns) + ["ss", "-tanoH", "state", "all"],
                       capture_output=True, text=True, timeout=10, check=False)
    out: dict[int, tuple[str, float | None]] = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) < 5 or not f[3].endswith(f":{PORT}"):
            continue
        m = re.search(r"timer:\((\w+),([^,]*),\d+\)", line)
        if m:
            out[int(f[4].rpartition(":")[2])] = (m.group(1), ss_timer_seconds(m.group(2)))
    return out


def _timer_s(netns: str, rawtcp_port: int) -> float | None:
    return _timers(netns).get(rawtcp_port, ("", None))[1]


@experiment("kernel-time-wait", title="How long Linux keeps TIME_WAIT (not tcp_fin_timeout)",
            expect="with net.ipv4.tcp_fin_timeout = 5 the kernel's TIME_WAIT timer still starts "
                   "at ~60 s and the socket outlives 5 s, while an orphaned FIN_WAIT_2 socket "
                   "is gone after ~5 s; set RAWTCP_FULL_TIME_WAIT=1 to wait out the whole 60 s",
            slow=True)
def kernel_time_wait(run: Run) -> None:
    """RFC 9293 3.6 / 3.10.7.4 (2 MSL TIME-WAIT). Two connections to a kernel server that
    closes first: on A rawtcp closes too, so the kernel goes FIN_WAIT_2 -> TIME_WAIT; on B
    rawtcp never closes, so the kernel's orphaned socket waits in FIN_WAIT_2. `ss -o` shows
    each socket's timer (timer:(timewait,59sec,0)). tcp_fin_timeout bounds B, not A."""
    full = os.environ.get(FULL_ENV, "") not in ("", "0")
    with run.tun_lab() as lab:
        ns = lab.kernel_netns
        subprocess.run(exec_prefix(ns) + ["sysctl", "-qw",
                                          f"net.ipv4.tcp_fin_timeout={FIN_TIMEOUT_S}"],
                       check=True, timeout=10)
        fin_timeout = subprocess.run(exec_prefix(ns) + ["sysctl", "-n",
                                                        "net.ipv4.tcp_fin_timeout"],
                                     capture_output=True, text=True, timeout=10,
                                     check=True).stdout.strip()
        srv = lab.server("source", port=PORT, count=100, max_conns=2,
                         timeout=120 if full else 30)
        srv.wait_ready()
        st = run.stack(lab, lab_config())
        watch = run.watch_kernel(lab, PORT, st)
        a = st.socket()
        a.settimeout(5.0)
        a.connect((lab.kernel_addr, PORT))
        got_a = _read_to_eof(a)
        pa = a.getsockname()[1]      # (a closed socket has no name: EBADF, as CPython's)
        a.close()
        in_tw = wait_until(lambda: (_kernel_sock(ns, pa) or {}).get("state") == "TIME_WAIT", 3.0)
        t_tw = time.monotonic()
        k_a0, tw0 = _kernel_sock(ns, pa), _timer_s(ns, pa)
        b = st.socket()
        b.settimeout(5.0)
        b.connect((lab.kernel_addr, PORT))
        got_b = _read_to_eof(b)   # the kernel closed; rawtcp stays in CLOSE_WAIT
        pb = b.getsockname()[1]
        in_fw2 = wait_until(lambda: (_kernel_sock(ns, pb) or {}).get("state") == "FIN_WAIT_2",
                            3.0)
        t_fw2 = time.monotonic()
        k_b0, fw0 = _kernel_sock(ns, pb), _timer_s(ns, pb)
        run.check("net.ipv4.tcp_fin_timeout is 5 in the kernel's namespace",
                  fin_timeout == str(FIN_TIMEOUT_S), fin_timeout)
        run.check("connection A: the kernel closed first and is in TIME_WAIT",
                  got_a == 100 and in_tw, f"{got_a} B read; kernel {k_a0 and k_a0['state']}")
        run.check("right after entering, its TIME_WAIT timer shows ~60 s (TCP_TIMEWAIT_LEN), "
                  "not tcp_fin_timeout",
                  tw0 is not None and 55 <= tw0 <= TCP_TIMEWAIT_LEN_S,
                  f"{tw0} s left")
        run.check("connection B: the kernel's orphaned FIN_WAIT_2 timer shows <= tcp_fin_timeout",
                  got_b == 100 and in_fw2 and fw0 is not None
                  and FIN_TIMEOUT_S - 1 <= fw0 <= FIN_TIMEOUT_S,
                  f"kernel {k_b0 and k_b0['state']}, {fw0} s left")
        # tcp_fin_timeout ends B ...
        b_gone = wait_until(lambda: _kernel_sock(ns, pb) is None, FIN_TIMEOUT_S + 2, step=0.05)
        b_life = time.monotonic() - t_fw2
        k_a1, tw1 = _kernel_sock(ns, pa), _timer_s(ns, pa)
        a_age = time.monotonic() - t_tw
        run.check("B's FIN_WAIT_2 socket is gone after ~tcp_fin_timeout",
                  b_gone and b_life <= FIN_TIMEOUT_S + 1.0, f"gone after {b_life:.2f} s")
        run.check("... while A is still in TIME_WAIT, its timer counting down from 60 s",
                  k_a1 is not None and k_a1["state"] == "TIME_WAIT" and a_age > FIN_TIMEOUT_S
                  and tw1 is not None and abs(tw1 - (TCP_TIMEWAIT_LEN_S - a_age)) <= 2.0,
                  f"after {a_age:.2f} s: {k_a1 and k_a1['state']}, {tw1} s left")
        # rawtcp's late FIN on B meets a kernel that forgot the connection: RST.
        b.close()
        rst = wait_until(lambda: any("R" in e["flags"] and e.get("conn") == b.tcb.conn
                                     for e in run.segs("in")), 3.0)
        run.check("rawtcp's late FIN on B was answered with RST by the kernel", rst,
                  [e["flags"] for e in run.segs("in") if e.get("conn") == b.tcb.conn])
        run.metrics.update({
            "tcp_fin_timeout_s": FIN_TIMEOUT_S,
            "time_wait_timer_at_entry_s": tw0,
            "fin_wait_2_timer_at_entry_s": fw0,
            "fin_wait_2_lifetime_s": round(b_life, 2),
            "time_wait_timer_left_s": {round(a_age, 2): tw1},
        })
        if full:
            watch.stop()
            a_gone = wait_until(lambda: _kernel_sock(ns, pa) is None,
                                TCP_TIMEWAIT_LEN_S + 15, step=0.1)
            life = time.monotonic() - t_tw
            run.check("(full) A's TIME_WAIT lasted ~60 s",
                      a_gone and TCP_TIMEWAIT_LEN_S - 2 <= life <= TCP_TIMEWAIT_LEN_S + 5,
                      f"gone after {life:.1f} s")
            run.metrics["time_wait_lifetime_s"] = round(life, 1)


__all__ = ["kernel_time_wait", "ss_timer_seconds"]
