"""The runtime: one event-loop thread per stack, thread-safe user calls, loud failures,
and a close() that releases everything."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import selectors
import socket
import threading
import time

import pytest
from socket_helpers import B4, Pair, connected, fast_config

from rawtcp.link.memory import MemoryLink
from rawtcp.runtime import Stack, StackError
from rawtcp.trace import Tracer

PORT = 5100


def test_one_loop_thread_per_stack(pair: Pair) -> None:
    names = [t.name for t in threading.enumerate()]
    assert names.count("stack-a") == 1 and names.count("stack-b") == 1


def test_concurrent_user_threads_on_many_sockets(pair: Pair) -> None:
    """Eight client threads share one stack; every stream arrives intact."""
    ls = pair.b.socket()
    ls.bind(("", PORT))
    ls.listen(16)
    ls.settimeout(3)
    n = 8
    payloads = [os.urandom(100_000 + i) for i in range(n)]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def server() -> None:
        try:
            for _ in range(n):
                s, _ = ls.accept()
                threading.Thread(target=serve, args=(s,)).start()
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    def serve(s) -> None:
        s.settimeout(5)
        h = hashlib.sha256()
        first = s.recv(4)
        idx = int.from_bytes(first, "big") if len(first) == 4 else -1
        while True:
            d = s.recv(65536)
            if not d:
                break
            h.update(d)
        results[idx] = h.hexdigest()
        s.close()

    def client(i: int) -> None:
        try:
            c = pair.a.socket()
            c.settimeout(5)
            c.connect((B4, PORT))
            c.sendall(i.to_bytes(4, "big"))
            c.sendall(payloads[i])
            c.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    srv = threading.Thread(target=server)
    srv.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    srv.join(10)
    assert pair.b.wait_for(lambda: len(results) == n, 5), (results.keys(), errors)
    assert not errors
    for i in range(n):
        assert results[i] == hashlib.sha256(payloads[i]).hexdigest()


class ExplodingLink(MemoryLink):
    """A link whose receive path raises once armed (a bug anywhere in the loop)."""

    armed = False

    def recv_batch(self) -> list[bytes]:
        if self.armed:
            raise RuntimeError("boom from the link")
        return super().recv_batch()


@contextlib.contextmanager
def connected_over(la: MemoryLink, ta: Tracer, timeout: float):
    """Stack a on link ``la`` (traced into ``ta``) connected to stack b on a plain
    MemoryLink: yields (a, client socket on a, server socket on b)."""
    lb = MemoryLink(["10.1.0.2"], name="mem-b")
    la.peer, lb.peer = lb, la
    with Stack(la, fast_config(), tracer=ta, name="a") as a, \
            Stack(lb, fast_config(), name="b") as b:
        ls = b.socket()
        ls.bind(("", PORT))
        ls.listen(1)
        c = a.socket()
        c.settimeout(timeout)
        c.connect((B4, PORT))
        ls.settimeout(timeout)
        s, _ = ls.accept()
        yield a, c, s


def test_loop_error_is_logged_and_seen_by_sockets(caplog) -> None:
    la = ExplodingLink(["10.1.0.1"], name="mem-a")
    ta = Tracer()
    with connected_over(la, ta, 2) as (a, c, s):
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ)
        assert sel.select(0) == []
        with caplog.at_level(logging.ERROR, logger="rawtcp"):
            la.armed = True
            s.sendall(b"wake the loop")
            ev = sel.select(2)                # the failure makes the socket readable...
        sel.close()
        assert ev
        with pytest.raises(StackError) as e:  # ...and the call reports it
            c.recv(10)
        assert e.value.errno == errno.EIO and "boom from the link" in str(e.value)
        with pytest.raises(OSError):
            c.send(b"x")
        assert any("event loop failed" in r.getMessage() for r in caplog.records)
        assert any(ev["ev"] == "error" and "boom" in ev["message"] for ev in ta.events())
        assert isinstance(a.error, RuntimeError)


def test_close_releases_everything_and_resets_peers(pair: Pair) -> None:
    ls = pair.b.socket()
    ls.bind(("", PORT))
    ls.listen(1)
    ls.settimeout(2)
    c = pair.a.socket()
    c.settimeout(2)
    c.connect((B4, PORT))
    s, _ = ls.accept()
    fd = c.fileno()
    pair.a.close()
    assert not pair.a._thread.is_alive()
    assert pair.a.link.closed if hasattr(pair.a.link, "closed") else pair.a.link._closed
    with pytest.raises(OSError):
        os.fstat(fd)                               # the socket's notifier fd is gone
    with pytest.raises(ConnectionResetError):      # the peer learns: RST
        s.recv(10)
    with pytest.raises(OSError) as e:
        c.send(b"x")
    assert e.value.errno == errno.EBADF
    with pytest.raises(OSError) as e:
        pair.a.socket().bind(("", 0))
    assert e.value.errno == errno.EBADF
    pair.a.close()                                 # idempotent


def test_context_manager_and_trace_file(tmp_path) -> None:
    la, lb = MemoryLink.pair(["10.1.0.1"], ["10.1.0.2"])
    path = tmp_path / "a.jsonl"
    with Stack(la, fast_config(), trace=str(path)) as a, Stack(lb, fast_config()) as b:
        assert a._thread.is_alive()
        ls = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("", PORT))
        ls.listen(1)
        c = a.socket()
        c.settimeout(2)
        c.connect((B4, PORT))
    assert not a._thread.is_alive() and not b._thread.is_alive()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert ["SYN_SENT", "ESTABLISHED"] == [e["new"] for e in events if e["ev"] == "state"][:2]


def test_reordered_segment_released_on_time(pair_factory) -> None:
    """A 'reorder' fault holds a segment inside the engine until ms= passes when nothing
    overtakes it; the loop must wake for that deadline (not for an RTO or its 1 s tick)."""
    from rawtcp.faults import parse_rule

    p = pair_factory(config=fast_config(rto_min=2_000_000, rto_initial=2_000_000),
                     faults_a=[parse_rule("reorder", "out len>0 nth=1 ms=150")])
    ls = p.b.socket()
    ls.bind(("", PORT))
    ls.listen(1)
    ls.settimeout(2)
    c = p.a.socket()
    c.settimeout(2)
    c.connect((B4, PORT))
    s, _ = ls.accept()
    s.settimeout(2)
    t0 = time.monotonic()
    c.send(b"held back")
    assert s.recv(100) == b"held back"
    took = time.monotonic() - t0
    assert 0.14 <= took < 0.6, took
    assert [e["why"] for e in p.ta.events("fault_release")] == ["timeout"]


class FlakyLink(MemoryLink):
    """A link whose interface goes down for a moment: recv_batch raises ENETDOWN."""

    failures = 0

    def recv_batch(self) -> list[bytes]:
        if self.failures > 0:
            self.failures -= 1
            super().recv_batch()          # what arrived while "down" is lost
            raise OSError(errno.ENETDOWN, "Network is down")
        return super().recv_batch()


def test_link_error_is_counted_and_traced_and_the_connection_survives() -> None:
    la = FlakyLink(["10.1.0.1"], name="mem-a")
    ta = Tracer()
    with connected_over(la, ta, 5) as (a, c, s):
        la.failures = 3
        s.sendall(b"x" * 5000)            # lost while the link is down; retransmitted
        got = bytearray()
        while len(got) < 5000:
            got.extend(c.recv(65536))
        assert bytes(got) == b"x" * 5000
        assert a.error is None and a.counters["link_errors"] == 3
        assert sum(1 for e in ta.events("error") if "Network is down" in e["message"]) == 3


class RefusingLink(MemoryLink):
    """A link that refuses to send a few packets (send_many reports them, as a vanished
    route does) and sends the rest."""

    refusals = 0

    def send_many(self, packets: list[bytes]) -> list[OSError]:
        errors: list[OSError] = []
        for p in packets:
            if self.refusals > 0:
                self.refusals -= 1
                errors.append(OSError(errno.EHOSTUNREACH, "No route to host"))
            else:
                self.send(p)
        return errors


def test_a_packet_the_link_refuses_is_counted_traced_and_repaired_as_a_loss() -> None:
    la = RefusingLink(["10.1.0.1"], name="mem-a")
    ta = Tracer()
    with connected_over(la, ta, 5) as (a, c, s):
        out0 = a.counters["frames_out"]
        la.refusals = 2
        c.sendall(b"y" * 3000)            # its first segments never leave: retransmitted
        got = bytearray()
        while len(got) < 3000:
            got.extend(s.recv(65536))
        assert bytes(got) == b"y" * 3000
        assert a.error is None and a.counters["send_errors"] == 2
        assert a.counters["frames_out"] >= out0 + 1      # the rest was counted as sent
        refused = [e for e in ta.events("error") if "No route to host" in e["message"]]
        assert len(refused) == 2 and all(e["errno"] == errno.EHOSTUNREACH for e in refused)


def test_a_blocked_caller_takes_its_own_packets(pair: Pair) -> None:
    """A caller blocked in recv() waits on the link itself and handles what arrives (the
    loop thread is not woken to hand it over): frames_in_caller counts those frames. The
    bytes and their order are what the peer sent."""
    c, s, _ls = connected(pair, port=PORT, timeout=5)
    before = pair.a.counters["frames_in_caller"]
    got = []

    def reader() -> None:
        while sum(map(len, got)) < 300_000:
            piece = c.recv(65536)
            if not piece:
                break
            got.append(piece)

    t = threading.Thread(target=reader)
    t.start()
    data = bytes(range(256)) * 1172
    s.sendall(data)
    t.join(10)
    assert not t.is_alive()
    assert b"".join(got) == data
    assert pair.a.counters["frames_in_caller"] > before
    assert pair.a.counters["frames_in_caller"] <= pair.a.counters["frames_in"]


def test_the_loop_never_waits_for_a_caller_that_owns_the_link(pair_factory) -> None:
    """While a caller owns the receive side (here: the test holds it), the loop thread must
    go on with its deadlines even when the link is readable: a packet held by a delay rule
    is released while the receive side stays owned. (A loop that waited for the owner
    stalled for as long as the owner slept on the link, up to a second each time.)"""
    from rawtcp.faults import parse_rule

    p = pair_factory(faults_a=[parse_rule("delay", "out len>0 ms=100")])
    c, s, _ls = connected(p, port=PORT, timeout=5)
    assert p.a._rx_lock.acquire(timeout=5)
    try:
        c.send(b"held 100 ms")               # held in a's fault engine
        s.send(b"makes a's link readable")   # a's loop sees the link ready, cannot read it
        assert s.recv(100) == b"held 100 ms"   # released by a's loop all the same
    finally:
        p.a._rx_lock.release()
    assert c.recv(100) == b"makes a's link readable"


def test_only_a_blocking_socket_parks_the_link_after_a_request(pair: Pair,
                                                               monkeypatch) -> None:
    """Stack.call(answered=True) keeps the link out of the loop's epoll for PARK_US so that
    the caller's next call reads the answer itself. A socket handed to a selector
    (fileno()) or a non-blocking one waits for the loop instead: the loop must take the
    answer in at once, so those never ask for it. A recv never does."""
    c, s, ls = connected(pair)
    asked: list[bool] = []
    real_call = pair.a.call

    def call(fn, answered=False):
        asked.append(answered)
        return real_call(fn, answered)

    monkeypatch.setattr(pair.a, "call", call)
    try:
        c.sendall(b"x")
        assert asked == [True]                 # blocking, no fileno(): park after a request
        assert s.recv(1) == b"x"
        s.sendall(b"y")
        assert c.recv(1) == b"y"
        assert asked[1:] == [False]            # a recv does not
        c.fileno()
        c.sendall(b"z")
        c.setblocking(False)
        c.send(b"w")
        c.setblocking(True)
        c.fileno()
        c.shutdown(socket.SHUT_WR)
        assert asked[2:] == [False, False, False]
    finally:
        for x in (c, s, ls):
            x.close()


def test_the_park_window_grows_while_a_caller_calls_and_resets_after(pair: Pair) -> None:
    """The loop looks at a parked link once per park window; each look costs the caller
    the GIL, so while a blocking caller makes call after call that write (here: sends,
    each answered by an ACK) the window doubles up to PARK_MAX_US, and once the caller
    stops the loop takes the link back and the window starts at PARK_US again. What
    arrives after the caller's last call is still taken in by the loop (here: data nobody
    asks for)."""
    from rawtcp.runtime import PARK_MAX_US, PARK_US

    c, s, _ls = connected(pair, port=PORT, timeout=5)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # every send writes a segment
    a = pair.a
    got = bytearray()

    def drain() -> None:
        while True:
            d = s.recv(65536)
            if not d:
                return
            got.extend(d)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    seen = {a._park_us}
    deadline = time.monotonic() + 10
    sent = 0
    while max(seen) < 4 * PARK_US and time.monotonic() < deadline:
        c.sendall(b"p")
        sent += 1
        seen.add(a._park_us)
        time.sleep(0.0002)
    assert PARK_US < max(seen) <= PARK_MAX_US
    deadline = time.monotonic() + 5
    while a._parked and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not a._parked and a._park_us == PARK_US
    before = a.counters["frames_in"]
    s.sendall(b"unasked")                     # c makes no call: the loop must take it in
    deadline = time.monotonic() + 5
    while a.counters["frames_in"] == before and time.monotonic() < deadline:
        time.sleep(0.005)
    assert a.counters["frames_in"] > before
    assert c.recv(100) == b"unasked"
    c.close()
    t.join(5)
    assert bytes(got) == b"p" * sent
