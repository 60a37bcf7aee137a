"""Congestion control made visible: cwnd/ssthresh over time and RTT over time, for rawtcp
(from its ``cc`` trace events) and the kernel (from ``kernel`` events carrying ``cwnd``,
sampled from the kernel's TCP_INFO by :mod:`rawtcp.lab.kernel`) on one time axis.

Event fields read (docs/contracts.md, docs/report.md):

- ``cc``: ``conn``, ``cwnd``, ``ssthresh`` (bytes, null = infinite), ``srtt``, ``rttvar``,
  ``rto`` (us), ``pipe`` (bytes), ``ca`` (open/disorder/recovery/loss/cwr), ``algo``;
- ``kernel``: ``local``, ``remote``, ``cwnd`` and ``ssthresh`` in segments (as Linux counts
  them, ssthresh null when infinite), ``mss`` (bytes), ``rtt``/``rttvar`` (us), ``ca``;
  ``kernel`` events without ``cwnd`` (state samples) are skipped;
- ``rto`` (``srtt``, ``rttvar``, ``rto``) when a trace has no ``cc`` events;
- ``seg``: RTT samples measured from the trace itself (an ACK that covers a segment sent
  once: Karn's rule).

:func:`cwnd_series` / :func:`rtt_series` compute, :func:`cwnd_plot` / :func:`rtt_plot` draw
(PNG or SVG by extension) and return the series.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rawtcp.report.enrich import enrich
from rawtcp.report.plots import _figure, _format, _save

Event = dict[str, Any]

__all__ = ["cwnd_plot", "cwnd_series", "has_cc", "rtt_plot", "rtt_series"]


def has_cc(events: list[Event]) -> bool:
    """True when the trace holds something :func:`cwnd_plot` can draw."""
    return any(e.get("ev") == "cc" or (e.get("ev") == "kernel" and e.get("cwnd") is not None)
               for e in events)


def _flow_of(e: Event) -> tuple[str, str] | None:
    if e.get("ev") == "cc":
        return ("rawtcp", str(e.get("conn") or "?"))
    if e.get("ev") == "kernel" and e.get("cwnd") is not None:
        return ("kernel", f"{e.get('local')}>{e.get('remote')}")
    return None


def _t0(events: list[Event]) -> int:
    return min((int(e["t"]) for e in events if "t" in e), default=0)


def cwnd_series(events: list[Event], labels: Mapping[str, str] | None = None,
                align: str = "run") -> dict[str, dict[str, Any]]:
    """One series per flow: ``{label: {"who": "rawtcp"|"kernel", "algo", "t": [ms],
    "cwnd": [bytes], "ssthresh": [bytes or None], "ca": [state]}}``.

    The label is ``labels[conn]`` when given (``conn`` as in the trace for rawtcp, ``local>
    remote`` for the kernel), else ``"rawtcp <algo> <conn>"`` / ``"kernel <local>>
    <remote>"``. ``align="run"`` puts every flow on the run's clock (ms from the first
    event); ``"flow"`` starts each flow at 0 (to overlay transfers made one after another)."""
    if align not in ("run", "flow"):
        raise ValueError(f"align must be 'run' or 'flow', not {align!r}")
    labels = labels or {}
    t0 = _t0(events)
    out: dict[str, dict[str, Any]] = {}
    for e in sorted((e for e in events if "t" in e), key=lambda e: e["t"]):
        fl = _flow_of(e)
        if fl is None:
            continue
        who, ident = fl
        algo = str(e.get("algo") or "")
        label = labels.get(ident) or " ".join(x for x in (who, algo, ident) if x)
        if who == "kernel":
            mss = int(e.get("mss") or 0) or 1448
            cwnd = int(e["cwnd"]) * mss
            sst = e.get("ssthresh")
            sst = None if sst is None else int(sst) * mss
        else:
            cwnd = int(e.get("cwnd") or 0)
            sst = e.get("ssthresh")
            sst = None if sst is None else int(sst)
        s = out.setdefault(label, {"who": who, "algo": algo, "t0": int(e["t"]), "t": [],
                                   "cwnd": [], "ssthresh": [], "ca": []})
        base = s["t0"] if align == "flow" else t0
        s["t"].append((int(e["t"]) - base) / 1000)
        s["cwnd"].append(cwnd)
        s["ssthresh"].append(sst)
        s["ca"].append(str(e.get("ca") or ""))
    return out


_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def cwnd_plot(events: list[Event], path: str | os.PathLike[str],
              labels: Mapping[str, str] | None = None, align: str = "run",
              title: str | None = None) -> dict[str, dict[str, Any]]:
    """cwnd (solid) and ssthresh (dashed, where finite) in KiB over time, one colour per
    flow (rawtcp's connections and the kernel's sockets). Returns :func:`cwnd_series`."""
    fmt = _format(path)
    series = cwnd_series(events, labels, align)
    fig = _figure()
    ax = fig.subplots()
    for i, (label, s) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        ax.step(s["t"], [c / 1024 for c in s["cwnd"]], where="post", color=color,
                linewidth=1.2, label=f"{label} cwnd")
        pts = [(t, v / 1024) for t, v in zip(s["t"], s["ssthresh"], strict=True)
               if v is not None and v < (1 << 30)]
        if pts:
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color=color,
                    linestyle="--", linewidth=0.9, label=f"{label} ssthresh")
    ax.set_xlabel("time (ms)" + (", each flow from its start" if align == "flow" else ""))
    ax.set_ylabel("KiB")
    ax.set_title(title or "congestion window and slow-start threshold")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(loc="upper left", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no cc or kernel cwnd events in this trace", ha="center",
                va="center", transform=ax.transAxes)
    _save(fig, path, fmt)
    return series


def _trace_samples(events: list[Event]) -> dict[str, list[tuple[int, int]]]:
    """RTT samples from seg events per connection: (t_us of the ACK, rtt_us) for each ACK
    that newly covers a data segment sent once (Karn: never a retransmitted one)."""
    out: dict[str, list[tuple[int, int]]] = {}
    pending: dict[str, list[list[int]]] = {}     # conn -> [end, t_sent, retransmitted]
    for e in enrich(sorted((e for e in events if e.get("ev") == "seg"),
                           key=lambda e: e.get("t", 0))):
        conn, t = str(e.get("conn")), int(e.get("t", 0))
        q = pending.setdefault(conn, [])
        if e.get("dir") == "out" and e.get("len") and e.get("rseq") is not None:
            end = int(e["rseq"]) + int(e["len"])
            if e.get("rtx"):
                for item in q:
                    if int(e["rseq"]) < item[0] <= end:
                        item[2] = 1
            else:
                q.append([end, t, 0])
        elif e.get("dir") == "in" and "A" in str(e.get("flags")) and e.get("rack") is not None:
            rack = int(e["rack"])
            covered = [item for item in q if item[0] <= rack]
            if covered:
                del q[:len(covered)]
                last = covered[-1]
                if not any(item[2] for item in covered):
                    out.setdefault(conn, []).append((t, t - last[1]))
    return out


def rtt_series(events: list[Event], labels: Mapping[str, str] | None = None
               ) -> dict[str, dict[str, Any]]:
    """``{label: {"who", "t": [ms], "srtt": [ms], "rttvar": [ms], "rto": [ms]}}`` for
    rawtcp (``cc`` events, else ``rto`` events) and the kernel (``kernel`` events with
    ``rtt``), plus ``{"<conn> samples": {"who": "trace", "t", "rtt"}}`` measured from the
    segments. Times in ms from the run's first event."""
    labels = labels or {}
    t0 = _t0(events)
    use_cc = any(e.get("ev") == "cc" for e in events)
    out: dict[str, dict[str, Any]] = {}
    for e in sorted((e for e in events if "t" in e), key=lambda e: e["t"]):
        kind = e.get("ev")
        if kind == "cc" or (kind == "rto" and not use_cc):
            ident, who = str(e.get("conn") or "?"), "rawtcp"
        elif kind == "kernel" and e.get("rtt") is not None:
            ident, who = f"{e.get('local')}>{e.get('remote')}", "kernel"
        else:
            continue
        label = labels.get(ident) or f"{who} {ident}"
        s = out.setdefault(label, {"who": who, "t": [], "srtt": [], "rttvar": [], "rto": []})
        s["t"].append((int(e["t"]) - t0) / 1000)
        srtt = e.get("srtt") if who == "rawtcp" else e.get("rtt")
        s["srtt"].append(None if srtt is None else int(srtt) / 1000)
        var = e.get("rttvar")
        s["rttvar"].append(None if var is None else int(var) / 1000)
        rto = e.get("rto")
        s["rto"].append(None if rto is None else int(rto) / 1000)
    for conn, pts in _trace_samples(events).items():
        label = f"{labels.get(conn) or conn} samples"
        out[label] = {"who": "trace", "t": [(t - t0) / 1000 for t, _ in pts],
                      "rtt": [r / 1000 for _, r in pts]}
    return out


def rtt_plot(events: list[Event], path: str | os.PathLike[str],
             labels: Mapping[str, str] | None = None, title: str | None = None
             ) -> dict[str, dict[str, Any]]:
    """RTT samples (dots, from the segments), smoothed RTT (solid) and RTO (dotted) in ms over
    time, rawtcp and kernel. Returns :func:`rtt_series`."""
    fmt = _format(path)
    series = rtt_series(events, labels)
    fig = _figure()
    ax = fig.subplots()
    for i, (label, s) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        if s["who"] == "trace":
            ax.plot(s["t"], s["rtt"], linestyle="none", marker=".", markersize=3,
                    color=color, alpha=0.6, label=f"{label} (ACK - send)")
            continue
        pts = [(t, v) for t, v in zip(s["t"], s["srtt"], strict=True) if v is not None]
        if pts:
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color=color,
                    label=f"{label} srtt")
        rto = [(t, v) for t, v in zip(s["t"], s["rto"], strict=True) if v is not None]
        if rto:
            ax.step([p[0] for p in rto], [p[1] for p in rto], where="post", color=color,
                    linestyle=":", label=f"{label} rto")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("ms")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_title(title or "round-trip time")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(loc="upper left", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no RTT information in this trace", ha="center", va="center",
                transform=ax.transAxes)
    _save(fig, path, fmt)
    return series
