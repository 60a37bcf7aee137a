"""A hand-written trace: handshake, 100 bytes, active close whose final ACK a fault drops,
the kernel's FIN retransmission, our re-ACK in TIME_WAIT, then CLOSED after 2*MSL."""

from __future__ import annotations

US, PEER = "10.7.0.1", "10.7.0.2"
ISS, IRS = 1000, 5000
CONN = f"{US}:40000>{PEER}:80"
RULE = "out flags=A state=TIME_WAIT nth=1"


def seg(t: int, d: str, flags: str, rseq: int, rack: int, n: int = 0, state: str = "",
        rel: bool = True) -> dict:
    if d == "out":
        src, dst, sport, dport, seq, ack = US, PEER, 40000, 80, ISS + rseq, IRS + rack
    else:
        src, dst, sport, dport, seq, ack = PEER, US, 80, 40000, IRS + rseq, ISS + rack
    if "A" not in flags:
        ack = 0
    ev = {"t": t, "ev": "seg", "conn": CONN, "dir": d, "src": src, "dst": dst, "sport": sport,
          "dport": dport, "seq": seq, "ack": ack, "rseq": rseq if rel else None,
          "rack": (rack if "A" in flags else None) if rel else None, "flags": flags,
          "win": 64240, "len": n, "opts": {}, "state": state}
    return ev


def state(t: int, old: str, new: str, reason: str) -> dict:
    return {"t": t, "ev": "state", "conn": CONN, "old": old, "new": new, "reason": reason}


def kernel(t: int, st: str) -> dict:
    return {"t": t, "ev": "kernel", "conn": CONN, "state": st, "retrans": 0,
            "local": f"{PEER}:80", "remote": f"{US}:40000"}


def trace(rel: bool = True) -> list[dict]:
    T0 = 1_700_000_000  # the core's clock does not start at zero
    ms = 1000
    evs = [
        kernel(T0, "LISTEN"),
        state(T0, "CLOSED", "SYN_SENT", "connect"),
        seg(T0, "out", "S", 0, 0, state="SYN_SENT", rel=rel),
        seg(T0 + 1 * ms, "in", "SA", 0, 1, state="SYN_SENT", rel=rel),
        state(T0 + 1 * ms, "SYN_SENT", "ESTABLISHED", "syn-ack"),
        seg(T0 + 1 * ms, "out", "A", 1, 1, state="ESTABLISHED", rel=rel),
        kernel(T0 + 1500, "ESTABLISHED"),
        kernel(T0 + 1700, "ESTABLISHED"),  # a repeated poll: folded
        seg(T0 + 2 * ms, "out", "PA", 1, 1, 100, state="ESTABLISHED", rel=rel),
        seg(T0 + 3 * ms, "in", "A", 1, 101, state="ESTABLISHED", rel=rel),
        state(T0 + 4 * ms, "ESTABLISHED", "FIN_WAIT_1", "close"),
        seg(T0 + 4 * ms, "out", "FA", 101, 1, state="FIN_WAIT_1", rel=rel),
        seg(T0 + 5 * ms, "in", "A", 1, 102, state="FIN_WAIT_1", rel=rel),
        state(T0 + 5 * ms, "FIN_WAIT_1", "FIN_WAIT_2", "fin-acked"),
        kernel(T0 + 5500, "CLOSE_WAIT"),
        kernel(T0 + 6 * ms, "LAST_ACK"),
        seg(T0 + 6 * ms, "in", "FA", 1, 102, state="FIN_WAIT_2", rel=rel),
        state(T0 + 6 * ms, "FIN_WAIT_2", "TIME_WAIT", "fin"),
        seg(T0 + 6 * ms, "out", "A", 102, 2, state="TIME_WAIT", rel=rel),
    ]
    fault = dict(evs[-1])
    fault.update(ev="fault", action="drop", rule=RULE, state="TIME_WAIT")
    fault.pop("opts")
    evs.append(fault)
    evs += [
        seg(T0 + 206 * ms, "in", "FA", 1, 102, state="TIME_WAIT", rel=rel),
        {"t": T0 + 206 * ms, "ev": "timer", "conn": CONN, "name": "time_wait",
         "action": "set", "at": T0 + 60_206 * ms},
        seg(T0 + 206 * ms, "out", "A", 102, 2, state="TIME_WAIT", rel=rel),
        kernel(T0 + 207 * ms, "CLOSED"),
        state(T0 + 60_206 * ms, "TIME_WAIT", "CLOSED", "time-wait-expired"),
    ]
    return evs
