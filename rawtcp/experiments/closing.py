"""Closing against the kernel: why TIME-WAIT exists, simultaneous close, abortive close,
TIME-WAIT assassination and the FIN_WAIT_2 / CLOSE_WAIT leak.

RFC 9293 3.6 (closing), 3.10.7.4 (TIME-WAIT, CLOSING), 3.10.5 (ABORT); RFC 1337 (TIME-WAIT
hazards); Linux's tcp_fin_timeout for orphaned FIN_WAIT_2 sockets.
"""

from __future__ import annotations

import errno

from rawtcp.core.config import MS, SEC
from rawtcp.experiments.base import Run, experiment, is_subsequence, lab_config, wait_until
from rawtcp.experiments.base import connect_kernel as _connect
from rawtcp.experiments.base import echo as _echo
from rawtcp.experiments.base import wait_state as _wait_state
from rawtcp.lab.kernel import kernel_sockets

PORT = 7
MESSAGE = b"close me gently\n" * 4


def _kernel_conn_states(lab, port: int = PORT) -> list[str]:
    return [k["state"] for k in kernel_sockets(lab.kernel_netns, port) if k["state"] != "LISTEN"]


def _tsec(ev: dict) -> float:
    return round(ev["t"] / SEC, 3)


# ------------------------------------------------------------------------ time-wait-ablation
@experiment("time-wait-ablation", title="No TIME_WAIT: the retransmitted FIN meets a closed port",
            expect="with time_wait=0 rawtcp's final ACK is lost; the kernel retransmits its FIN, "
                   "rawtcp has no connection any more and answers RST; the kernel's socket dies "
                   "by that RST instead of closing cleanly")
def time_wait_ablation(run: Run) -> None:
    """RFC 9293 3.6 and 3.10.7.4: TIME-WAIT keeps the connection so that a retransmitted FIN
    can be ACKed again. Without it (Config(time_wait=0)) the FIN reaches a port with no
    connection, and RFC 9293 3.10.7.1 (CLOSED) says: answer with RST."""
    # Relative sequence numbers: SYN 0, data 1..n, our FIN n+1, our final ACK n+2.
    final_ack_seq = len(MESSAGE) + 2
    with run.tun_lab() as lab:
        srv = lab.server("echo", port=PORT, close_delay=0.05)
        srv.wait_ready()
        st = run.stack(lab, lab_config(time_wait=0),
                       faults=[f"drop out flags=A seq={final_ack_seq} nth=1"])
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st)
        got = _echo(s, MESSAGE)
        run.check("the kernel echoed every byte", got == MESSAGE, f"{len(got)}/{len(MESSAGE)} B")
        s.close()
        closed = _wait_state(st, s, "CLOSED", 5.0)
        t_closed = st.now()
        # The kernel is in LAST_ACK; wait for its retransmitted FIN and our RST.
        wait_until(lambda: any(e["flags"] in ("R", "RA") for e in run.segs("out")), 5.0)
        gone = watch.wait_state("CLOSED", 3.0)
        rsts = [e for e in run.segs("out") if "R" in e["flags"]]
        fins = run.segs("in", "FA")
        drops = run.faults("drop")
        tw = [e for e in run.events("state") if e.get("new") == "TIME_WAIT"]
        run.check("our final ACK (the ACK of the kernel's FIN) was dropped",
                  len(drops) == 1 and drops[0]["flags"] == "A", [d["rule"] for d in drops])
        run.check("rawtcp went straight from TIME_WAIT to CLOSED (no 2 MSL wait)",
                  closed and is_subsequence(["FIN_WAIT_1", "TIME_WAIT", "CLOSED"], run.states())
                  and bool(tw) and t_closed - tw[0]["t"] < 100 * MS,
                  f"{run.states()}; CLOSED {round((t_closed - tw[0]['t']) / MS, 1) if tw else '?'}"
                  " ms after TIME_WAIT")
        run.check("the kernel retransmitted its FIN", len(fins) >= 2,
                  f"kernel FINs at {[_tsec(f) for f in fins]} s")
        late = [f for f in fins[1:] if f.get("state") == "CLOSED"]
        run.check("the retransmitted FIN found no connection at rawtcp", bool(late),
                  [f.get("state") for f in fins])
        run.check("rawtcp answered it with RST", bool(rsts) and bool(late)
                  and rsts[0]["t"] >= late[0]["t"],
                  f"RST {[(r['flags'], _tsec(r)) for r in rsts]}")
        run.check("the kernel's socket went LAST_ACK -> gone (killed by the RST)",
                  gone and is_subsequence(["LAST_ACK", "CLOSED"], watch.states())
                  and not _kernel_conn_states(lab), watch.states())
        last_ack = [k for k in watch.samples if k["state"] == "LAST_ACK"]
        dead = [k for k in watch.samples if k["state"] == "CLOSED"]
        if last_ack and dead and rsts:
            run.metrics["kernel_last_ack_ms"] = round((dead[-1]["t"] - last_ack[0]["t"]) / MS, 1)
            run.metrics["rst_to_kernel_gone_ms"] = round((dead[-1]["t"] - rsts[0]["t"]) / MS, 1)
        if len(fins) >= 2:
            run.metrics["kernel_fin_rto_ms"] = round((fins[1]["t"] - fins[0]["t"]) / MS, 1)


# ------------------------------------------------------------------------ simultaneous-close
@experiment("simultaneous-close", title="Both FINs cross on the wire",
            expect="rawtcp FIN_WAIT_1 -> CLOSING -> TIME_WAIT; the kernel FIN_WAIT_1 -> CLOSING "
                   "-> TIME_WAIT; both sides end in TIME_WAIT")
def simultaneous_close(run: Run) -> None:
    """RFC 9293 3.6 case 2 (simultaneous close, figure 13): each side sends FIN before it
    receives the other's; each ACKs the other's FIN from CLOSING and enters TIME-WAIT when its
    own FIN is acknowledged (3.10.7.4, CLOSING state). Incoming segments are delayed 300 ms, so
    the kernel's FIN is still in flight when rawtcp closes, and the kernel's ACK of our FIN
    arrives after its FIN."""
    with run.tun_lab() as lab:
        # "source" with 0 bytes: the kernel closes right after accept().
        srv = lab.server("source", port=PORT, count=0)
        srv.wait_ready()
        st = run.stack(lab, faults=["delay in ms=300"])
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st)
        kernel_fin_sent = watch.wait_state("FIN_WAIT_1", 3.0)
        run.check("the kernel closed first (FIN_WAIT_1) while its FIN is still on its way",
                  kernel_fin_sent and s.tcb.state.name == "ESTABLISHED",
                  f"kernel {watch.states()}, rawtcp {s.tcb.state.name}")
        s.close()
        tw = _wait_state(st, s, "TIME_WAIT", 5.0)
        watch.wait_state("TIME_WAIT", 3.0)
        closed = _wait_state(st, s, "CLOSED", 5.0)
        our_fin = run.segs("out", "FA")
        their_fin = run.segs("in", "FA")
        run.check("rawtcp: ESTABLISHED, FIN_WAIT_1, CLOSING, TIME_WAIT, CLOSED",
                  tw and closed and is_subsequence(["ESTABLISHED", "FIN_WAIT_1", "CLOSING",
                                                    "TIME_WAIT", "CLOSED"], run.states())
                  and "FIN_WAIT_2" not in run.states(), run.states())
        run.check("the kernel's FIN reached rawtcp in FIN_WAIT_1 (the FINs crossed)",
                  bool(their_fin) and their_fin[0].get("state") == "FIN_WAIT_1"
                  and bool(our_fin) and our_fin[0]["t"] < their_fin[0]["t"],
                  f"our FIN at {[_tsec(f) for f in our_fin]} s, theirs processed at "
                  f"{[(_tsec(f), f.get('state')) for f in their_fin]}")
        run.check("the kernel went FIN_WAIT_1 -> CLOSING -> TIME_WAIT",
                  is_subsequence(["FIN_WAIT_1", "CLOSING", "TIME_WAIT"], watch.states()),
                  watch.states())
        acks = run.segs("out", "A", state="CLOSING")
        run.check("rawtcp ACKed the kernel's FIN from CLOSING", bool(acks),
                  f"{len(acks)} ACKs sent in CLOSING")


# ------------------------------------------------------------------------ linger-abort
@experiment("linger-abort", title="SO_LINGER {1, 0}: close() aborts with RST",
            expect="rawtcp sends RST instead of FIN and is CLOSED at once (no TIME_WAIT); the "
                   "kernel application's recv() fails with ECONNRESET; the kernel socket is gone")
def linger_abort(run: Run) -> None:
    """RFC 9293 3.10.5 (ABORT call: send a reset, delete the TCB) as reached by close() with
    SO_LINGER on and a zero linger time; RFC 9293 3.10.7.4 second (RST received in
    ESTABLISHED: the user gets "connection reset")."""
    data = b"x" * 5000
    with run.tun_lab() as lab:
        srv = lab.server("sink", port=PORT)
        srv.wait_ready()
        st = run.stack(lab)
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st)
        s.sendall(data)
        acked = st.wait_for(lambda: s.tcb.info()["unacked"] == 0, 5.0)
        run.check("the kernel acknowledged our data before the abort", acked,
                  s.tcb.info()["unacked"])
        s.setsockopt(1, 13, (1, 0))  # SOL_SOCKET, SO_LINGER
        s.close()
        err = None
        try:
            err = srv.wait_event("error", 5.0)
        except OSError as e:
            err = {"errno": None, "why": str(e)}
        out = run.segs("out")
        rsts = [e for e in out if "R" in e["flags"]]
        fins = [e for e in out if "F" in e["flags"]]
        run.check("rawtcp sent RST and no FIN", len(rsts) == 1 and not fins,
                  f"RST {[(r['flags'], r['rseq']) for r in rsts]}, {len(fins)} FIN")
        run.check("rawtcp: ESTABLISHED -> CLOSED, no TIME_WAIT",
                  is_subsequence(["ESTABLISHED", "CLOSED"], run.states())
                  and "TIME_WAIT" not in run.states() and "FIN_WAIT_1" not in run.states(),
                  run.states())
        run.check("the kernel application's recv() failed with ECONNRESET",
                  err is not None and err.get("errno") == errno.ECONNRESET, err)
        gone = wait_until(lambda: not _kernel_conn_states(lab), 3.0)
        run.check("the kernel's socket is gone", gone,
                  f"ss now: {_kernel_conn_states(lab)}; sampled: {watch.states()}")
        if rsts and err and "t" in err:
            run.metrics["rst_at_s"] = _tsec(rsts[0])


# ------------------------------------------------------------------------ close-wait-leak
@experiment("close-wait-leak", title="The kernel application never closes: CLOSE_WAIT leak",
            expect="the kernel sits in CLOSE_WAIT, rawtcp in FIN_WAIT_2 until its fin_timeout "
                   "(2 s), then rawtcp is CLOSED while the kernel is still CLOSE_WAIT; the "
                   "kernel's late FIN is answered with RST")
def close_wait_leak(run: Run) -> None:
    """RFC 9293 3.10.7.4 (FIN-WAIT-2 waits for the peer's FIN for ever) and Linux's
    net.ipv4.tcp_fin_timeout, which bounds it for an orphaned socket; CLOSE_WAIT has no timer
    at all: only the application's close() ends it. A segment for a connection that no
    longer exists gets RST (RFC 9293 3.10.7.1)."""
    fin_timeout = 2 * SEC
    close_delay = 3.5
    with run.tun_lab() as lab:
        srv = lab.server("sink", port=PORT, close_delay=close_delay)
        srv.wait_ready()
        st = run.stack(lab, lab_config(fin_timeout=fin_timeout))
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st)
        s.sendall(MESSAGE)
        s.close()
        fw2 = _wait_state(st, s, "FIN_WAIT_2", 3.0)
        srv.wait_event("eof", 3.0)
        run.check("the kernel is in CLOSE_WAIT while rawtcp is in FIN_WAIT_2",
                  fw2 and watch.wait_state("CLOSE_WAIT", 2.0), watch.states())
        closed = _wait_state(st, s, "CLOSED", 4.0)
        t_closed = st.now()
        kernel_then = _kernel_conn_states(lab)
        ev_fw2 = [e for e in run.events("state") if e.get("new") == "FIN_WAIT_2"]
        ev_closed = [e for e in run.events("state") if e.get("new") == "CLOSED"]
        held = (t_closed - ev_fw2[0]["t"]) / SEC if ev_fw2 else None
        run.check("rawtcp left FIN_WAIT_2 for CLOSED after fin_timeout (2 s)",
                  closed and held is not None and 1.9 <= held <= 2.5
                  and bool(ev_closed) and "fin_wait_2" in str(ev_closed[-1].get("reason")),
                  f"{held and round(held, 3)} s in FIN_WAIT_2, reason "
                  f"{ev_closed[-1].get('reason') if ev_closed else None}")
        run.check("the kernel is still CLOSE_WAIT after rawtcp forgot the connection",
                  kernel_then == ["CLOSE_WAIT"], kernel_then)
        # The kernel application closes 3.5 s after EOF: FIN -> no connection -> RST.
        wait_until(lambda: any("R" in e["flags"] for e in run.segs("out")), close_delay + 2)
        watch.wait_state("CLOSED", 2.0)
        fins = [e for e in run.segs("in") if "F" in e["flags"]]
        rsts = [e for e in run.segs("out") if "R" in e["flags"]]
        run.check("the kernel's late FIN met no connection and got RST",
                  bool(fins) and fins[-1].get("state") == "CLOSED" and bool(rsts)
                  and rsts[0]["t"] >= fins[-1]["t"],
                  f"FIN at {[(_tsec(f), f.get('state')) for f in fins]}, "
                  f"RST at {[_tsec(r) for r in rsts]}")
        # LAST_ACK lasts one round trip here (the RST comes back at once), often too short
        # for the ss sampler: CLOSE_WAIT -> (LAST_ACK) -> gone.
        run.check("the kernel: CLOSE_WAIT, (LAST_ACK), gone by the RST",
                  is_subsequence(["CLOSE_WAIT", "CLOSED"], watch.states())
                  and not _kernel_conn_states(lab), watch.states())
        if held is not None:
            run.metrics["fin_wait_2_s"] = round(held, 3)


# ------------------------------------------------------------------------ time-wait-assassination
def _assassination_round(run: Run, rfc1337: bool) -> dict:
    """One connection closed by rawtcp, with an old duplicate of the kernel's data segment
    held back (reorder ms=1500) so that it arrives while rawtcp is in TIME_WAIT. rawtcp ACKs
    it; the kernel, whose connection is gone, answers that ACK with a RST whose sequence
    number is exactly rawtcp's RCV.NXT (RFC 1337 hazard H1)."""
    label = "on" if rfc1337 else "off"
    tw_s = 4.0
    with run.tun_lab() as lab:
        srv = lab.server("echo", port=PORT, close_delay=0.05)
        srv.wait_ready()
        cfg = lab_config(rfc1337=rfc1337, time_wait=int(tw_s * SEC))
        st = run.stack(lab, cfg, faults=["reorder in len>0 nth=1 after=1000 ms=1500"])
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st)
        conn = s.tcb.conn
        got = _echo(s, MESSAGE)
        s.close()
        in_tw = _wait_state(st, s, "TIME_WAIT", 5.0)
        watch.wait_state("CLOSED", 3.0)
        t_tw = st.now()
        # Wait for the kernel's RST to arrive, then for TIME_WAIT to end either way.
        wait_until(lambda: any("R" in e["flags"] and e.get("conn") == conn
                               for e in run.segs("in")), 3.0)
        _wait_state(st, s, "CLOSED", tw_s + 2)
        segs_in = [e for e in run.segs("in") if e.get("conn") == conn]
        segs_out = [e for e in run.segs("out") if e.get("conn") == conn]
        rst = [e for e in segs_in if "R" in e["flags"]]
        old = [e for e in segs_in if e["len"] > 0 and e.get("state") == "TIME_WAIT"]
        acks_tw = [e for e in segs_out if e.get("state") == "TIME_WAIT"]
        states = [e for e in run.events("state") if e.get("conn") == conn]
        tw_ev = [e for e in states if e["new"] == "TIME_WAIT"]
        cl_ev = [e for e in states if e["new"] == "CLOSED"]
        drops = [e for e in run.events("drop") if e.get("conn") == conn]
        return {
            "label": label, "echo_ok": got == MESSAGE, "in_tw": in_tw, "t_tw": t_tw,
            "old_dup": old, "acks_tw": acks_tw, "rst": rst, "drops": drops,
            "kernel": watch.states(),
            "tw_s": (cl_ev[-1]["t"] - tw_ev[0]["t"]) / SEC if tw_ev and cl_ev else None,
            "closed_reason": cl_ev[-1].get("reason") if cl_ev else None,
            "rst_state": rst[0].get("state") if rst else None,
            "tw_config_s": tw_s,
        }


@experiment("time-wait-assassination", title="RST into TIME_WAIT, RFC 1337 on and off",
            expect="an old duplicate reaches rawtcp in TIME_WAIT, rawtcp ACKs it, the kernel "
                   "answers with RST; with rfc1337 on the RST is ignored and TIME_WAIT runs its "
                   "full time; with it off the RST kills TIME_WAIT early")
def time_wait_assassination(run: Run) -> None:
    """RFC 1337 (TIME-WAIT Assassination Hazards in TCP), hazard H1: an old duplicate segment
    makes the TIME-WAIT side send an ACK; the other side, which has no connection, answers
    with RST, and RFC 9293 3.10.7.4 (second, TIME-WAIT: "If the RST bit is set then enter the
    CLOSED state") ends TIME-WAIT early. RFC 1337's fix: ignore RST in TIME-WAIT.
    The RST is the Linux kernel's own (RFC 9293 3.10.7.1, for a segment to a closed port)."""
    rounds = [_assassination_round(run, True), _assassination_round(run, False)]
    for r in rounds:
        lab_ = f"rfc1337 {r['label']}"
        run.check(f"{lab_}: the echo worked and rawtcp reached TIME_WAIT",
                  r["echo_ok"] and r["in_tw"], f"echo {r['echo_ok']}, TIME_WAIT {r['in_tw']}")
        run.check(f"{lab_}: an old duplicate data segment arrived in TIME_WAIT and was ACKed",
                  bool(r["old_dup"]) and bool(r["acks_tw"]),
                  f"old dup at {[_tsec(e) for e in r['old_dup']]} s, ACKs from TIME_WAIT at "
                  f"{[_tsec(e) for e in r['acks_tw']]} s")
        run.check(f"{lab_}: the kernel (connection gone) answered with RST into TIME_WAIT",
                  bool(r["rst"]) and r["rst_state"] == "TIME_WAIT"
                  and "CLOSED" in r["kernel"],
                  f"RST {[(e['flags'], e.get('rseq'), _tsec(e)) for e in r['rst']]} seen in "
                  f"{r['rst_state']}; kernel {r['kernel']}")
    on, off = rounds
    run.check("rfc1337 on: the RST was ignored, TIME_WAIT lasted its full time",
              on["tw_s"] is not None and on["tw_s"] >= on["tw_config_s"] - 0.05
              and any(d.get("reason") == "rfc1337" for d in on["drops"]),
              f"TIME_WAIT {on['tw_s'] and round(on['tw_s'], 3)} s of {on['tw_config_s']} s; "
              f"ended by {on['closed_reason']!r}; drops {[d.get('reason') for d in on['drops']]}")
    run.check("rfc1337 off: the RST killed TIME_WAIT early",
              off["tw_s"] is not None and off["tw_s"] < off["tw_config_s"] - 1.0
              and "RST" in str(off["closed_reason"]),
              f"TIME_WAIT {off['tw_s'] and round(off['tw_s'], 3)} s of {off['tw_config_s']} s; "
              f"ended by {off['closed_reason']!r}")
    run.metrics.update({"time_wait_s_rfc1337_on": on["tw_s"] and round(on["tw_s"], 3),
                        "time_wait_s_rfc1337_off": off["tw_s"] and round(off["tw_s"], 3)})


__all__ = ["close_wait_leak", "linger_abort", "simultaneous_close", "time_wait_ablation",
           "time_wait_assassination"]
