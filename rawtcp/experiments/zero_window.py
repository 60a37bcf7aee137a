"""Flow control against the kernel: a receiver that stops reading.

RFC 9293 3.8.6.1 (zero-window probing), RFC 1122 4.2.2.17 (probe a zero window, back off
exponentially, keep the connection open), RFC 9293 3.10.7.4 (a segment beyond the window is
not sent: "the sending TCP must ... not send new data" into a zero window).
"""

from __future__ import annotations

import hashlib
import itertools
import sys

from rawtcp.core.config import MS
from rawtcp.experiments.base import Run, experiment, lab_config, wait_until
from rawtcp.host.netns import exec_prefix
from rawtcp.lab.peers import KernelPeer

PORT = 7

# A kernel receiver with a tiny SO_RCVBUF that accepts, reads nothing for HOLD seconds, then
# reads to EOF and reports what it got (JSON lines like rawtcp.lab.peer_main).
_SLOW_READER = r"""
import hashlib, json, socket, sys, threading, time, os
port, rcvbuf = int(sys.argv[1]), int(sys.argv[2])
hold, limit = float(sys.argv[3]), float(sys.argv[4])
t0 = time.monotonic()
def emit(ev, **kw):
    sys.stdout.write(json.dumps({"t": round(time.monotonic() - t0, 6), "event": ev, **kw}) + "\n")
    sys.stdout.flush()
threading.Timer(limit, lambda: (emit("timeout"), os._exit(3))).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
s.bind(("0.0.0.0", port))
s.listen(1)
emit("listening", port=port, rcvbuf=s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
c, peer = s.accept()
emit("accepted", peer=list(peer))
time.sleep(hold)
emit("reading")
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d)
    n += len(d)
emit("eof", bytes=n, sha256=h.hexdigest())
c.close()
emit("done")
os._exit(0)
"""


def slow_reader(netns: str, port: int, rcvbuf: int, hold: float, limit: float = 30.0) -> KernelPeer:
    """A kernel peer (not started) that holds its receive buffer full for `hold` seconds."""
    p = KernelPeer(netns, [])
    p.argv = exec_prefix(netns) + [sys.executable, "-c", _SLOW_READER, str(port), str(rcvbuf),
                                   str(hold), str(limit)]
    return p


def _zero_window_violations(events: list[dict]) -> tuple[list[dict], int]:
    """Data segments we sent while the last window the kernel advertised was zero, and the
    number of zero-window advertisements seen. Events are in trace order."""
    zero = False
    bad, zeros = [], 0
    for e in events:
        if e.get("ev") != "seg":
            continue
        if e["dir"] == "in" and "A" in e["flags"]:
            zero = e["win"] == 0
            zeros += zero
        elif e["dir"] == "out" and zero and e["len"] > 0:
            bad.append(e)
    return bad, zeros


@experiment("zero-window", title="The kernel stops reading: zero window and persist probes",
            expect="rawtcp fills the kernel's small window, sees a zero window, sends window "
                   "probes at growing intervals and never sends data into the zero window; when "
                   "the kernel reads again the transfer completes with identical bytes")
def zero_window(run: Run) -> None:
    """RFC 9293 3.8.6.1 and RFC 1122 4.2.2.17: when the offered window is zero the sender
    keeps a persist timer and probes; the interval backs off exponentially (here from
    rto_min = 200 ms); the window reopens with the receiver's window update."""
    hold = 3.6
    data = bytes(range(256)) * 400  # 100 KiB
    with run.tun_lab() as lab:
        peer = slow_reader(lab.kernel_netns, PORT, rcvbuf=4096, hold=hold)
        try:
            peer.start()
            ready = peer.wait_ready()
            st = run.stack(lab, lab_config())
            s = st.socket()
            s.settimeout(10.0)
            s.connect((lab.kernel_addr, PORT))
            peer.wait_event("accepted", 3.0)
            s.sendall(data)          # fits in rawtcp's send buffer; goes out as the window lets
            s.close()                # FIN after the data
            saw_zero = wait_until(lambda: any(e["win"] == 0 for e in run.segs("in")), 3.0)
            peer.wait_event("reading", hold + 2)
            eof = peer.wait_event("eof", 15.0)
            st.wait_for(lambda: s.tcb.state.name in ("TIME_WAIT", "CLOSED"), 5.0)
        finally:
            peer.stop()
        events = run.events()
        t_read = None
        zero_at = [e for e in run.segs("in") if e["win"] == 0]
        timers = [e for e in run.events("timer") if e.get("name") == "persist"
                  and e.get("action") == "fired"]
        # Probes: our empty ACKs at SND.UNA - 1 while the window is zero.
        probes = [e for e in run.segs("out") if e["len"] == 0 and e["flags"] == "A"
                  and zero_at and e["t"] > zero_at[0]["t"] and e.get("rseq") is not None
                  and any(z["rack"] == e["rseq"] + 1 for z in zero_at)]
        reopen = [e for e in run.segs("in") if e["win"] > 0 and zero_at
                  and e["t"] > zero_at[0]["t"]]
        if reopen:
            t_read = reopen[0]["t"]
            probes = [p for p in probes if p["t"] < t_read]
        ivals = [round((b["t"] - a["t"]) / MS, 1) for a, b in itertools.pairwise(probes)]
        bad, zeros = _zero_window_violations(events)
        run.check("the kernel's receive buffer is tiny", ready.get("rcvbuf", 1 << 30) <= 16384,
                  f"SO_RCVBUF {ready.get('rcvbuf')}")
        run.check("the kernel advertised a zero window", saw_zero and zeros > 0,
                  f"{zeros} zero-window ACKs, first at "
                  f"{round(zero_at[0]['t'] / MS, 1) if zero_at else None} ms")
        run.check("rawtcp sent window probes while the window was zero (at least 4)",
                  len(probes) >= 4 and len(timers) >= 4,
                  f"{len(probes)} probes, {len(timers)} persist timer expiries")
        run.check("the probe interval grows (each at least 1.5x the previous)",
                  len(ivals) >= 3 and all(b >= 1.5 * a for a, b in itertools.pairwise(ivals)),
                  f"intervals {ivals} ms")
        run.check("rawtcp never sent data into the zero window", not bad,
                  f"{len(bad)} data segments sent while the window was zero "
                  f"{[(e['rseq'], e['len']) for e in bad[:5]]}")
        run.check("the window reopened when the kernel read, and the transfer resumed",
                  bool(reopen) and any(e["len"] > 0 and e["t"] > t_read for e in run.segs("out")),
                  f"window update at {t_read and round(t_read / MS, 1)} ms")
        run.check("the kernel received every byte intact (sha256)",
                  eof.get("bytes") == len(data)
                  and eof.get("sha256") == hashlib.sha256(data).hexdigest(),
                  f"{eof.get('bytes')}/{len(data)} B")
        run.metrics.update({"probe_intervals_ms": ivals, "probes": len(probes),
                            "zero_window_acks": zeros, "kernel_rcvbuf": ready.get("rcvbuf"),
                            "hold_s": hold})


__all__ = ["slow_reader", "zero_window"]
