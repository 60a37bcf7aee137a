"""Three senders, one lossy network: rawtcp with CUBIC, rawtcp with NewReno, and Linux's
own TCP sender, each moving the same bytes to a Linux receiver through 1 % random loss
(nftables in the receiver's namespace, as rawtcp.experiments.network_loss does it).

RFC 9438 (CUBIC) and RFC 5681 / RFC 6582 (NewReno): the window grows, a loss cuts it
(CUBIC to 0.7, NewReno to 0.5 of the flight) and it grows again. rawtcp's window comes from
its ``cc`` trace events, the kernel sender's from TCP_INFO sampled every millisecond over
sock_diag (rawtcp.lab.kernel.CcPoller), both on the run's clock; the report's ``cwnd`` plot
overlays the three curves, each flow from its own start.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from rawtcp.core.config import Config
from rawtcp.experiments.base import Run, experiment, lab_config

PORT = 5001
SIZE = 20 * 1000 * 1000     # bytes per transfer (tests make it smaller)
LOSS_PCT = 1.0
DATA = "meta length > 200"  # data segments only: the handshakes and pure ACKs pass
TRANSFER_TIMEOUT = 60.0     # seconds per transfer at most


def _algorithms() -> list[str]:
    """The algorithms rawtcp can be asked for (Config.congestion), CUBIC first; [""] when
    this build has no choice (its one algorithm runs)."""
    if "congestion" not in Config.keys():
        return [""]
    choices = next((f.choices for f in Config.fields_info() if f.name == "congestion"), None)
    want = [a for a in ("cubic", "reno") if choices is None or a in choices]
    return want or [str(Config().congestion)]


def _pattern(n: int) -> bytes:
    unit = b"rawtcp congestion "
    return (unit * (n // len(unit) + 1))[:n]


def _flow_summary(run: Run, conn: str, nbytes: int, seconds: float) -> dict[str, Any]:
    cc = [e for e in run.events("cc") if e.get("conn") == conn]
    rtx = [e for e in run.events("retransmit") if e.get("conn") == conn]
    return {"conn": conn, "bytes": nbytes, "seconds": round(seconds, 3),
            "goodput_mbit": round(nbytes * 8 / seconds / 1e6, 2) if seconds > 0 else None,
            "retransmits": len(rtx), "cc_events": len(cc),
            "algo": sorted({str(e.get("algo")) for e in cc}),
            "max_cwnd": max((int(e.get("cwnd") or 0) for e in cc), default=None),
            "loss_reaction": any(e.get("ssthresh") is not None for e in cc)}


@experiment("congestion", slow=True,
            title="CUBIC, NewReno and Linux's own sender under 1 % loss",
            expect="rawtcp sends the same bytes with CUBIC, then NewReno, and a Linux sender "
                   "does too, each to a Linux receiver through 1 % nftables loss; every byte "
                   "arrives; each sender's window grows, is cut by losses (ssthresh becomes "
                   "finite) and grows again; the report's cwnd plot overlays the three curves")
def congestion(run: Run) -> None:
    """RFC 9438, RFC 5681 3.1-3.2, RFC 6582: window growth and reduction under random loss,
    rawtcp's two algorithms beside Linux's CUBIC over the same veth and the same nftables
    loss rule."""
    from rawtcp.lab.kernel import CcPoller
    from rawtcp.lab.netem import Loss, RandomDrop
    from rawtcp.lab.peers import Client
    from rawtcp.report.ccplots import cwnd_plot

    size = int(SIZE)
    data = _pattern(size)
    digest = hashlib.sha256(data).hexdigest()
    algos = _algorithms()
    flows: list[dict[str, Any]] = []
    labels: dict[str, str] = {}

    def clock() -> int:
        return (time.monotonic_ns() - run.clock_origin) // 1000

    with run.veth_lab(mode="rawip", family="ipv4") as lab:
        srv = lab.server("sink", port=PORT, max_conns=len(algos) + 1,
                         timeout=TRANSFER_TIMEOUT * (len(algos) + 2))
        srv.wait_ready()
        loss = Loss(lab.kernel_netns,
                    [RandomDrop(LOSS_PCT, match=f"tcp dport {PORT} {DATA}")], direction="in")
        with loss:
            run.progress(f"nft table {loss.table}: {LOSS_PCT:g} % of data segments to port "
                         f"{PORT} dropped; {size} bytes per transfer")
            for algo in algos:
                cfg = lab_config(congestion=algo) if algo else lab_config()
                st = run.stack(lab, cfg)
                dropped0 = loss.dropped()
                s = st.socket()
                s.settimeout(TRANSFER_TIMEOUT)
                s.connect((lab.kernel_addr, PORT))
                conn = s.tcb.conn
                t0 = time.monotonic()
                s.sendall(data)
                s.shutdown(1)
                s.recv(1)                        # the sink closes after reading to EOF
                seconds = time.monotonic() - t0
                s.close()
                st.close()
                f = _flow_summary(run, conn, size, seconds)
                f.update(sender="rawtcp", asked=algo or "(no choice in this build)",
                         nft_drops=loss.dropped() - dropped0)
                flows.append(f)
                labels[conn] = f"rawtcp {algo or 'default'}"
                run.progress(f"rawtcp {algo or '(default)'}: {size} B in {seconds:.2f} s, "
                             f"{f['retransmits']} retransmissions, {f['nft_drops']} dropped")
            dropped0 = loss.dropped()
            poller = CcPoller(lab.rawtcp_netns, PORT, clock, run.tracer, interval=0.0005,
                              duration=TRANSFER_TIMEOUT, families=("ipv4",))
            with poller:
                t0 = time.monotonic()
                cl = Client(lab.rawtcp_netns, lab.kernel_addr, PORT, count=size,
                            pattern="rawtcp congestion ", timeout=TRANSFER_TIMEOUT,
                            congestion="cubic")
                with cl:
                    cl.result(TRANSFER_TIMEOUT)
                seconds = time.monotonic() - t0
            ksamples = [e for e in run.events("kernel") if e.get("cwnd") is not None]
            local = next((e["local"] for e in ksamples), "?")
            used = sorted({str(e.get("algo")) for e in ksamples if e.get("algo")})
            kernel_algo = "/".join(used) or "?"   # its socket asked for cubic (TCP_CONGESTION)
            labels[f"{local}>{lab.kernel_addr}:{PORT}"] = f"kernel {kernel_algo}"
            flows.append({
                "sender": "kernel", "asked": "cubic", "conn": local, "bytes": size,
                "seconds": round(seconds, 3),
                "goodput_mbit": round(size * 8 / seconds / 1e6, 2) if seconds > 0 else None,
                "retransmits": max((e.get("total_retrans") or 0 for e in ksamples), default=0),
                "cc_events": len(ksamples),
                "algo": sorted({str(e.get("algo")) for e in ksamples if e.get("algo")}),
                "max_cwnd": max((int(e["cwnd"]) * int(e.get("mss") or 1448)
                                 for e in ksamples), default=None),
                # a cut shows as a finite ssthresh or, when the poll missed that moment
                # (or Linux undid it), as cwnd falling below a value it had reached
                "loss_reaction": any(e.get("ssthresh") is not None for e in ksamples)
                or _fell([int(e["cwnd"]) for e in ksamples]),
                "nft_drops": loss.dropped() - dropped0, "poller_samples": poller.samples})
            run.progress(f"kernel {kernel_algo}: {size} B in {seconds:.2f} s, "
                         f"{len(ksamples)} cwnd samples")
        received = [e for e in srv.events if e.get("event") == "eof"]

    # ------------------------------------------------------------------ the evidence
    got = [(e.get("bytes"), str(e.get("sha256", ""))[:12]) for e in received]
    run.check("every transfer arrived whole at the Linux receiver (bytes and sha256)",
              len(received) == len(flows)
              and all(e.get("bytes") == size and e.get("sha256") == digest for e in received),
              f"{got} for {len(flows)} transfers of {size} B")
    ran = [f"{f['sender']} {'/'.join(f['algo']) or '?'}" for f in flows]
    rawtcp_flows = [f for f in flows if f["sender"] == "rawtcp"]
    traced = all(f["cc_events"] for f in rawtcp_flows)
    asked_ok = all(not f["asked"] or f["asked"] in f["algo"] or f["asked"].startswith("(")
                   for f in rawtcp_flows)
    run.check("rawtcp traced its window with the algorithm asked for (cc events)",
              traced and asked_ok,
              "; ".join(f"asked {f['asked']}: {f['cc_events']} cc events, algo "
                        f"{f['algo'] or 'none'}" for f in rawtcp_flows)
              + ("" if traced else " (no cc events: this build does not trace cwnd)"))
    kf = flows[-1]
    run.check("the kernel's sender was sampled (TCP_INFO over sock_diag) running cubic",
              kf["cc_events"] > 0 and "cubic" in kf["algo"],
              f"{kf['cc_events']} samples with a cwnd change, algo {kf['algo']} (its socket "
              f"asks for cubic), {kf['poller_samples']} polls")
    run.check("the network dropped data of every transfer (nft counter)",
              all(f["nft_drops"] > 0 for f in flows),
              [(f["sender"], f["asked"], f["nft_drops"]) for f in flows])
    run.check("every sender cut its window after a loss (ssthresh became finite, or cwnd "
              "fell below a value it had reached)",
              all(f["loss_reaction"] for f in flows),
              [(f["sender"], f["asked"], f["loss_reaction"]) for f in flows])
    run.metrics.update({"bytes": size, "loss_pct": LOSS_PCT, "algorithms_ran": ran,
                        "flows": flows})
    for f in flows:
        key = f"{f['sender']}_{f['asked'] if not f['asked'].startswith('(') else 'default'}"
        run.metrics[f"{key}_mbit"] = f["goodput_mbit"]
    if run.report_dir:
        import os

        path = os.path.join(run.report_dir, f"{run.exp.name}.cwnd.png")
        cwnd_plot(run.events(), path, labels=labels, align="flow",
                  title=f"cwnd under {LOSS_PCT:g} % loss, {size} B each: " + ", ".join(ran))
        run.files["cwnd"] = path


__all__ = ["congestion"]


def _fell(cwnds: list[int]) -> bool:
    """True if the window ever went below the largest value it had before."""
    top = 0
    for c in cwnds:
        if c < top:
            return True
        top = max(top, c)
    return False
