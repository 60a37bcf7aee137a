"""Opening that fails: lost SYNs, a closed port, a full accept queue.

RFC 9293 3.8.1 and RFC 6298 5.5 (retransmission with exponential backoff), 3.10.7.1 (a SYN to
a closed port gets RST), 3.10.7.3 (RST in SYN-SENT: "connection refused"); Linux's listen
backlog (accept queue) and net.ipv4.tcp_abort_on_overflow.
"""

from __future__ import annotations

import errno
import itertools
import re
import subprocess
import threading

from rawtcp.core.config import MS, SEC
from rawtcp.experiments.base import Run, experiment, is_subsequence, lab_config, wait_until
from rawtcp.host.netns import exec_prefix
from rawtcp.lab.kernel import kernel_sockets

PORT = 7


def _connect_errno(st, host: str, port: int, timeout: float) -> tuple[object, int]:
    """(socket, errno or 0) of a blocking connect."""
    s = st.socket()
    s.settimeout(timeout)
    return s, s.connect_ex((host, port))


def _intervals_ms(events: list[dict]) -> list[float]:
    return [round((b["t"] - a["t"]) / MS, 1) for a, b in itertools.pairwise(events)]


def _doubles(intervals: list[float], first: float, tol: float = 0.2) -> bool:
    """Each interval is first * 2**i within a relative tolerance."""
    return bool(intervals) and all(abs(x - first * 2 ** i) <= tol * first * 2 ** i
                                   for i, x in enumerate(intervals))


def _sysctl(netns: str, name: str) -> str:
    p = subprocess.run(exec_prefix(netns) + ["sysctl", "-n", name], capture_output=True,
                       text=True, timeout=10, check=False)
    return p.stdout.strip()


def _netstat_counters(netns: str) -> dict[str, int]:
    """TcpExt counters of the namespace (/proc/net/netstat, pairs of header/value lines)."""
    p = subprocess.run(exec_prefix(netns) + ["cat", "/proc/net/netstat"], capture_output=True,
                       text=True, timeout=10, check=False)
    out: dict[str, int] = {}
    lines = p.stdout.splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        hk, hv = head.split(), vals.split()
        if hk and hk[0] == "TcpExt:":
            out.update({k: int(v) for k, v in zip(hk[1:], hv[1:]) if re.fullmatch(r"-?\d+", v)})
    return out


# ------------------------------------------------------------------------ syn-drop
@experiment("syn-drop", title="Every SYN is lost: retransmission schedule, then ETIMEDOUT",
            expect="SYNs leave at 0, RTO, 3 RTO, 7 RTO ... (intervals double from the initial "
                   "RTO of 200 ms); after syn_retries=3 retransmissions connect() fails with "
                   "ETIMEDOUT; the kernel never sees a SYN")
def syn_drop(run: Run) -> None:
    """RFC 6298 5.5 ("back off the timer": RTO doubles at each expiry) applied to the SYN, as
    RFC 9293 3.8.1 asks, with Linux's tcp_syn_retries limit: after the last retransmission
    times out, the open fails (ETIMEDOUT, RFC 9293 3.8.3 R2 for a SYN)."""
    rto0, retries = 200 * MS, 3
    with run.tun_lab() as lab:
        srv = lab.server("hold", port=PORT)
        srv.wait_ready()
        st = run.stack(lab, lab_config(rto_initial=rto0, syn_retries=retries),
                       faults=["drop out flags=S"])
        watch = run.watch_kernel(lab, PORT, st)
        t0 = st.now()
        s, code = _connect_errno(st, lab.kernel_addr, PORT, 10.0)
        t_fail = st.now()
        syns = run.segs("out", "S")
        ivals = _intervals_ms(syns)
        run.check("connect() failed with ETIMEDOUT", code == errno.ETIMEDOUT,
                  f"errno {code} ({errno.errorcode.get(code, code)})")
        run.check(f"1 SYN + {retries} retransmissions, all dropped",
                  len(syns) == retries + 1 and len(run.faults("drop")) == retries + 1,
                  f"{len(syns)} SYNs, {len(run.faults('drop'))} dropped")
        run.check("the intervals double from the initial RTO (200, 400, 800 ms)",
                  _doubles(ivals, rto0 / MS), f"intervals {ivals} ms")
        total = (t_fail - syns[-1]["t"]) / MS if syns else None
        run.check("the failure comes one more backed-off RTO after the last SYN (1600 ms)",
                  total is not None and abs(total - rto0 / MS * 2 ** retries) <= 0.2 * rto0 / MS
                  * 2 ** retries, f"{total and round(total, 1)} ms after the last SYN")
        run.check("rawtcp: SYN_SENT -> CLOSED", is_subsequence(["SYN_SENT", "CLOSED"],
                                                               run.states()), run.states())
        run.check("the kernel never saw a SYN (no SYN_RECEIVED socket)",
                  not watch.states(), watch.states())
        run.metrics.update({
            "syn_times_ms": [round((e["t"] - t0) / MS, 1) for e in syns],
            "syn_intervals_ms": ivals,
            "etimedout_after_ms": round((t_fail - t0) / MS, 1),
            "rto_initial_ms": rto0 / MS, "syn_retries": retries,
        })
        s.close()


# ------------------------------------------------------------------------ refused
@experiment("refused", title="Connect to a closed kernel port",
            expect="the kernel answers our SYN with RST+ACK; connect() fails with "
                   "ECONNREFUSED; rawtcp SYN_SENT -> CLOSED with no retransmission")
def refused(run: Run) -> None:
    """RFC 9293 3.10.7.1 (CLOSED: a SYN is answered with <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
    <CTL=RST,ACK>) and 3.10.7.3 (SYN-SENT: an RST with an acceptable ACK means "error:
    connection reset", which sockets report as ECONNREFUSED)."""
    closed_port = 9
    with run.tun_lab() as lab:
        st = run.stack(lab)
        watch = run.watch_kernel(lab, closed_port, st)
        s, code = _connect_errno(st, lab.kernel_addr, closed_port, 5.0)
        syns = run.segs("out", "S")
        rst = [e for e in run.segs("in") if "R" in e["flags"]]
        run.check("connect() failed with ECONNREFUSED", code == errno.ECONNREFUSED,
                  f"errno {code} ({errno.errorcode.get(code, code)})")
        run.check("one SYN, no retransmission", len(syns) == 1, f"{len(syns)} SYN")
        run.check("the kernel answered with RST+ACK acknowledging SYN+1",
                  len(rst) == 1 and rst[0]["flags"] == "RA" and bool(syns)
                  and rst[0]["ack"] == (syns[0]["seq"] + 1) % (1 << 32),
                  f"{[(e['flags'], e['seq'], e['ack']) for e in rst]}, "
                  f"SYN seq {syns[0]['seq'] if syns else None}")
        run.check("rawtcp: SYN_SENT -> CLOSED", run.states() == ["SYN_SENT", "CLOSED"],
                  run.states())
        errs = run.events("error")
        run.check("the error is traced", any(e.get("errno") == errno.ECONNREFUSED for e in errs),
                  [e.get("message") for e in errs])
        run.check("the kernel kept no socket for it", not watch.states(), watch.states())
        if syns and rst:
            run.metrics["refused_after_ms"] = round((rst[0]["t"] - syns[0]["t"]) / MS, 2)
        s.close()


# ------------------------------------------------------------------------ backlog-overflow
@experiment("backlog-overflow", title="A kernel listener with backlog 1 that never accepts",
            expect="the accept queue holds backlog+1 = 2 connections; the kernel silently drops "
                   "later SYNs (tcp_abort_on_overflow=0: no RST), so further rawtcp connects "
                   "retransmit their SYNs and time out; ListenOverflows counts the drops")
def backlog_overflow(run: Run) -> None:
    """RFC 9293 3.10.7.2 leaves queueing to the implementation. Linux: listen(fd, 1) sets
    sk_max_ack_backlog = 1 and the queue is full when more than that many connections wait
    (so 2 fit); tcp_conn_request() drops a SYN while the accept queue is full (TcpExt
    ListenOverflows, ListenDrops), and with net.ipv4.tcp_abort_on_overflow = 0 nothing is
    sent back, so the client retransmits its SYN (RFC 6298 5.5) until it gives up."""
    rto0, retries = 200 * MS, 3
    n_conns = 4
    with run.tun_lab() as lab:
        srv = lab.server("hold", port=PORT, backlog=1, no_accept=True)
        srv.wait_ready()
        abort = _sysctl(lab.kernel_netns, "net.ipv4.tcp_abort_on_overflow")
        before = _netstat_counters(lab.kernel_netns)
        st = run.stack(lab, lab_config(rto_initial=rto0, syn_retries=retries))
        watch = run.watch_kernel(lab, PORT, st)
        socks, codes = [], []
        # Two connections one after the other (they fill the queue) ...
        for _ in range(2):
            s, code = _connect_errno(st, lab.kernel_addr, PORT, 10.0)
            socks.append(s)
            codes.append(code)
        wait_until(lambda: sum(1 for k in kernel_sockets(lab.kernel_netns, PORT)
                               if k["state"] == "ESTABLISHED") >= 2, 2.0)
        # ... then two more at the same time.
        results: dict[int, tuple] = {}

        def late(i: int) -> None:
            results[i] = _connect_errno(st, lab.kernel_addr, PORT, 10.0)

        threads = [threading.Thread(target=late, args=(i,)) for i in range(2, n_conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15.0)
        for i in range(2, n_conns):
            s, code = results.get(i, (None, -1))
            socks.append(s)
            codes.append(code)
        after = _netstat_counters(lab.kernel_netns)
        listener = [k for k in kernel_sockets(lab.kernel_netns, PORT) if k["state"] == "LISTEN"]
        per_conn = []
        for s in socks:
            conn = s.tcb.conn if s is not None and s.tcb is not None else None
            syn = [e for e in run.segs("out", "S") if e.get("conn") == conn]
            synack = [e for e in run.segs("in", "SA") if e.get("conn") == conn]
            per_conn.append({"conn": conn, "syns": len(syn), "synacks": len(synack),
                             "intervals_ms": _intervals_ms(syn)})
        ok_codes = [errno.errorcode.get(c, c) if c else "OK" for c in codes]
        run.check("net.ipv4.tcp_abort_on_overflow is 0 (the default)", abort == "0", abort)
        run.check("the first two connections completed (accept queue: backlog + 1 = 2)",
                  codes[:2] == [0, 0], ok_codes)
        run.check("the listener's accept queue is full: Recv-Q 2, max 1",
                  bool(listener) and listener[0]["recv_q"] == 2 and listener[0]["send_q"] == 1,
                  [(k["recv_q"], k["send_q"]) for k in listener])
        run.check("the later connections timed out (ETIMEDOUT), not refused",
                  codes[2:] == [errno.ETIMEDOUT] * (n_conns - 2), ok_codes)
        late_ = per_conn[2:]
        run.check(f"their SYNs got no answer: {retries + 1} SYNs each, no SYN-ACK, no RST",
                  all(c["syns"] == retries + 1 and c["synacks"] == 0 for c in late_)
                  and not [e for e in run.segs("in") if "R" in e["flags"]],
                  [(c["syns"], c["synacks"]) for c in late_])
        run.check("their SYN retransmissions backed off (200, 400, 800 ms)",
                  all(_doubles(c["intervals_ms"], rto0 / MS) for c in late_),
                  [c["intervals_ms"] for c in late_])
        d_over = after.get("ListenOverflows", 0) - before.get("ListenOverflows", 0)
        d_drops = after.get("ListenDrops", 0) - before.get("ListenDrops", 0)
        run.check("the kernel counted every dropped SYN as a listen overflow",
                  d_over == (n_conns - 2) * (retries + 1) and d_drops >= d_over,
                  f"ListenOverflows +{d_over}, ListenDrops +{d_drops}")
        run.check("the kernel shows exactly 2 ESTABLISHED connections, no SYN_RECEIVED",
                  sorted(k["state"] for k in kernel_sockets(lab.kernel_netns, PORT)
                         if k["state"] != "LISTEN") == ["ESTABLISHED"] * 2, watch.states())
        run.metrics.update({"connections": per_conn, "connect_results": ok_codes,
                            "listen_overflows": d_over, "listen_drops": d_drops,
                            "tcp_abort_on_overflow": abort, "backlog": 1,
                            "timed_out_after_s": round((rto0 * (2 ** (retries + 1) - 1)) / SEC,
                                                       2)})
        for s in socks:
            if s is not None:
                s.close()


__all__ = ["backlog_overflow", "refused", "syn_drop"]
