"""What both sides of every bench measurement share: the byte stream, the echo loop, progress.

The stream is a 64 KiB pseudo-random block repeated: any sender (kernel peer, rawtcp, bare)
produces the same bytes for the same length, and every receiver hashes what it got with
sha256, so the two digests can be compared without holding the transfer in memory.

`conn_loop` is THE connection-rate loop: the kernel client (in a lab namespace, kernel
sockets) and rawtcp's client (rawtcp sockets) run this same function.
"""

from __future__ import annotations

import errno
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

PERIOD = 64 * 1024                 # the stream repeats every PERIOD bytes
CHUNK = 1024 * 1024                # largest slice stream_slice() returns
ECHO_BYTES = 100                   # the connection-rate test's request (and echoed reply)
MB = 1_000_000                     # figures are in MB = 10**6 bytes

_BLOCK = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(PERIOD // 32))
_BUF = memoryview(_BLOCK * (CHUNK // PERIOD + 1))
ECHO_MESSAGE = bytes(_BLOCK[:ECHO_BYTES])


def stream_slice(offset: int, n: int) -> memoryview:
    """Bytes [offset, offset + n) of the stream (n <= CHUNK), without copying."""
    if not 0 <= n <= CHUNK:
        raise ValueError(f"slice of {n} bytes; at most {CHUNK}")
    start = offset % PERIOD
    return _BUF[start:start + n]


def stream_chunks(nbytes: int, chunk: int = CHUNK):
    """The first `nbytes` of the stream as consecutive memoryviews of at most `chunk`."""
    off = 0
    while off < nbytes:
        n = min(chunk, nbytes - off)
        yield stream_slice(off, n)
        off += n


def stream_sha256(nbytes: int) -> str:
    """sha256 hex digest of the first `nbytes` of the stream."""
    h = hashlib.sha256()
    for piece in stream_chunks(nbytes):
        h.update(piece)
    return h.hexdigest()


# ------------------------------------------------------------------------- progress


class Progress:
    """One self-overwriting status line on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool | None = None, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._width = 0

    def due(self) -> bool:
        """Would a show() now print? (a caller asks before it formats the line: a loop that
        reports every step must not pay for lines nobody sees)"""
        return self.enabled and time.monotonic() - self._last >= 0.1

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def bytes_progress(progress: Progress, label: str, total: int) -> Callable[[int], None]:
    """A callback(bytes so far) that shows `label: x / y MB (p %)`."""
    def cb(done: int) -> None:
        if progress.due():
            progress.show(f"{label}: {done / MB:,.1f} / {total / MB:,.1f} MB "
                      f"({100 * done / max(total, 1):.0f} %)")
    return cb


# ------------------------------------------------------------------ connection rate


class StreamSocket(Protocol):
    def sendall(self, data: bytes) -> Any: ...
    def recv(self, n: int) -> bytes: ...
    def close(self) -> None: ...


@dataclass
class ConnStats:
    """Result of conn_loop. Rates are connections per second."""

    conns: int
    seconds: float
    first_seconds: float        # the first `tenth` connections
    last_seconds: float         # the last `tenth` connections
    tenth: int

    @property
    def rate(self) -> float:
        return self.conns / self.seconds if self.seconds > 0 else 0.0

    @property
    def first_rate(self) -> float:
        return self.tenth / self.first_seconds if self.first_seconds > 0 else 0.0

    @property
    def last_rate(self) -> float:
        return self.tenth / self.last_seconds if self.last_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate, "first_rate": self.first_rate,
                "last_rate": self.last_rate}


def conn_loop(connect: Callable[[], StreamSocket], n: int, deadline: float,
              progress: Callable[[int], None] | None = None) -> ConnStats:
    """n times: connect, send ECHO_BYTES, read the echo back, close (this side closes first).

    `connect()` returns a connected socket. Raises OSError(ETIMEDOUT) when the monotonic
    `deadline` passes, and OSError(EPROTO) if an echo differs from what was sent.
    """
    tenth = max(1, n // 10)
    ends: list[float] = []
    t0 = time.monotonic()
    for i in range(n):
        if time.monotonic() > deadline:
            raise OSError(errno.ETIMEDOUT, f"connection rate: only {i} of {n} connections "
                          "before the timeout (raise --timeout or lower --conns)")
        s = connect()
        try:
            s.sendall(ECHO_MESSAGE)
            got = b""
            while len(got) < ECHO_BYTES:
                piece = s.recv(ECHO_BYTES - len(got))
                if not piece:
                    break
                got += piece
        finally:
            s.close()
        if got != ECHO_MESSAGE:
            raise OSError(errno.EPROTO, f"connection {i + 1}: echo of {len(got)} bytes differs "
                          f"from the {ECHO_BYTES} bytes sent")
        ends.append(time.monotonic())
        if progress is not None:
            progress(i + 1)
    start_last = ends[n - tenth - 1] if n > tenth else t0
    return ConnStats(conns=n, seconds=ends[-1] - t0, first_seconds=ends[tenth - 1] - t0,
                     last_seconds=ends[-1] - start_last, tenth=tenth)
