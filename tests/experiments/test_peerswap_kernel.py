"""--peer-swap against the kernel: the scenario runs with rawtcp and again with a Linux socket in
its place (its own namespace, the drops done by nftables), and the differences reported are
the real ones. Each test is one rawtcp run plus one Linux run (~5-9 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rawtcp.experiments.base import is_subsequence
from rawtcp.experiments.peerswap import run_peer_swap
from rawtcp.trace import read_trace

pytestmark = pytest.mark.kernel


def _explain(ps) -> str:
    return ps.text + "\n" + "\n".join(f"{c.name}: {c.ok} {c.evidence}" for c in ps.rawtcp.checks)


def test_lifecycle_linux_closes_the_same_way_rfc9293_3_6() -> None:
    """RFC 9293 3.6 case 1 from both: the same segments one to one (modulo timing, window and
    options), the same states; the one difference is how long TIME_WAIT lasts: 2 x msl in
    rawtcp's lab configuration (2 s), Linux's fixed 60 s (read from ss's timer)."""
    ps = run_peer_swap("lifecycle")
    lin = ps.linux
    assert ps.rawtcp.passed and lin.errors == [], _explain(ps)
    assert [s["step"] for s in lin.steps] == ["connect", "send", "recv", "close", "end"]
    assert all(s["ok"] for s in lin.steps), lin.steps
    assert [s for _, s in ps.states["linux"]] == [
        "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"]
    assert "TIME_WAIT" in lin.ss_states                # ss saw it too
    assert all(a is not None and b is not None for a, b in ps.pairs), _explain(ps)
    assert [d.kind for d in ps.differences] == ["timer"], _explain(ps)
    tw = ps.differences[0].data
    assert tw["state"] == "TIME_WAIT" and tw["rawtcp_ended"] and tw["linux_ended"]
    assert tw["linux_ms"] > 10 * tw["rawtcp_ms"], tw
    # the Linux run has no fault rule: nothing dropped, nothing marked
    assert lin.translations == [] and lin.nft == [] and lin.marked == 0


def test_final_ack_drop_linux_re_acks_from_time_wait_rfc9293_3_10_7_4(tmp_path) -> None:
    """Through the command line (--json, --report). The final ACK is dropped by nftables; the
    kernel retransmits its FIN and the Linux socket, in TIME_WAIT, acknowledges it again
    ("the only thing that can arrive in this state is a retransmission of the remote FIN.
    Acknowledge it, and restart the 2 MSL timeout"), exactly as rawtcp does."""
    rep = tmp_path / "rep"
    p = subprocess.run([sys.executable, "-m", "rawtcp", "experiment", "run", "final-ack-drop",
                        "--peer-swap", "--json", "--report", str(rep)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    j = json.loads(p.stdout)
    assert j["peer_swap"] and j["passed"] and j["rawtcp"]["verdict"] == "PASS"
    lin = j["linux"]
    assert lin["errors"] == []
    (t,) = lin["translations"]
    assert t["rule"] == "drop out flags=A state=TIME_WAIT nth=1"
    assert (t["applied"], t["exact"], t["where"]) == (True, False, "peer")
    assert lin["nft_drops"] == [{"side": "peer", "rule": t["rule"], "packets": 1}]
    assert lin["marked_drops"] == 1
    rows = [b for _, b in j["rows"] if b is not None]
    dropped = [r for r in rows if r["dropped"]]
    assert [(r["dir"], r["flags"], r["state"]) for r in dropped] == [("out", "A", "TIME_WAIT")]
    fins = [r for r in rows if r["dir"] == "in" and "F" in r["flags"]]
    assert len(fins) == 2 and fins[1]["rtx"] and fins[1]["state"] == "TIME_WAIT"
    re_ack = [r for r in rows if r["dir"] == "out" and r["t"] > fins[1]["t"]]
    assert [(r["flags"], r["rack"], r["dropped"]) for r in re_ack] == \
        [("A", dropped[0]["rack"], False)]
    assert "TIME_WAIT" in lin["ss_states"]
    # the kernel peer: LAST_ACK until the re-ACK, then gone
    events = read_trace(j["files"]["linux_events"])
    kernel = [e["state"] for e in events if e.get("ev") == "kernel"]
    assert is_subsequence(["LAST_ACK", "CLOSED"], kernel), kernel
    # the differences: the same segments one to one, the drop on the same row of both; the
    # one difference is TIME_WAIT's length (2 s vs Linux's 60 s)
    assert all(a is not None and b is not None for a, b in j["rows"]), j["differences"]
    assert [d["kind"] for d in j["differences"]] == ["timer"], j["differences"]
    assert j["differences"][0]["state"] == "TIME_WAIT"
    for key in ("linux_pcap", "diff", "linux_ladder", "diff_json", "pcap", "ladder"):
        assert os.path.getsize(j["files"][key]) > 0, key
    text = (rep / "final-ack-drop.diff.txt").read_text()
    assert "nftables (peer namespace) dropped 1 packet(s)" in text


def test_final_ack_drop_passive_linux_retransmits_its_fin_rfc9293_3_8_1() -> None:
    """The kernel closes first; its ACK of the Linux socket's FIN dies in the Linux socket's
    namespace (nftables, prerouting): Linux, in LAST_ACK, sends its FIN again (its RTO or its
    tail-loss probe), the kernel (TIME_WAIT) acknowledges it again, and the Linux socket is
    gone."""
    ps = run_peer_swap("final-ack-drop-passive")
    lin = ps.linux
    assert ps.rawtcp.passed and lin.errors == [], _explain(ps)
    assert lin.nft == [{"side": "linux", "rule": "drop in flags=A state=LAST_ACK nth=1",
                        "packets": 1}]
    right = [b for _, b in ps.pairs if b is not None]
    ours = [r for r in right if r.dir == "out" and "F" in r.flags]
    assert len(ours) == 2 and ours[1].rtx and ours[0].state == ours[1].state == "LAST_ACK"
    dead = [r for r in right if r.dropped]
    assert [(r.dir, r.flags, r.rack) for r in dead] == [("in", "A", ours[0].rseq + 1)]
    assert is_subsequence(["CLOSE_WAIT", "LAST_ACK", "CLOSED"],
                          [s for _, s in ps.states["linux"]])
    assert is_subsequence(["LAST_ACK", "CLOSED"], lin.ss_states)
    # Both sides delay the ACK of the kernel's FIN (it puts the connection in pingpong mode,
    # RFC 1122 4.2.3.2; Linux's tcp_fin), so when the data before it was ACKed already, the
    # FIN came once and the application closes before the delayed ACK is due (40 ms at
    # least), its own FIN carries that ACK: no separate ACK on either side. (When data and
    # FIN are read in one batch, one ACK covers both. The timing of the rest varies with
    # load: the kernel peer sometimes probes its FIN early, RACK-TLP, when its data and FIN
    # are both unacknowledged.)
    left = [a for a, _ in ps.pairs if a is not None]
    rfin = next(r for r in left if r.dir == "out" and "F" in r.flags)
    for recs, fin in ((left, rfin), (right, ours[0])):
        kfins = [r for r in recs if r.dir == "in" and "F" in r.flags and r.t <= fin.t]
        if len(kfins) != 1 or fin.t - kfins[0].t >= 40:
            continue
        kfin = kfins[0]
        if not any(r.dir == "out" and "A" in r.flags and r.rack == kfin.rseq
                   and r.t <= kfin.t for r in recs):
            continue                      # the data was not ACKed before the FIN came
        acks = [r for r in recs if r.dir == "out" and r.flags == "A"
                and r.rack == kfin.rseq + 1 and r.t < fin.t]
        assert acks == [], _explain(ps)
        assert fin.rack == kfin.rseq + 1, _explain(ps)              # the FIN carries it


def test_time_wait_ablation_linux_without_buckets_is_gone_before_the_fin_rfc9293_3_10_7_1(
) -> None:
    """time_wait=0 has no Linux switch; tcp_max_tw_buckets=0 is the nearest, and it goes
    further: Linux turns an orphaned FIN_WAIT_2 socket into a TIME_WAIT mini-socket (with
    tcp_fin_timeout < 60 s), so without buckets the socket is gone in FIN_WAIT_2 and the
    kernel's first FIN already meets no connection: RST (RFC 9293 3.10.7.1). rawtcp ACKs that
    FIN from TIME_WAIT (the ACK the rule drops) and sends its RST to the retransmission."""
    ps = run_peer_swap("time-wait-ablation")
    lin = ps.linux
    assert ps.rawtcp.passed and lin.errors == [], _explain(ps)
    assert any("tcp_max_tw_buckets=0 (approximate)" in n for n in lin.config_notes)
    right = [b for _, b in ps.pairs if b is not None]
    kfins = [r for r in right if r.dir == "in" and "F" in r.flags]
    rsts = [r for r in right if r.dir == "out" and "R" in r.flags]
    assert len(kfins) == 1 and kfins[0].state == "CLOSED" and len(rsts) == 1, _explain(ps)
    assert right.index(rsts[0]) == right.index(kfins[0]) + 1        # the answer to it
    assert "TIME_WAIT" not in lin.ss_states and "TIME_WAIT" not in [s for _, s in
                                                                     ps.states["linux"]]
    assert lin.nft == [{"side": "peer", "rule": "drop out flags=A seq=66 nth=1",
                        "packets": 0}]          # Linux never sent the ACK the rule names
    kinds = [(d.kind, d.left and d.left["flags"]) for d in ps.differences]
    assert kinds == [("state", "FA"), ("only-rawtcp", "A"), ("only-rawtcp", "FA"),
                     ("state-sequence", None)], _explain(ps)
