"""Kernel TCP peers: real Linux sockets inside a lab namespace, driven from tests.

    srv = Server(netns, "sink", port=5000).start()
    srv.wait_ready()                 # {"event": "listening", "port": 5000, ...}
    ... rawtcp connects and sends ...
    events = srv.result(timeout=10)  # every event once the process has exited
    srv.event("eof")["sha256"]

Each peer is `python -m rawtcp.lab.peer_main` (this interpreter, sys.executable) run with
`ip netns exec`, reporting JSON lines (see peer_main). stop() kills and waits, always.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
import time
from typing import Any, Self

from rawtcp.host.netns import exec_prefix

KINDS = ("echo", "sink", "source", "hold")


def _opts_to_args(opts: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            if v:
                args.append(flag)
        elif v is not None:
            args += [flag, str(v)]
    return args


class KernelPeer:
    """A peer process. Attributes: netns, argv, events (list of dicts so far), returncode."""

    ready_event = "listening"

    def __init__(self, netns: str | None, args: list[str]) -> None:
        self.netns = netns
        self.argv = exec_prefix(netns) + [sys.executable, "-m", "rawtcp.lab.peer_main"] + args
        self._events: list[dict] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.stderr = ""

    @property
    def events(self) -> list[dict]:
        with self._cond:
            return list(self._events)

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def start(self) -> KernelPeer:
        if self._proc is not None:
            raise OSError(errno.EALREADY, "peer already started")
        self._proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "garbage", "line": line.rstrip("\n")}
            with self._cond:
                self._events.append(ev)
                self._cond.notify_all()
        assert self._proc.stderr is not None
        self.stderr = self._proc.stderr.read()
        self._proc.wait()
        with self._cond:
            self._cond.notify_all()

    def _finished(self) -> bool:
        return self._reader is not None and not self._reader.is_alive()

    def wait_event(self, name: str, timeout: float = 10.0) -> dict:
        """The first event called `name`; OSError(ETIMEDOUT) if it does not come in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._events:
                    if ev.get("event") == name:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self._finished():
                    raise OSError(errno.ETIMEDOUT, f"peer gave no {name!r} event within "
                                  f"{timeout}s; events: {self._events}; stderr: {self.stderr}")
                self._cond.wait(min(left, 0.2))

    def event(self, name: str) -> dict | None:
        for ev in self.events:
            if ev.get("event") == name:
                return ev
        return None

    def wait_ready(self, timeout: float = 10.0) -> dict:
        return self.wait_event(self.ready_event, timeout)

    def result(self, timeout: float = 30.0) -> list[dict]:
        """Wait for the process to exit; return all its events (ETIMEDOUT if it does not)."""
        if self._reader is None:
            raise OSError(errno.ENOTCONN, "peer not started; call start()")
        self._reader.join(timeout)
        if self._reader.is_alive():
            raise OSError(errno.ETIMEDOUT, f"peer still running after {timeout}s; "
                          f"events: {self.events}")
        return self.events

    def stop(self) -> None:
        """Kill the process (if running) and wait for it. Safe to call twice."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        for f in (self._proc.stdout, self._proc.stderr):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass

    def __enter__(self) -> Self:
        return self if self._proc else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Server(KernelPeer):
    """Kernel server. kind: echo | sink | source | hold. Options (keyword): bind, count,
    pattern, close_delay, never_close, linger0, rcvbuf, sndbuf, nodelay, backlog,
    no_accept, max_conns, timeout. `port` is known after wait_ready()."""

    def __init__(self, netns: str | None, kind: str, port: int = 0, **opts: Any) -> None:
        if kind not in KINDS:
            raise OSError(errno.EINVAL, f"kind must be one of {KINDS}, not {kind!r}")
        super().__init__(netns, ["server", "--kind", kind, "--port", str(port)]
                         + _opts_to_args(opts))
        self.kind = kind
        self._port = port

    @property
    def port(self) -> int:
        ev = self.event("listening")
        return int(ev["port"]) if ev else self._port


class Client(KernelPeer):
    """Kernel client connecting to host:port. Options (keyword): count, pattern, source,
    source_port, connect_timeout, no_shutdown, no_read, close_delay, never_close, linger0,
    rcvbuf, sndbuf, nodelay, congestion, timeout. Ready event: "connected"."""

    ready_event = "connected"

    def __init__(self, netns: str | None, host: str, port: int, **opts: Any) -> None:
        super().__init__(netns, ["client", "--connect", host, "--port", str(port)]
                         + _opts_to_args(opts))
