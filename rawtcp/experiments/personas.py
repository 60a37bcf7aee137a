"""The personas against the kernel: what Linux does with a misbehaving peer.

One experiment per persona of :mod:`rawtcp.faults.personas` (``persona-NAME``): rawtcp runs
with exactly the persona's rules and nothing else, against a kernel peer in a private lab,
and the checks record what the kernel does about it (its states and retransmissions from
``ss``, its segments from rawtcp's trace, its application's errors). Sysctls that would
make a run last minutes (tcp_fin_timeout, tcp_retries2) are set small in the lab's own
namespace, so every run ends in a few seconds.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
from typing import Any

from rawtcp.core.config import MS, SEC
from rawtcp.experiments.base import Run, experiment, lab_config, read_to_eof, wait_until
from rawtcp.experiments.base import connect_kernel as _connect
from rawtcp.experiments.base import echo as _echo
from rawtcp.faults.personas import PERSONAS, persona_texts
from rawtcp.host.netns import exec_prefix
from rawtcp.lab.kernel import kernel_sockets

PORT = 7
_MOD = 1 << 32


def _sysctl(lab: Any, key: str, value: int) -> None:
    """Set a sysctl in the lab's kernel namespace only (gone with the namespace)."""
    subprocess.run(exec_prefix(lab.kernel_netns) + ["sysctl", "-qw", f"{key}={value}"],
                   check=True, timeout=10, capture_output=True)


def _nstat(lab: Any, *names: str) -> dict[str, int]:
    """Absolute values of kernel MIB counters in the lab's namespace (``nstat -az``)."""
    p = subprocess.run(exec_prefix(lab.kernel_netns) + ["nstat", "-az", *names],
                       capture_output=True, text=True, timeout=10, check=False)
    out: dict[str, int] = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] in names and f[1].isdigit():
            out[f[0]] = int(f[1])
    return out


def _kernel_conns(lab: Any) -> list[dict]:
    return [k for k in kernel_sockets(lab.kernel_netns, PORT) if k["state"] != "LISTEN"]


def _stack(run: Run, lab: Any, persona: str, **cfg: Any) -> Any:
    return run.stack(lab, lab_config(**cfg), faults=persona_texts([persona]))


def _gaps_ms(evs: list[dict]) -> list[float]:
    return [round((b["t"] - a["t"]) / MS, 1) for a, b in itertools.pairwise(evs)]


def _title(name: str) -> str:
    return f"Persona {name}: {PERSONAS[name].title}"


def _persona(name: str, *, expect: str):
    return experiment(f"persona-{name}", title=_title(name), expect=expect)


# ------------------------------------------------------------------------------ never-fin
@_persona("never-fin", expect="the kernel closes first and waits in FIN_WAIT_2 for rawtcp's "
          "FIN, which never comes; the orphaned socket is dropped after tcp_fin_timeout (2 s "
          "here) without ever reaching TIME_WAIT")
def never_fin(run: Run) -> None:
    """RFC 9293 3.6: a side in FIN-WAIT-2 waits for the peer's FIN; the RFC has no limit, but
    Linux drops an orphaned FIN-WAIT-2 socket after net.ipv4.tcp_fin_timeout."""
    fin_timeout = 2
    with run.tun_lab() as lab:
        _sysctl(lab, "net.ipv4.tcp_fin_timeout", fin_timeout)
        srv = lab.server("source", port=PORT, count=4000)
        srv.wait_ready()
        st = _stack(run, lab, "never-fin")
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st, PORT)
        got = read_to_eof(s)
        s.close()
        watch.wait_state("FIN_WAIT_2", 3.0)
        t_fw2 = st.now()
        gone = wait_until(lambda: not _kernel_conns(lab), fin_timeout + 3.0)
        t_gone = st.now()
        stripped = run.faults("mangle")
        kfins = [e for e in run.segs("in") if "F" in e["flags"]]
        run.check("rawtcp read the kernel's 4000 bytes and its FIN", len(got) == 4000 and
                  bool(kfins), f"{len(got)} B, {len(kfins)} FIN(s) from the kernel")
        run.check("every FIN rawtcp sent was stripped (the kernel never got one)",
                  len(stripped) >= 1 and all("F" not in e["flags"] for e in stripped),
                  f"{len(stripped)} segment(s) lost their FIN")
        run.check("the kernel waited in FIN_WAIT_2 and never reached TIME_WAIT",
                  "FIN_WAIT_2" in watch.states() and "TIME_WAIT" not in watch.states(),
                  watch.states())
        waited = (t_gone - t_fw2) / SEC
        run.check(f"the kernel dropped the orphaned FIN_WAIT_2 after tcp_fin_timeout "
                  f"({fin_timeout} s)", gone and waited >= fin_timeout - 0.6,
                  f"gone {gone}, about {waited:.2f} s after FIN_WAIT_2 was seen")
        run.metrics.update({"fin_timeout_s": fin_timeout, "fin_wait_2_s": round(waited, 2),
                            "fins_stripped": len(stripped)})


# --------------------------------------------------------------------------- no-final-ack
@_persona("no-final-ack", expect="the kernel stays in LAST_ACK retransmitting its FIN with a "
          "doubling timeout; once rawtcp's TIME_WAIT is over the next FIN meets no connection "
          "and rawtcp answers RST, which ends the kernel's socket")
def no_final_ack(run: Run) -> None:
    """RFC 9293 3.6: the side in LAST-ACK retransmits its FIN until it is acknowledged;
    RFC 9293 3.10.7.1: a segment for no connection is answered with RST."""
    with run.tun_lab() as lab:
        srv = lab.server("echo", port=PORT)
        srv.wait_ready()
        # TIME_WAIT 0.5 s (each retransmitted FIN restarts it, RFC 9293 3.10.7.4), so the
        # kernel's third or fourth retransmission already finds no connection
        st = _stack(run, lab, "no-final-ack", time_wait=500 * MS)
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st, PORT)
        got = _echo(s, b"bye\n" * 8)
        s.close()
        t = s.tcb
        st.wait_for(lambda: t.state.name == "CLOSED", 5.0)
        gone = wait_until(lambda: not _kernel_conns(lab), 6.0)
        kfins = [e for e in run.segs("in") if "F" in e["flags"]]
        dropped = run.faults("drop")
        rsts = [e for e in run.segs("out") if "R" in e["flags"]]
        run.check("the echo worked and rawtcp went through TIME_WAIT",
                  got == b"bye\n" * 8 and "TIME_WAIT" in run.states(), run.states())
        run.check("every final ACK rawtcp sent was lost", len(dropped) >= 1,
                  f"{len(dropped)} ACK(s) from TIME_WAIT dropped")
        run.check("the kernel was in LAST_ACK and retransmitted its FIN at least twice",
                  "LAST_ACK" in watch.states() and len(kfins) >= 3,
                  f"kernel states {watch.states()}; {len(kfins)} FINs at "
                  f"{[round(e['t'] / SEC, 2) for e in kfins]} s")
        gaps = _gaps_ms(kfins)
        # Linux's first resend may be a tail loss probe (RFC 8985 7.2: 2 SRTT + 200 ms with
        # one segment in flight), after which the RTO restarts; the backoff shows from the
        # second resend on
        rto_gaps = gaps[1:]
        run.check("the FIN retransmission interval grows from the second resend on "
                  "(RTO backoff)",
                  len(rto_gaps) >= 2 and rto_gaps[-1] >= 1.8 * rto_gaps[0]
                  and all(b >= 0.9 * a for a, b in itertools.pairwise(rto_gaps)),
                  f"gaps {gaps} ms")
        run.check("after TIME_WAIT a retransmitted FIN met no connection: rawtcp sent RST and "
                  "the kernel's socket is gone", bool(rsts) and gone,
                  f"{len(rsts)} RST(s), kernel socket gone: {gone}")
        run.metrics.update({"kernel_fins": len(kfins), "fin_gaps_ms": gaps})


# -------------------------------------------------------------------- zero-window-forever
@_persona("zero-window-forever", expect="the kernel sends zero-window probes at growing "
          "intervals and, while rawtcp answers them (with a zero window), keeps the "
          "connection and never sends data into the window, even with tcp_retries2=3")
def zero_window_forever(run: Run) -> None:
    """RFC 9293 3.8.6.1 and RFC 1122 4.2.2.17: a sender facing a zero window probes it and
    must keep the connection open as long as the receiver answers the probes; Linux's
    tcp_retries2 limit counts unanswered probes only."""
    hold = 4.0
    with run.tun_lab() as lab:
        _sysctl(lab, "net.ipv4.tcp_retries2", 3)
        srv = lab.server("source", port=PORT, count=200_000, timeout=30)
        srv.wait_ready()
        st = _stack(run, lab, "zero-window-forever")
        watch = run.watch_kernel(lab, PORT, st)
        s = _connect(lab, st, PORT)
        t0 = st.now()
        wait_until(lambda: st.now() - t0 >= hold * SEC, hold + 1.0, step=0.05)
        conns = _kernel_conns(lab)
        ins = [e for e in run.segs("in") if e.get("conn") == s.tcb.conn]
        data = [e for e in ins if e["len"] > 0]
        probes = [e for e in ins if e["len"] == 0 and "F" not in e["flags"]
                  and "S" not in e["flags"]]
        gaps = _gaps_ms(probes)
        run.check("rawtcp advertised only zero windows after its SYN",
                  len(run.faults("mangle")) >= len(probes) > 0,
                  f"{len(run.faults('mangle'))} segments rewritten to win=0")
        run.check("the kernel sent no data into the zero window", not data,
                  f"{len(data)} data segment(s)")
        run.check("the kernel probed the window at least 4 times", len(probes) >= 4,
                  f"{len(probes)} probes at {[round(e['t'] / SEC, 2) for e in probes]} s")
        run.check("the probe interval grows (exponential backoff)",
                  len(gaps) >= 3 and all(b >= 1.5 * a for a, b in itertools.pairwise(gaps)),
                  f"gaps {gaps} ms")
        run.check(f"after {hold:g} s the kernel still holds the connection (the probes were "
                  "answered, so tcp_retries2=3 never ran out)",
                  [c["state"] for c in conns] == ["ESTABLISHED"] and "CLOSED" not in
                  watch.states(), f"kernel {[c['state'] for c in conns]}")
        run.metrics.update({"probes": len(probes), "probe_gaps_ms": gaps, "held_s": hold})
        s.close()


# ------------------------------------------------------------------------ shrinking-window
@_persona("shrinking-window", expect="rawtcp withdraws the window it offered in about half "
          "of its ACKs; the kernel stops at the shrunken edge, probes when it is zero, goes "
          "on when it reopens, and every byte arrives intact")
def shrinking_window(run: Run) -> None:
    """RFC 9293 3.8.6.2.2 / RFC 1122 4.2.2.16: a receiver should not shrink the window (move
    its right edge left), and a sender must cope when it does."""
    count = 60_000
    with run.tun_lab() as lab:
        srv = lab.server("source", port=PORT, count=count, timeout=30)
        srv.wait_ready()
        st = _stack(run, lab, "shrinking-window")
        s = _connect(lab, st, PORT)
        got = read_to_eof(s)
        sent = srv.wait_event("sent", 5.0)
        s.close()
        shrunk = [e for e in run.faults("mangle") if e.get("win_was", 0) > 0]
        run.check("rawtcp withdrew an offered window at least 3 times", len(shrunk) >= 3,
                  f"{len(shrunk)} ACKs rewritten from a positive window to 0")
        run.check("every byte arrived intact (sha256)",
                  len(got) == count and hashlib.sha256(got).hexdigest() == sent.get("sha256"),
                  f"{len(got)}/{count} B")
        ins = [e for e in run.segs("in") if e["len"] <= 1 and "F" not in e["flags"]
               and "S" not in e["flags"]]
        run.check("the kernel probed while the window was withdrawn (segments of 0 or 1 "
                  "bytes)", len(ins) >= 1, f"{len(ins)} probe(s) at "
                  f"{[round(e['t'] / SEC, 2) for e in ins]} s")
        run.metrics.update({"withdrawn_windows": len(shrunk), "kernel_small_segments":
                            len(ins), "transfer_s": round(st.now() / SEC, 2)})


# ----------------------------------------------------------------------------- slow-reader
@_persona("slow-reader", expect="with a 512-byte window and no scaling the kernel sends "
          "segments of at most 512 bytes and completes the transfer")
def slow_reader(run: Run) -> None:
    """RFC 9293 3.8.6: the sender may not send beyond the offered window; a receiver that
    offers 512 bytes gets at most 512 bytes per segment (the slow-read attack keeps the
    sender's buffers full this way)."""
    count = 16_000
    with run.tun_lab() as lab:
        srv = lab.server("source", port=PORT, count=count, timeout=30)
        srv.wait_ready()
        st = _stack(run, lab, "slow-reader")
        s = _connect(lab, st, PORT)
        got = read_to_eof(s)
        sent = srv.wait_event("sent", 5.0)
        s.close()
        data = [e for e in run.segs("in") if e["len"] > 0]
        synack = run.segs("in", "SA")
        run.check("no window scaling was agreed (rawtcp's SYN had none)",
                  bool(synack) and s.tcb.ws_ok is False,
                  f"SYN-ACK options {synack[0].get('opts') if synack else None}")
        run.check("the kernel never sent more than 512 bytes in a segment",
                  bool(data) and max(e["len"] for e in data) <= 512,
                  f"largest {max((e['len'] for e in data), default=0)} B over {len(data)} "
                  "segments")
        run.check("every byte arrived intact (sha256)",
                  len(got) == count and hashlib.sha256(got).hexdigest() == sent.get("sha256"),
                  f"{len(got)}/{count} B")
        run.metrics.update({"kernel_segments": len(data), "transfer_s":
                            round(st.now() / SEC, 2)})


# -------------------------------------------------------------------------- ack-withholder
@_persona("ack-withholder", expect="the kernel's RTO fires before the held ACKs arrive: it "
          "retransmits data rawtcp already had (spurious retransmissions), backs off, and the "
          "transfer completes intact")
def ack_withholder(run: Run) -> None:
    """RFC 6298 5: the retransmission timer fires when no ACK comes within RTO; an ACK held
    back longer than the RTO makes the retransmission spurious (RFC 3522, RFC 5682 are the
    ways a sender detects that)."""
    count = 20_000
    with run.tun_lab() as lab:
        ls_port = 7007
        st = _stack(run, lab, "ack-withholder")
        ls = st.socket()
        ls.bind(("", ls_port))
        ls.listen(1)
        ls.settimeout(5.0)
        cl = lab.client(ls_port, count=count, timeout=30)
        s, _ = ls.accept()
        s.settimeout(10.0)
        got = read_to_eof(s)
        s.close()
        cl.wait_event("closed", 10.0)
        ins = [e for e in run.segs("in") if e.get("conn") == s.tcb.conn and e["len"] > 0]
        seen: set[int] = set()
        dups = []
        for e in ins:
            if e["rseq"] in seen:
                dups.append(e)
            seen.add(e["rseq"])
        held = run.faults("delay")
        run.check("rawtcp's pure ACKs were held back 1 s", len(held) >= 2,
                  f"{len(held)} ACKs delayed")
        run.check("the kernel retransmitted data rawtcp already had (spurious RTO)",
                  len(dups) >= 1, f"{len(dups)} duplicate data segment(s) at "
                  f"{[round(e['t'] / SEC, 2) for e in dups]} s")
        data = cl.wait_event("sent", 1.0)
        run.check("every byte arrived intact (sha256)",
                  len(got) == count and hashlib.sha256(got).hexdigest() == data.get("sha256"),
                  f"{len(got)}/{count} B")
        run.metrics.update({"spurious_retransmissions": len(dups), "acks_held": len(held)})
        ls.close()


# ------------------------------------------------------------------------------- rst-storm
@_persona("rst-storm", expect="20 in-window RSTs do not reset the kernel's connection: it "
          "answers with rate-limited challenge ACKs and the echo still works")
def rst_storm(run: Run) -> None:
    """RFC 5961 3.2: an RST in the window but not at RCV.NXT gets a challenge ACK, not a
    reset; RFC 5961 7: challenge ACKs are rate limited (Linux: tcp_invalid_ratelimit per
    socket, tcp_challenge_ack_limit per namespace)."""
    with run.tun_lab() as lab:
        srv = lab.server("echo", port=PORT)
        srv.wait_ready()
        st = _stack(run, lab, "rst-storm")
        s = _connect(lab, st, PORT)
        conn = s.tcb.conn
        snd_nxt = s.tcb.snd_nxt
        stormed = wait_until(lambda: len([e for e in run.faults("inject") if "i" in e]) >= 20,
                             4.0, step=0.02)
        rsts = [e for e in run.faults("inject") if "i" in e]
        t_first = rsts[0]["t"] if rsts else 0
        wait_until(lambda: st.now() - t_first > 100 * MS, 1.0)
        challenges = [e for e in run.segs("in") if e.get("conn") == conn and e["flags"] == "A"
                      and e["len"] == 0 and e["t"] >= t_first and e["ack"] == snd_nxt]
        offs = sorted((e["seq"] - snd_nxt) % _MOD for e in rsts)
        run.check("rawtcp sent 20 RSTs, all inside the kernel's window, none at RCV.NXT",
                  stormed and len(rsts) == 20 and offs[0] > 0 and offs[-1] < 30_000,
                  f"{len(rsts)} RSTs at RCV.NXT+{offs[0] if offs else '-'}.."
                  f"{offs[-1] if offs else '-'}")
        run.check("the kernel answered with challenge ACKs, fewer than the RSTs (rate limit)",
                  1 <= len(challenges) < len(rsts), f"{len(challenges)} challenge ACK(s)")
        got = _echo(s, b"still there?\n")
        run.check("the connection survived: the echo works and the kernel is ESTABLISHED",
                  got == b"still there?\n" and [c["state"] for c in _kernel_conns(lab)]
                  == ["ESTABLISHED"], f"echo {got!r}")
        run.metrics.update({"rsts": len(rsts), "challenge_acks": len(challenges)})
        s.close()


# ------------------------------------------------------------------------------- half-open
@_persona("half-open", expect="rawtcp vanishes after the handshake; the kernel retransmits "
          "with a doubling timeout and gives up after tcp_retries2=2 retransmissions: its "
          "application gets ETIMEDOUT and the socket is gone, without any RST")
def half_open(run: Run) -> None:
    """RFC 1122 4.2.3.5: after R2 retransmissions the sender closes the connection (Linux:
    net.ipv4.tcp_retries2, here 2: Linux turns it into a time, 200 ms x (2^3 - 1) = 1.4 s
    of backoff, and gives up at the first timeout past it)."""
    with run.tun_lab() as lab:
        _sysctl(lab, "net.ipv4.tcp_retries2", 2)
        srv = lab.server("source", port=PORT, count=200_000, timeout=30)
        srv.wait_ready()
        st = _stack(run, lab, "half-open")
        watch = run.watch_kernel(lab, PORT, st)
        _s = _connect(lab, st, PORT)
        err = None
        try:
            err = srv.wait_event("error", 10.0)
        except OSError:
            pass
        gone = wait_until(lambda: not _kernel_conns(lab), 2.0)
        watch.wait_state("CLOSED", 1.0)
        lost_in = [e for e in run.faults("drop") if e["dir"] == "in" and e["len"] > 0]
        rseqs = [e["rseq"] for e in lost_in]
        first = min(rseqs, default=None)
        rexmit = [e for e in lost_in if e["rseq"] == first]
        gaps = _gaps_ms(rexmit)
        resets = [e for e in run.faults("drop") if e["dir"] == "out" and "R" in e["flags"]]
        run.check("the kernel retransmitted its first segment at least twice, each wait "
                  "longer", len(rexmit) >= 3 and all(b > a for a, b in itertools.pairwise(gaps)),
                  f"{len(rexmit)} copies, gaps {gaps} ms")
        run.check("the kernel gave up: its application got ETIMEDOUT",
                  err is not None and err.get("name") == "ETIMEDOUT", err)
        run.check("the kernel's socket is gone", gone and "CLOSED" in watch.states(),
                  watch.states())
        sent_rst = [e for e in run.segs("out") if "R" in e["flags"]]
        run.check("no RST of rawtcp's left (the kernel learnt nothing)",
                  len(sent_rst) == len(resets), f"{len(sent_rst)} RST(s) made, "
                  f"{len(resets)} held back")
        run.metrics.update({"retransmissions": len(rexmit) - 1, "gaps_ms": gaps})


# ----------------------------------------------------------------------------- syn-flooder
@_persona("syn-flooder", expect="64 SYNs from other ports against a backlog of 4: the kernel "
          "answers them all, past the backlog with SYN cookies, and the genuine connection "
          "still works")
def syn_flooder(run: Run) -> None:
    """RFC 4987 (TCP SYN flooding attacks and common mitigations) 3.6: SYN cookies let a
    listener whose queue is full answer SYNs without keeping state."""
    with run.tun_lab() as lab:
        _sysctl(lab, "net.ipv4.tcp_syncookies", 1)
        before = _nstat(lab, "TcpExtSyncookiesSent", "TcpExtListenOverflows")
        # the server keeps listening (max_conns) so every flood SYN meets the listener
        srv = lab.server("echo", port=PORT, backlog=4, max_conns=100)
        srv.wait_ready()
        st = _stack(run, lab, "syn-flooder")
        s = _connect(lab, st, PORT)
        flooded = wait_until(lambda: len([e for e in run.faults("inject") if "i" in e]) >= 64,
                             3.0, step=0.02)
        wait_until(lambda: len({e["sport"] for e in run.faults("drop")
                                if "R" in e["flags"]}) >= 64, 2.0, step=0.02)
        syns = [e for e in run.faults("inject") if "i" in e]
        answered = [e for e in run.faults("drop") if "R" in e["flags"]]
        after = _nstat(lab, "TcpExtSyncookiesSent", "TcpExtListenOverflows")
        cookies = after.get("TcpExtSyncookiesSent", 0) - before.get("TcpExtSyncookiesSent", 0)
        run.check("rawtcp sent 64 SYNs from 64 other ports",
                  flooded and len({e["sport"] for e in syns}) == 64, f"{len(syns)} SYNs")
        ports = {e["sport"] for e in answered} & {e["sport"] for e in syns}
        run.check("the kernel answered every flood SYN (rawtcp's RSTs to them were dropped)",
                  len(ports) == 64, f"SYN-ACKs to {len(ports)} of the 64 ports")
        run.check("past the backlog the kernel sent SYN cookies", cookies > 0,
                  f"TcpExtSyncookiesSent +{cookies}")
        got = _echo(s, b"real one\n")
        run.check("the genuine connection works", got == b"real one\n", f"echo {got!r}")
        run.metrics.update({"syn_cookies": cookies, "answered": len(answered)})
        s.close()


__all__ = ["ack_withholder", "half_open", "never_fin", "no_final_ack", "rst_storm",
           "shrinking_window", "slow_reader", "syn_flooder", "zero_window_forever"]
