"""A kernel TCP peer, run inside a lab namespace: `python -m rawtcp.lab.peer_main ...`.

Every event is one JSON object per line on stdout, flushed at once, with `t` (seconds since
start) and `event`:

  listening {addr, port}      server ready        connected {local, remote}   client ready
  accepted {peer}             eof {bytes, sha256} (everything read until the peer's FIN)
  sent {bytes, sha256}        closed {how: "close"|"rst"}
  error {errno, name, message, where}             timeout {}         done {}

Servers: echo, sink (read all), source (send --count bytes then close), hold (accept, never
read or close). --no-accept listens with --backlog and never accepts.
Client: connect, send --count bytes, shutdown(SHUT_WR) (unless --no-shutdown), read to EOF
(unless --no-read), close.
Closing: --close-delay S waits before close, --never-close keeps the socket open,
--linger0 sets SO_LINGER {1, 0} so close() sends a RST.
Bounded: the process exits after --timeout seconds at the latest (event "timeout").
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time

T0 = time.monotonic()
_out_lock = threading.Lock()


def emit(event: str, **fields: object) -> None:
    line = json.dumps({"t": round(time.monotonic() - T0, 6), "event": event, **fields})
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def emit_error(e: OSError, where: str) -> None:
    num = e.errno or 0
    emit("error", errno=num, name=errno.errorcode.get(num, str(num)),
         message=os.strerror(num) if num else str(e), where=where)


def pattern_bytes(pattern: str, count: int) -> bytes:
    unit = bytes.fromhex(pattern[4:]) if pattern.startswith("hex:") else pattern.encode()
    if not unit:
        unit = b"\0"
    return (unit * (count // len(unit) + 1))[:count]


def setup(s: socket.socket, a: argparse.Namespace) -> None:
    if a.rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    if a.sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, a.sndbuf)
    if a.nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if a.congestion:
        # per socket: root may pick any available algorithm here, also one the namespace
        # may not make its default (not in net.ipv4.tcp_allowed_congestion_control, as
        # cubic is on a host whose default is bbr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, a.congestion.encode())


def finish(s: socket.socket, a: argparse.Namespace) -> None:
    """Close the way the options say."""
    if a.never_close:
        threading.Event().wait()   # until the process is killed or times out
    if a.close_delay > 0:
        time.sleep(a.close_delay)
    how = "close"
    if a.linger0:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        how = "rst"
    s.close()
    emit("closed", how=how)


def read_all(s: socket.socket, echo: bool = False) -> bool:
    h, n = hashlib.sha256(), 0
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            h.update(data)
            n += len(data)
            if echo:
                s.sendall(data)
    except OSError as e:
        emit_error(e, "recv")
        return False
    emit("eof", bytes=n, sha256=h.hexdigest())
    return True


def send_all(s: socket.socket, a: argparse.Namespace) -> bool:
    data = pattern_bytes(a.pattern, a.count)
    try:
        u = getattr(a, "urgent", -1)
        if 0 <= u < len(data):            # that byte goes as urgent data (MSG_OOB)
            s.sendall(data[:u])
            s.send(data[u:u + 1], socket.MSG_OOB)
            s.sendall(data[u + 1:])
        else:
            s.sendall(data)
    except OSError as e:
        emit_error(e, "send")
        return False
    emit("sent", bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    return True


def handle(conn: socket.socket, a: argparse.Namespace) -> None:
    try:
        if a.kind == "hold":
            threading.Event().wait()
        elif a.kind == "echo":
            ok = read_all(conn, echo=True)
        elif a.kind == "sink":
            ok = read_all(conn)
        else:   # source
            ok = send_all(conn, a)
        if ok or a.linger0:
            finish(conn, a)
        else:
            conn.close()
    except OSError as e:
        emit_error(e, "handle")


def server(a: argparse.Namespace) -> None:
    fam = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    setup(s, a)
    s.bind((a.bind, a.port))
    s.listen(a.backlog)
    emit("listening", addr=a.bind, port=s.getsockname()[1])
    if a.no_accept:
        threading.Event().wait()
    threads = []
    for _ in range(a.max_conns):
        conn, peer = s.accept()
        emit("accepted", peer=list(peer[:2]))
        t = threading.Thread(target=handle, args=(conn, a), daemon=True)
        t.start()
        threads.append(t)
    s.close()
    for t in threads:
        t.join()


def client(a: argparse.Namespace) -> None:
    fam = socket.AF_INET6 if ":" in a.connect else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    setup(s, a)
    if a.source:
        s.bind((a.source, a.source_port))
    s.settimeout(a.connect_timeout)
    try:
        s.connect((a.connect, a.port))
    except OSError as e:
        if isinstance(e, TimeoutError) and not e.errno:
            e = OSError(errno.ETIMEDOUT, "connect timed out")
        emit_error(e, "connect")
        return
    s.settimeout(None)
    emit("connected", local=list(s.getsockname()[:2]), remote=list(s.getpeername()[:2]))
    if a.count and not send_all(s, a):
        s.close()
        return
    if not a.no_shutdown:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            emit_error(e, "shutdown")
    if not a.no_read and not read_all(s) and not a.linger0:
        s.close()
        return
    finish(s, a)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rawtcp.lab.peer_main")
    sub = p.add_subparsers(dest="role", required=True)
    for name in ("server", "client"):
        q = sub.add_parser(name)
        q.add_argument("--port", type=int, default=0)
        q.add_argument("--count", type=int, default=0, help="bytes to send")
        q.add_argument("--pattern", default="rawtcp", help="text, or hex:0a0b..")
        q.add_argument("--urgent", type=int, default=-1,
                       help="send byte number N (from 0) of the data with MSG_OOB")
        q.add_argument("--close-delay", type=float, default=0.0)
        q.add_argument("--never-close", action="store_true")
        q.add_argument("--linger0", action="store_true")
        q.add_argument("--rcvbuf", type=int, default=0)
        q.add_argument("--sndbuf", type=int, default=0)
        q.add_argument("--nodelay", action="store_true")
        q.add_argument("--congestion", default="",
                       help="TCP_CONGESTION of the socket (e.g. cubic)")
        q.add_argument("--timeout", type=float, default=30.0, help="exit after this long")
        if name == "server":
            q.add_argument("--kind", choices=["echo", "sink", "source", "hold"],
                           default="echo")
            q.add_argument("--bind", default="0.0.0.0")
            q.add_argument("--backlog", type=int, default=16)
            q.add_argument("--no-accept", action="store_true")
            q.add_argument("--max-conns", type=int, default=1)
        else:
            q.add_argument("--connect", required=True)
            q.add_argument("--source", default="")
            q.add_argument("--source-port", type=int, default=0)
            q.add_argument("--connect-timeout", type=float, default=10.0)
            q.add_argument("--no-shutdown", action="store_true")
            q.add_argument("--no-read", action="store_true")
    return p.parse_args(argv)


def start_watchdog(timeout: float) -> threading.Timer:
    """End this peer process (exit status 3, a "timeout" event) after ``timeout`` seconds,
    whatever it is doing: every peer is bounded in time."""
    def on_timeout() -> None:
        emit("timeout")
        os._exit(3)

    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    return timer


def main(argv: list[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    start_watchdog(a.timeout)
    try:
        (server if a.role == "server" else client)(a)
    except OSError as e:
        emit_error(e, a.role)
        emit("done")
        return 1
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
