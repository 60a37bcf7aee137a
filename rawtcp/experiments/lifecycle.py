"""Opening and closing against the kernel: handshake, lifecycle, and the two final-ACK drops.

RFC 9293 3.6 (closing a connection) and 3.10.7.4: the side that closes first ends in
TIME-WAIT; the other side retransmits its FIN until it is acknowledged. TIME-WAIT exists so
that the first side can still answer that retransmitted FIN.
"""

from __future__ import annotations

from rawtcp.experiments.base import Run, experiment, is_subsequence, read_to_eof
from rawtcp.experiments.base import connect_kernel as _connect
from rawtcp.experiments.base import echo as _echo

PORT = 7
MESSAGE = b"hello from rawtcp\n" * 8


def _wait_closed(st, s, timeout: float) -> bool:
    t = s.tcb
    return st.wait_for(lambda: t.state.name == "CLOSED", timeout)


@experiment("handshake", title="Three-way handshake with the kernel",
            expect="rawtcp SYN_SENT -> ESTABLISHED; the kernel's socket is ESTABLISHED; "
                   "the SYN-ACK acknowledges our ISN+1")
def handshake(run: Run) -> None:
    """RFC 9293 3.5: SYN, SYN-ACK, ACK. Options negotiated when both sides offer them."""
    with run.tun_lab() as lab:
        srv = lab.server("hold", port=PORT)
        srv.wait_ready()
        st = run.stack(lab)
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st, PORT)
        watch.wait_state("ESTABLISHED", 3.0)
        syn = run.segs("out", "S")
        synack = run.segs("in", "SA")
        run.check("rawtcp went SYN_SENT -> ESTABLISHED",
                  is_subsequence(["SYN_SENT", "ESTABLISHED"], run.states()), run.states())
        run.check("one SYN, one SYN-ACK", len(syn) == 1 and len(synack) == 1,
                  f"{len(syn)} SYN, {len(synack)} SYN-ACK")
        if syn and synack:
            run.check("the SYN-ACK acknowledges ISN+1", synack[0]["ack"] == (syn[0]["seq"] + 1)
                      % (1 << 32), f"ISN {syn[0]['seq']}, SYN-ACK ack {synack[0]['ack']}")
            run.check("MSS, window scale, SACK and timestamps offered",
                      {"mss", "wscale", "sack_perm", "ts"} <= set(syn[0]["opts"]), syn[0]["opts"])
        run.check("the kernel's socket is ESTABLISHED", "ESTABLISHED" in watch.states(),
                  watch.states())
        info = s.tcp_info()
        run.metrics.update({"mss": info.get("mss"), "srtt_us": info.get("srtt")})
        s.close()


@experiment("lifecycle", title="Open, data both ways, full close",
            expect="echoed bytes equal sent bytes; rawtcp FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT, "
                   "CLOSED; the kernel CLOSE_WAIT, LAST_ACK (its FIN, ACKed), CLOSED")
def lifecycle(run: Run) -> None:
    """RFC 9293 3.6 case 1: we close first. The kernel echo server closes 200 ms after our
    FIN, so its ACK and its FIN come in separate segments (FIN_WAIT_2 is visible)."""
    with run.tun_lab() as lab:
        srv = lab.server("echo", port=PORT, close_delay=0.2)
        srv.wait_ready()
        st = run.stack(lab)
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st, PORT)
        got = _echo(s, MESSAGE)
        run.check("the kernel echoed every byte", got == MESSAGE, f"{len(got)}/{len(MESSAGE)} B")
        s.close()
        closed = _wait_closed(st, s, 10.0)
        watch.wait_state("CLOSED", 3.0)
        run.check("rawtcp: ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT, CLOSED",
                  closed and is_subsequence(["ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                             "TIME_WAIT", "CLOSED"], run.states()), run.states())
        # The kernel's LAST_ACK lasts one round trip (well under a millisecond here), too
        # short for `ss` sampling to be sure to see it; the trace shows it instead: the
        # kernel's FIN (which puts it in LAST_ACK) and our ACK of it (which ends it).
        kfin = run.segs("in", "FA")
        our_ack = [e for e in run.segs("out", "A") if kfin and e["t"] >= kfin[0]["t"]]
        run.check("the kernel: CLOSE_WAIT, then CLOSED (seen with ss)",
                  is_subsequence(["CLOSE_WAIT", "CLOSED"], watch.states()), watch.states())
        run.check("the kernel sent its FIN (LAST_ACK) and we ACKed it",
                  len(kfin) == 1 and bool(our_ack),
                  f"kernel FIN at {run.ms(kfin[0]) if kfin else '-'} ms, "
                  f"our ACK at {run.ms(our_ack[0]) if our_ack else '-'} ms")
        run.check("no retransmissions", s.tcp_info().get("total_retrans", 0) == 0,
                  s.tcp_info().get("total_retrans"))


@experiment("final-ack-drop", title="rawtcp closes first; its final ACK is lost",
            expect="the kernel retransmits its FIN; rawtcp answers it from TIME_WAIT; the "
                   "kernel reaches CLOSED")
def final_ack_drop(run: Run) -> None:
    """RFC 9293 3.10.7.4 (TIME-WAIT: "the only thing that can arrive in this state is a
    retransmission of the remote FIN. Acknowledge it, and restart the 2 MSL timeout")."""
    with run.tun_lab() as lab:
        srv = lab.server("echo", port=PORT, close_delay=0.2)
        srv.wait_ready()
        st = run.stack(lab, faults=["drop out flags=A state=TIME_WAIT nth=1"])
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st, PORT)
        _echo(s, MESSAGE)
        s.close()
        closed = _wait_closed(st, s, 15.0)
        watch.wait_state("CLOSED", 3.0)
        drops = run.faults("drop")
        fins = run.segs("in", "FA")
        acks_tw = run.segs("out", "A", state="TIME_WAIT")
        run.check("our first ACK of the kernel's FIN was dropped (in TIME_WAIT)",
                  len(drops) == 1 and drops[0]["flags"] == "A", [d["rule"] for d in drops])
        run.check("the kernel retransmitted its FIN", len(fins) >= 2,
                  f"{len(fins)} FINs from the kernel at "
                  f"{[run.ms(f) for f in fins]} ms")
        late = [f for f in fins[1:] if f.get("state") == "TIME_WAIT"]
        run.check("rawtcp was in TIME_WAIT when the retransmitted FIN arrived", bool(late),
                  [f.get("state") for f in fins])
        run.check("rawtcp re-ACKed it from TIME_WAIT", len(acks_tw) >= 2,
                  f"{len(acks_tw)} ACKs sent in TIME_WAIT (1 dropped)")
        run.check("the kernel: LAST_ACK, then CLOSED",
                  is_subsequence(["LAST_ACK", "CLOSED"], watch.states()), watch.states())
        run.check("rawtcp ended CLOSED after TIME_WAIT",
                  closed and is_subsequence(["TIME_WAIT", "CLOSED"], run.states()), run.states())
        if len(fins) >= 2:
            run.metrics["kernel_fin_rto_ms"] = round((fins[1]["t"] - fins[0]["t"]) / 1000, 1)


@experiment("final-ack-drop-passive", title="The kernel closes first; its final ACK is lost",
            expect="rawtcp (LAST_ACK) retransmits its FIN after its RTO; the kernel re-ACKs "
                   "from TIME_WAIT; rawtcp reaches CLOSED")
def final_ack_drop_passive(run: Run) -> None:
    """RFC 9293 3.10.7.4 (LAST-ACK: our FIN must be acknowledged) and 3.8.1 (retransmission
    timeout): the FIN is retransmitted when the RTO expires."""
    with run.tun_lab() as lab:
        srv = lab.server("source", port=PORT, count=len(MESSAGE))
        srv.wait_ready()
        st = run.stack(lab, faults=["drop in flags=A state=LAST_ACK nth=1"])
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st, PORT)
        got = read_to_eof(s)
        run.check("received the kernel's bytes, then its FIN (EOF)", got ==
                  (b"rawtcp" * len(MESSAGE))[: len(MESSAGE)], f"{len(got)} B")
        run.check("rawtcp is in CLOSE_WAIT", s.tcb.state.name == "CLOSE_WAIT", s.tcb.state.name)
        s.close()
        closed = _wait_closed(st, s, 15.0)
        our_fins = run.segs("out", "FA")
        rtx = [e for e in run.events("retransmit") if "F" in str(e.get("flags", ""))]
        run.check("the kernel's ACK of our FIN was dropped",
                  len(run.faults("drop")) == 1, [d["rule"] for d in run.faults("drop")])
        run.check("rawtcp retransmitted its FIN after its RTO", len(our_fins) >= 2 and bool(rtx),
                  f"FINs at {[run.ms(f) for f in our_fins]} ms")
        run.check("rawtcp: CLOSE_WAIT, LAST_ACK, CLOSED",
                  closed and is_subsequence(["CLOSE_WAIT", "LAST_ACK", "CLOSED"], run.states()),
                  run.states())
        watch.wait_state("TIME_WAIT", 3.0)   # ss samples lag our own CLOSED a little
        run.check("the kernel went through TIME_WAIT", "TIME_WAIT" in watch.states(),
                  watch.states())
        if len(our_fins) >= 2:
            run.metrics["fin_rto_ms"] = round((our_fins[1]["t"] - our_fins[0]["t"]) / 1000, 1)
