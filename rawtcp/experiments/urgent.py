"""Urgent data from the kernel (RFC 9293 3.8.5, RFC 6093).

A Linux client sends "ABCDEFG", then "H" with MSG_OOB, then "IJKL". On the wire the segment
with "H" carries URG and an urgent pointer that points one past it (RFC 6093: what Linux and
BSD do). rawtcp, like Linux with SO_OOBINLINE off, takes "H" out of the stream: a read stops
at the mark ("ABCDEFG"), sockatmark() is true there, recv(MSG_OOB) gives "H", and the
stream goes on with "IJKL".
"""

from __future__ import annotations

import socket

from rawtcp.experiments.base import Run, experiment

PORT = 7031
DATA = b"ABCDEFGHIJKL"
URGENT_AT = 7                 # "H"


@experiment("urgent-data", title="The kernel sends a byte with MSG_OOB",
            expect="the segment with it carries URG, pointer one past it; rawtcp's read stops "
                   "at the mark (ABCDEFG), recv(MSG_OOB) gives H, then IJKL in line")
def urgent_data(run: Run) -> None:
    """RFC 9293 3.8.5 and 3.10.7.4 sixth (the URG bit); RFC 6093 2 (the pointer)."""
    with run.tun_lab() as lab:
        st = run.stack(lab)
        ls = st.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("", PORT))
        ls.listen(1)
        ls.settimeout(10)
        cl = lab.client(PORT, count=len(DATA), pattern=DATA.decode(), urgent=URGENT_AT,
                        timeout=20)
        s, _ = ls.accept()
        s.settimeout(10)
        st.wait_for(lambda: s.tcb.readable >= len(DATA) - 1 or s.tcb.eof, 10)
        before = b""
        while not s.sockatmark() and len(before) < len(DATA):
            piece = s.recv(100)
            if not piece:
                break
            before += piece
        at_mark = s.sockatmark()
        try:
            oob = s.recv(1, socket.MSG_OOB)
        except OSError as e:
            oob = f"error {e.errno}".encode()
        after = b""
        while piece := s.recv(100):
            after += piece
        s.sendall(b"ok")
        s.close()
        cl.wait_event("eof", 10)
        urg = [e for e in run.segs("in") if "U" in str(e.get("flags", ""))]
        run.check("the kernel's segment carries URG", bool(urg),
                  [(e.get("flags"), e.get("rseq"), e.get("len"), e.get("urp")) for e in urg])
        if urg:
            e = urg[0]
            run.check("its pointer points one past the urgent byte (RFC 6093)",
                      e["rseq"] + e["urp"] - 1 == URGENT_AT + 1,   # rseq 1 is the first byte
                      f"rseq {e['rseq']} + urp {e['urp']} - 1")
        run.check("the read stopped at the mark", before == DATA[:URGENT_AT] and at_mark,
                  f"{before!r}, sockatmark() {at_mark}")
        run.check("recv(MSG_OOB) gives the urgent byte", oob == DATA[URGENT_AT:URGENT_AT + 1],
                  repr(oob))
        run.check("the rest follows in line, without it", after == DATA[URGENT_AT + 1:],
                  repr(after))
