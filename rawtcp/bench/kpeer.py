"""Kernel peers for the bench, run in a lab namespace: `python -m rawtcp.bench.kpeer ROLE ...`.

Unlike rawtcp.lab.peer_main they stream (a 10 GB transfer never sits in memory), handle
connections one after another in a single thread (the connection-rate server), and stamp
events with `mono` (time.monotonic(): CLOCK_MONOTONIC is the same clock in every process of
the machine, so the bench compares it with its own).

Roles (one JSON event per line on stdout):
  source  listen; accept one; send --size bytes of the stream; close.  sent {bytes, sha256, mono}
  sink    listen; accept one; read to EOF; close.                      eof {bytes, sha256, mono}
  echo    listen; --conns times: accept, echo until EOF, close.        done {conns}
  conn    client: common.conn_loop against --connect:--port.          conn {stats}
  fetch   client: connect; read to EOF; close.          fetched {bytes, sha256, seconds}
  push    client: connect; send --size bytes of the stream; close.   pushed {bytes, start}
Every role starts with `listening {port}` (servers) and ends within --timeout seconds
(event `timeout`, exit 3). Errors: `error {errno, message}`, exit 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import sys
import time

from rawtcp.bench.common import CHUNK, conn_loop, stream_chunks
from rawtcp.lab.peer_main import start_watchdog


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, "mono": time.monotonic(), **fields}) + "\n")
    sys.stdout.flush()


def _listen(a: argparse.Namespace) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.bind, a.port))
    s.listen(128)
    emit("listening", port=s.getsockname()[1])
    return s


def source(a: argparse.Namespace) -> None:
    ls = _listen(a)
    conn, _ = ls.accept()
    ls.close()
    h, n = hashlib.sha256(), 0
    for piece in stream_chunks(a.size):
        conn.sendall(piece)
        h.update(piece)
        n += len(piece)
    conn.close()
    emit("sent", bytes=n, sha256=h.hexdigest())


def _read_to_eof(conn: socket.socket) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        k = conn.recv_into(buf)
        if not k:
            break
        h.update(view[:k])
        n += k
    return n, h.hexdigest()


def sink(a: argparse.Namespace) -> None:
    ls = _listen(a)
    conn, _ = ls.accept()
    ls.close()
    n, digest = _read_to_eof(conn)
    emit("eof", bytes=n, sha256=digest)
    conn.close()


def fetch(a: argparse.Namespace) -> None:
    """The kernel's side of `bulk receive` as rawtcp's is measured: connect() to EOF."""
    t0 = time.monotonic()
    conn = socket.create_connection((a.connect, a.port), timeout=a.timeout)
    n, digest = _read_to_eof(conn)
    seconds = time.monotonic() - t0
    conn.close()
    emit("fetched", bytes=n, sha256=digest, seconds=seconds)


def push(a: argparse.Namespace) -> None:
    """The kernel's side of `bulk send`: from connect() (`start`) to the sink's EOF."""
    start = time.monotonic()
    conn = socket.create_connection((a.connect, a.port), timeout=a.timeout)
    n = 0
    for piece in stream_chunks(a.size):
        conn.sendall(piece)
        n += len(piece)
    conn.close()
    emit("pushed", bytes=n, start=start)


def echo(a: argparse.Namespace) -> None:
    ls = _listen(a)
    for _ in range(a.conns):
        conn, _ = ls.accept()
        conn.settimeout(a.timeout)
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass            # a peer that resets is the client's problem; serve the next one
        conn.close()
    ls.close()
    emit("done", conns=a.conns)


def conn(a: argparse.Namespace) -> None:
    def connect() -> socket.socket:
        return socket.create_connection((a.connect, a.port), timeout=a.timeout)

    stats = conn_loop(connect, a.conns, time.monotonic() + a.timeout)
    emit("conn", stats=stats.to_dict())


ROLES = {"source": source, "sink": sink, "echo": echo, "conn": conn, "fetch": fetch,
         "push": push}
CLIENT_EVENTS = {"conn": "conn", "fetch": "fetched", "push": "pushed"}  # a client's last event


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rawtcp.bench.kpeer")
    p.add_argument("role", choices=sorted(ROLES))
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--connect", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    start_watchdog(a.timeout)
    try:
        ROLES[a.role](a)
    except OSError as e:
        emit("error", errno=e.errno or 0, message=str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
