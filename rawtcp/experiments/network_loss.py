"""The network drops, not rawtcp: nftables rules inside the kernel's namespace.

RFC 5681 3.2 (fast retransmit / fast recovery), RFC 6298 5 (retransmission timer), RFC 2018
(SACK). rawtcp's fault engine is not used here: the loss sits in the kernel's own packet path
(rawtcp.lab.netem), as a lossy network would, and the nft counters say how many packets died.
"""

from __future__ import annotations

import hashlib
import random

from rawtcp.experiments.base import Run, experiment, lab_config, read_to_eof
from rawtcp.experiments.base import connect_kernel as _connect
from rawtcp.host.netns import exec_prefix
from rawtcp.host.system import run as run_cmd

PORT = 7
SIZE = 128 * 1024   # echoed back, so 256 KiB cross the network per flow
FLOWS = 2
NTH = 3             # the 3rd data segment rawtcp sends in each flow dies
RANDOM_PCT = 5.0    # of the kernel's data packets die at random
DATA = "meta length > 200"   # data segments only (the handshake and pure ACKs pass)


def _echo_all(s, data: bytes) -> bytes:
    """Send everything, read the echo back to EOF (after our SHUT_WR)."""
    import threading

    def writer() -> None:
        s.sendall(data)
        s.shutdown(1)

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    got = read_to_eof(s)
    th.join(5)
    return got


def _late_arrivals(run: Run, conn: str) -> int:
    """Kernel data segments that reached rawtcp below the highest sequence already received:
    the kernel's retransmissions of segments the network lost, as rawtcp saw them (a metric:
    a lost last segment of a burst comes back at the top, so this may count fewer)."""
    top, late = None, 0
    for e in run.segs("in"):
        if e.get("conn") != conn or not e.get("len") or e.get("rseq") is None:
            continue
        end = e["rseq"] + e["len"]
        if top is not None and e["rseq"] < top:
            late += 1
        top = end if top is None else max(top, end)
    return late


def _nth_data_rseq(run: Run, conn: str, n: int) -> int | None:
    """Relative seq of the n-th data segment rawtcp sent on `conn` (first transmissions)."""
    seen: set[int] = set()
    for e in run.segs("out"):
        if e.get("conn") != conn or not e.get("len"):
            continue
        if e["rseq"] in seen:
            continue
        seen.add(e["rseq"])
        if len(seen) == n:
            return e["rseq"]
    return None


@experiment("network-loss", title="The network drops (nftables in the lab), not rawtcp",
            expect="the 3rd data segment of every flow from rawtcp dies in the kernel's input "
                   "and 5 % of the kernel's data packets die on the way to rawtcp; both sides "
                   "retransmit; every echoed byte is identical; the nft counters agree with "
                   "the retransmissions; the nft tables are gone afterwards")
def network_loss(run: Run) -> None:
    """RFC 5681 3.2 and RFC 6298 5: a segment lost in the network is repaired by the sender
    (fast retransmit on duplicate ACKs / SACK, otherwise on RTO). rawtcp sends, the kernel
    echoes, over a veth pair (rawtcp on raw IP sockets). nftables in the kernel's namespace
    drops the NTH data segment of each flow arriving from rawtcp (NthDrop: once per flow);
    nftables at the far end of the veth drops a random share of the kernel's data packets
    (RandomDrop). Checks: bytes identical, rawtcp retransmitted exactly the sequence
    numbers the network dropped, the kernel's retransmission counter (ss) covers the drops in
    its output, and the rules are removed at the end."""
    from rawtcp.host import nft
    from rawtcp.lab.netem import Loss, NthDrop, RandomDrop

    data = random.Random(run.seed).randbytes(SIZE)
    with run.veth_lab(mode="rawip") as lab:
        # the kernel waits a little before its close, so that `ss` sees its counters
        srv = lab.server("echo", port=PORT, max_conns=FLOWS, timeout=60, close_delay=0.2)
        srv.wait_ready()
        st = run.stack(lab, lab_config())
        watch = run.watch_kernel(lab, PORT, st)
        to_kernel = Loss(lab.kernel_netns, [NthDrop(NTH, match=f"tcp dport {PORT} {DATA}")],
                         direction="in")
        # The kernel's own output hook would not do: a packet dropped there is a local
        # send error for Linux TCP (EPERM), which sends it again later as if new, with no
        # retransmission counted. So the kernel's packets die after they left it: in the
        # input hook of the namespace on the far end of the veth (rawtcp's raw IP sockets
        # read after that hook).
        from_kernel = Loss(lab.rawtcp_netns,
                           [RandomDrop(RANDOM_PCT, match=f"tcp sport {PORT} {DATA}")],
                           direction="in")
        flows: list[dict] = []
        k_rtx0 = retrans_segs(lab.kernel_netns)
        with to_kernel, from_kernel:
            tables = [to_kernel.table, from_kernel.table]
            run.progress(f"nft tables {tables[0]} (input: drop data segment {NTH} of each "
                         f"flow), {tables[1]} (output: drop {RANDOM_PCT:g} % of data)")
            for i in range(FLOWS):
                s = _connect(lab, st, PORT, timeout=20)
                conn = s.tcb.conn
                got = _echo_all(s, data)
                info = s.tcp_info()
                s.close()
                flows.append({"conn": conn, "ok": got == data, "bytes": len(got),
                              "sha256": hashlib.sha256(got).hexdigest()[:16],
                              "retransmits": info.get("total_retrans", 0)})
                run.progress(f"flow {i + 1}: {len(got)} B back, "
                             f"{flows[-1]['retransmits']} retransmissions by rawtcp")
            in_drops = to_kernel.dropped()
            out_drops = from_kernel.dropped()
            # every echoed byte is back, so every retransmission of the kernel's data is done
            k_exact = retrans_segs(lab.kernel_netns) - k_rtx0
            where = [(lab.kernel_netns, to_kernel.table), (lab.rawtcp_netns, from_kernel.table)]
            present = [nft.table_exists(ns, "inet", t) for ns, t in where]
        gone = [not nft.table_exists(ns, "inet", t) for ns, t in where]
        watch.stop()

        run.check("every echoed byte is identical (both flows)",
                  all(f["ok"] for f in flows),
                  [(f["bytes"], f["sha256"]) for f in flows])
        run.check(f"the network dropped data segment {NTH} of each flow once (nft counter)",
                  in_drops == FLOWS, f"{in_drops} dropped in the kernel's input, "
                                     f"{FLOWS} flows")
        missing = []
        for f in flows:
            rseq = _nth_data_rseq(run, f["conn"], NTH)
            rtx = [e for e in run.events("retransmit")
                   if e.get("conn") == f["conn"] and e.get("rseq") == rseq]
            f["dropped_rseq"] = rseq
            if rseq is None or not rtx:
                missing.append((f["conn"], rseq))
        run.check("rawtcp retransmitted exactly what the network dropped (same rseq)",
                  not missing, missing or [(f["conn"], f["dropped_rseq"]) for f in flows])
        total_rtx = sum(f["retransmits"] for f in flows)
        run.check("rawtcp's retransmissions cover the nft drops of its segments",
                  total_rtx >= in_drops, f"{total_rtx} retransmissions, {in_drops} drops")
        k_rtx = sum(max((s.get("total_retrans") or 0 for s in watch.samples
                         if s["remote"] == f["conn"].split(">")[0]), default=0)
                    for f in flows)
        late = sum(_late_arrivals(run, f["conn"]) for f in flows)
        # ss is sampled, and the socket may be gone before the last retransmission is seen,
        # so the kernel's counter proves that it retransmitted, not how often; the identical
        # bytes above prove that every loss was repaired.
        run.check("the kernel retransmitted what the network dropped of its packets "
                  "(ss total_retrans)", k_rtx > 0 if out_drops else True,
                  f"kernel total_retrans {k_rtx} (sampled), {out_drops} of its packets dropped, "
                  f"{late} late arrivals seen by rawtcp")
        run.check("the nft tables existed during the run and are removed afterwards",
                  all(present) and all(gone), f"present {present}, removed {gone}")
        run.metrics.update({"nft_dropped_in": in_drops, "nft_dropped_out": out_drops,
                            "rawtcp_retransmits": total_rtx, "kernel_total_retrans": k_rtx,
                            "kernel_retrans_segs": k_exact,
                            "late_kernel_segments": late,
                            "flows": FLOWS, "bytes_per_flow": SIZE})


def retrans_segs(netns: str) -> int:
    """The namespace's TCP RetransSegs counter (/proc/net/snmp, RFC 4022 tcpRetransSegs):
    every segment its kernel retransmitted, exact where `ss` is sampled."""
    text = run_cmd(exec_prefix(netns) + ["cat", "/proc/net/snmp"]).stdout
    rows = [ln.split() for ln in text.splitlines() if ln.startswith("Tcp:")]
    if len(rows) < 2 or "RetransSegs" not in rows[0]:
        raise OSError(f"no Tcp RetransSegs in /proc/net/snmp of {netns}")
    return int(rows[1][rows[0].index("RetransSegs")])


__all__ = ["network_loss", "retrans_segs"]
