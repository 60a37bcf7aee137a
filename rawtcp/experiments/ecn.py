"""ECN against Linux: rawtcp asks for ECN (Config.ecn=1), the kernel agrees (tcp_ecn=1 in the
lab's namespace only), and nftables in the kernel's namespace sets CE on some ECN-capable
data packets in both directions, so both ends must echo the mark and both must react.

RFC 3168 6.1.1 (the ECN-setup SYN and SYN-ACK), 6.1.2 (ECT on new data; the sender halves its
window once per window on ECE and says CWR), 6.1.3 (the receiver sets ECE on every ACK from a
CE mark until the sender's CWR). The marks are made in the kernel's own packet path: its
output hook marks what the kernel sends (before the TUN device, so rawtcp reads them marked),
its prerouting hook marks what rawtcp sends (on the way in from the TUN device).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from typing import Any

from rawtcp.experiments.base import Run, experiment, lab_config, read_to_eof, recv_exactly

PORT = 7
SIZE = 256 * 1024      # rawtcp sends this, the kernel echoes it: 512 KiB over the TUN link
NTH = 8                # every 8th ECN-capable data packet in each direction is CE-marked
DATA = "meta length > 200"   # data segments only (handshake and pure ACKs are never ECT)
TIMEOUT = 20.0


def _set_sysctl(netns: str, key: str, value: str) -> str:
    """Set a per-namespace sysctl (only inside the lab); returns what the kernel says now."""
    from rawtcp.host.netns import exec_prefix
    from rawtcp.host.system import run as run_cmd

    run_cmd(exec_prefix(netns) + ["sysctl", "-q", "-w", f"{key}={value}"])
    return run_cmd(exec_prefix(netns) + ["sysctl", "-n", key]).stdout.strip()


def mark_rules(port: int, nth: int) -> str:
    """The nft table body: CE on every ``nth`` ECT(0) data packet the kernel sends from
    ``port`` (output hook) and on every ``nth`` one it receives for ``port`` (prerouting)."""
    def rule(direction: str, comment: str) -> str:
        return (f"meta l4proto tcp tcp {direction} {port} ip ecn ect0 {DATA} "
                f"numgen inc mod {nth} 0 counter ip ecn set ce comment \"{comment}\"")

    return (f"chain out {{ type filter hook output priority 0; policy accept;\n"
            f"  {rule('sport', 'ce-kernel-out')}\n}}\n"
            f"chain pre {{ type filter hook prerouting priority 0; policy accept;\n"
            f"  {rule('dport', 'ce-rawtcp-in')}\n}}")


def kernel_tcp_info(netns: str, port: int) -> dict[str, Any]:
    """Linux's TCP_INFO of the kernel's connection on local ``port`` (sock_diag): ``options``
    (TCPI_OPT_ECN = 8, TCPI_OPT_ECN_SEEN = 16), ``delivered_ce`` (segments that arrived with
    CE), ``cwnd``, ``ssthresh`` (segments, None while infinite), ``ca``. ``ss -i`` prints the
    same fields (its words ``ecn ecnseen``); read here so no text parsing is needed."""
    from rawtcp.lab.kernel import TcpInfoReader

    with TcpInfoReader(netns, ("ipv4",)) as r:
        for sock in r.sockets(port):
            if (sock["local_port"] == port and sock["state"] != "LISTEN"
                    and "delivered_ce" in sock):
                return sock
    return {}


def _ece_runs(outs: list[dict], cwr_in_t: list[int]) -> tuple[int, int, int]:
    """(runs, ended_by_cwr, open_at_end) of rawtcp's ECE: a run is consecutive outgoing ACKs
    with ECE; RFC 3168 6.1.3 lets one end only after the sender's CWR arrived."""
    runs = ended = open_end = 0
    start = None
    for e in outs:
        ece = "E" in e["flags"]
        if ece and start is None:
            start, runs = e["t"], runs + 1
        elif not ece and start is not None:
            if any(start <= t <= e["t"] for t in cwr_in_t):
                ended += 1
            start = None
    if start is not None:
        open_end = 1
    return runs, ended, open_end


@experiment("ecn", title="ECN with Linux: CE marks set by nftables, echoed and obeyed",
            expect="rawtcp (ecn=1) and Linux (tcp_ecn=1) negotiate ECN; nftables in the "
                   "kernel's namespace sets CE on every 8th ECT(0) data packet both ways; "
                   "rawtcp counts the marks and sets ECE until the kernel's CWR, the kernel "
                   "does the same for rawtcp's data; both cut their windows and say CWR; "
                   "every echoed byte is identical; the nft table is gone afterwards")
def ecn(run: Run) -> None:
    """RFC 3168 6.1.1-6.1.3 against Linux over a TUN link: negotiation, CE marks from the
    network (nftables), ECE until CWR on both sides, window reduction on both sides."""
    from rawtcp.host import nft
    from rawtcp.lab.kernel import CcPoller

    data = random.Random(run.seed).randbytes(SIZE)
    digest = hashlib.sha256(data).hexdigest()

    def clock() -> int:
        return (time.monotonic_ns() - run.clock_origin) // 1000

    with run.tun_lab() as lab:
        sysctl = _set_sysctl(lab.kernel_netns, "net.ipv4.tcp_ecn", "1")
        # CUBIC cuts ssthresh for an ECE (the host default may be BBR, which does not): the
        # server's listening socket asks for it (TCP_CONGESTION, inherited by the accepted
        # one), since a namespace cannot make it its default where the host restricts it
        algo = "cubic"
        srv = lab.server("echo", port=PORT, timeout=TIMEOUT * 2, close_delay=0.3,
                         congestion=algo)
        srv.wait_ready()
        st = run.stack(lab, lab_config(ecn=1))
        table = nft.unique_table_name("ecn")
        nft.add_table(lab.kernel_netns, "inet", table, mark_rules(PORT, NTH))
        try:
            present = nft.table_exists(lab.kernel_netns, "inet", table)
            run.progress(f"nft table {table}: CE on every {NTH}th ECT(0) data packet both "
                         f"ways; kernel net.ipv4.tcp_ecn={sysctl}")
            with CcPoller(lab.kernel_netns, PORT, clock, run.tracer, interval=0.001,
                          duration=TIMEOUT, families=("ipv4",)):
                s = st.socket()
                s.settimeout(TIMEOUT)
                s.connect((lab.kernel_addr, PORT))
                conn = s.tcb.conn

                def writer() -> None:
                    s.sendall(data)
                    s.shutdown(1)

                th = threading.Thread(target=writer, daemon=True, name="ecn-writer")
                th.start()
                got = bytearray(recv_exactly(s, SIZE))
                # the kernel has echoed everything and waits close_delay before its FIN
                kti = kernel_tcp_info(lab.kernel_netns, PORT)
                got.extend(read_to_eof(s))
                th.join(5)
                info = s.tcp_info()
                s.close()
            marks = {r["comment"]: r["packets"]
                     for r in nft.rule_counters(lab.kernel_netns, "inet", table)}
        finally:
            nft.delete_table(lab.kernel_netns, "inet", table)
        gone = not nft.table_exists(lab.kernel_netns, "inet", table)
        eof = next((e for e in srv.events if e.get("event") == "eof"), {})

    # ------------------------------------------------------------------ the evidence
    got_b = bytes(got)
    segs = [e for e in run.segs() if e.get("conn") == conn]
    syn = next((e for e in segs if e["dir"] == "out" and "S" in e["flags"]), None)
    synack = next((e for e in segs if e["dir"] == "in" and "S" in e["flags"]), None)
    syn_f = syn["flags"] if syn else None
    sa_f = synack["flags"] if synack else None
    run.check("ECN negotiated: rawtcp's SYN has ECE+CWR, the kernel's SYN-ACK ECE without "
              "CWR (RFC 3168 6.1.1)",
              bool(syn_f and sa_f and "E" in syn_f and "C" in syn_f and "E" in sa_f
                   and "C" not in sa_f and info.get("ecn")),
              f"SYN {syn_f}, SYN-ACK {sa_f}, tcp_info ecn={info.get('ecn')}, kernel "
              f"tcp_ecn={sysctl}")
    k_marked = int(marks.get("ce-kernel-out", 0))
    r_marked = int(marks.get("ce-rawtcp-in", 0))
    run.check("nftables set CE on data packets both ways (counters)",
              k_marked > 0 and r_marked > 0,
              f"{k_marked} of the kernel's packets (output hook; a GSO packet carries several "
              f"segments), {r_marked} of rawtcp's (prerouting)")
    ce_seen = int(info.get("delivered_ce") or 0)
    run.check("rawtcp saw the CE marks (tcp_info delivered_ce, ecn_seen)",
              ce_seen >= k_marked > 0 and bool(info.get("ecn_seen")),
              f"delivered_ce {ce_seen} segments, ecn_seen {info.get('ecn_seen')}, "
              f"{k_marked} packets marked")
    outs = [e for e in segs if e["dir"] == "out" and "S" not in e["flags"]
            and "A" in e["flags"]]
    ins = [e for e in segs if e["dir"] == "in" and "S" not in e["flags"]]
    ece_out = sum(1 for e in outs if "E" in e["flags"])
    cwr_in = [e["t"] for e in ins if "C" in e["flags"]]
    runs, ended, open_end = _ece_runs(outs, cwr_in)
    run.check("rawtcp set ECE on its ACKs until the kernel's CWR (RFC 3168 6.1.3)",
              ece_out > 0 and runs > 0 and ended + open_end == runs and ended > 0,
              f"{ece_out} ACKs with ECE in {runs} runs, {ended} ended after a CWR from the "
              f"kernel, {open_end} still open when the data ended; {len(cwr_in)} CWR in")
    ksamples = [e for e in run.events("kernel") if e.get("cwnd") is not None]
    k_cwr_state = sum(1 for e in ksamples if e.get("ca") == "cwr")
    k_sst = [e["ssthresh"] for e in ksamples if e.get("ssthresh") is not None]
    k_opts = int(kti.get("options") or 0)
    k_ce = int(kti.get("delivered_ce") or 0)
    ece_in = sum(1 for e in ins if "E" in e["flags"])
    run.check("the kernel answered the CE marks on rawtcp's data with ECE; its TCP_INFO has "
              "ECN and ECN-seen, and delivered_ce counts rawtcp's ECE (ss -i: ecn ecnseen)",
              ece_in > 0 and bool(k_opts & 8) and bool(k_opts & 16) and k_ce > 0,
              f"{ece_in} segments with ECE from the kernel for {r_marked} marked packets; "
              f"tcpi_options {k_opts:#x} (ecn {bool(k_opts & 8)}, ecnseen {bool(k_opts & 16)}"
              f"), tcpi_delivered_ce {k_ce} (its segments acked with ECE)")
    run.check("the kernel reacted to rawtcp's ECE: it said CWR and cut its window "
              "(TCP_INFO ca cwr, ssthresh finite; RFC 3168 6.1.2)",
              len(cwr_in) > 0 and k_cwr_state > 0 and bool(k_sst),
              f"{len(cwr_in)} CWR from the kernel, {k_cwr_state} samples in ca cwr, ssthresh "
              f"{sorted(set(k_sst))[:6]} segments, cwnd now {kti.get('cwnd')} ({algo})")
    cwr_out = sum(1 for e in outs if "C" in e["flags"])
    cwr_cc = sum(1 for e in run.events("cc") if e.get("conn") == conn and e.get("ca") == "cwr")
    run.check("rawtcp reacted to the kernel's ECE: it cut its window and said CWR "
              "(RFC 3168 6.1.2)",
              ece_in > 0 and cwr_out > 0 and cwr_cc > 0,
              f"{ece_in} segments with ECE in, {cwr_out} CWR out, {cwr_cc} cc events in cwr, "
              f"snd_ssthresh {info.get('snd_ssthresh')}")
    run.check("every echoed byte is identical (sha256, both ends)",
              got_b == data and eof.get("sha256") == digest,
              f"{len(got_b)} B back sha256 {hashlib.sha256(got_b).hexdigest()[:16]}, kernel "
              f"read {eof.get('bytes')} B sha256 {str(eof.get('sha256', ''))[:16]}")
    run.check("the nft table existed during the run and is removed afterwards",
              present and gone, f"present {present}, removed {gone}")
    run.metrics.update({"bytes": SIZE, "nth": NTH, "ce_marked_kernel_out": k_marked,
                        "ce_marked_rawtcp_out": r_marked, "delivered_ce": ce_seen,
                        "ece_acks_out": ece_out, "ece_runs": runs, "cwr_in": len(cwr_in),
                        "ece_in": ece_in, "cwr_out": cwr_out, "kernel_cwr_samples": k_cwr_state,
                        "kernel_delivered_ce": k_ce,
                        "kernel_tcpi_options": k_opts, "kernel_ssthresh": kti.get("ssthresh")})


__all__ = ["ecn", "mark_rules"]
