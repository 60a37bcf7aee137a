"""What every lab shares: unique names, namespaces, and a teardown that always runs."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import threading
from collections.abc import Iterator
from typing import Any, Self

from rawtcp.host import privileges, registry
from rawtcp.host.netns import add_netns, delete_netns
from rawtcp.link.base import Link

PREFIX = registry.PREFIX
TAG_RE = re.compile(r"^rt([0-9a-f]{6})[0-9a-f]{4}[a-z]?$")   # tag, optional suffix k/r/t


def unique_tag() -> str:
    """'rt' + this process's pid (6 hex digits) + 4 random hex digits, e.g. 'rt0012a9f03c':
    unique per run, and short enough for 15-character interface names with a suffix."""
    return f"{PREFIX}{os.getpid() & 0xFFFFFF:06x}{secrets.token_hex(2)}"


def tag_pid(name: str) -> int | None:
    """The pid encoded in a lab name made by unique_tag() (None if it is not one)."""
    m = TAG_RE.match(name)
    return int(m.group(1), 16) if m else None


class LabTerminated(SystemExit):
    """SIGTERM while a lab was up in a process that had no SIGTERM handler of its own (a
    `multiprocessing` worker, a script): unwind so that the lab is torn down, then exit 143."""


# While a lab is up (on the main thread: Python runs signal handlers there), a SIGTERM that
# would kill the process (no handler of its own: a `multiprocessing` worker, a script)
# raises LabTerminated instead, so the process unwinds and the lab is torn down. Ctrl-C
# keeps the process's own handler (KeyboardInterrupt; asyncio and IPython install theirs).
# While a teardown runs, Ctrl-C and SIGTERM are held and delivered when it is over, so that
# they cannot cut it short. Code cut short on the way to a lab's close() (a second signal
# in a cleanup block) is covered by the exit-time close below.
_GUARDED = (signal.SIGINT, signal.SIGTERM)
_guard: dict[str, Any] = {"depth": 0, "saved": {}, "holding": 0, "held": []}


def _on_signal(signum: int, frame: Any) -> None:
    if _guard["holding"]:
        _guard["held"].append(signum)
        return
    previous = _guard["saved"].get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise LabTerminated(128 + signum)


# Labs that are up, closed at the latest when the process exits: code between an interrupt
# and a lab's close() (a socket's close, a stack's) may be cut short and never reach it.
# atexit in a normal process; a multiprocessing child ends with os._exit after running
# multiprocessing's finalizers instead.
_up: dict[int, tuple[int, Lab]] = {}     # id -> (pid of the process that made it, lab)
_exit_hooks = {"pid": 0}


def _close_labs_left_up() -> None:
    for pid, lab in list(_up.values()):
        if pid != os.getpid():                  # a forked child's copy of its parent's lab
            continue
        try:
            lab.close()
        except BaseException:  # noqa: BLE001 - the process is ending; close the others
            pass


def _watch(lab: Lab) -> None:
    _up[id(lab)] = (os.getpid(), lab)
    if _exit_hooks["pid"] != os.getpid():       # once per process (a fork has its own)
        _exit_hooks["pid"] = os.getpid()
        import atexit
        from multiprocessing import util

        atexit.register(_close_labs_left_up)
        util.Finalize(None, _close_labs_left_up, exitpriority=100)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _arm() -> bool:
    """One more lab is up (main thread only): SIGTERM's default action becomes LabTerminated
    (see _on_signal)."""
    if not _main_thread():
        return False
    if _guard["depth"] == 0:
        saved = {}
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            saved[signal.SIGTERM] = signal.SIG_DFL
            signal.signal(signal.SIGTERM, _on_signal)
        _guard.update(saved=saved, holding=0, held=[])
    _guard["depth"] += 1
    return True


def _disarm() -> None:
    """One lab fewer; the last one puts SIGTERM's default action back."""
    _guard["depth"] -= 1
    if _guard["depth"] > 0:
        return
    for sig, handler in _guard["saved"].items():
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, handler)
    _guard["saved"] = {}


@contextlib.contextmanager
def _teardown_guard(armed: bool) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while a teardown runs; deliver the first one held to
    the process's own handler when it is over (see _on_signal)."""
    if not armed:
        yield
        return
    during = {}
    for sig in _GUARDED:
        handler = signal.getsignal(sig)
        if handler is None or handler is signal.SIG_IGN or handler is _on_signal:
            continue
        during[sig] = handler
        signal.signal(sig, _on_signal)
    _guard["holding"] += 1
    try:
        yield
    finally:
        _guard["holding"] -= 1
        for sig, handler in during.items():
            if signal.getsignal(sig) is _on_signal:
                signal.signal(sig, handler)
        _disarm()
        held = _guard["held"]
        if held and not _guard["holding"]:
            _guard["held"] = []
            signal.raise_signal(held[0])


class Lab:
    """Base for labs: a context manager that builds on enter and always tears down.

    Subclasses implement `_build()` and list their namespaces in `self._netns`.
    Links opened with `open_link()` and peers started with `peer()`/`client()` are closed or
    stopped by the teardown too.
    """

    _need_tun = False

    def __init__(self) -> None:
        self.tag = unique_tag()
        self._netns: list[str] = []
        self._links: list[Link] = []
        self._peers: list[Any] = []
        self._built = False
        self._armed = False     # this lab is counted in _guard (see _arm)

    def __enter__(self) -> Self:
        privileges.check(need_tun=self._need_tun)
        if not self._armed:
            self._armed = _arm()
        _watch(self)
        try:
            self._build()
            self._built = True
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        raise NotImplementedError

    def _new_netns(self, name: str) -> str:
        self._netns.append(name)
        add_netns(name)
        return name

    def _track(self, link: Link) -> Link:
        self._links.append(link)
        return link

    def _require_built(self) -> None:
        if not self._built:
            raise OSError(errno.ENOTCONN,
                          "the lab is not set up; use it as `with Lab(...) as lab:`")

    def detach(self) -> None:
        """The lab outlives this process (`rawtcp lab up`): forget its namespaces, so that
        neither close() nor the process's exit removes them, and give the process its own
        signal handlers back."""
        _up.pop(id(self), None)
        self._netns.clear()
        if self._armed:
            self._armed = False
            _disarm()

    def close(self) -> None:
        """Stop peers, close links, delete namespaces (and all they contain). Idempotent.

        Every step runs even when one before it fails, also on Ctrl-C or SIGTERM landing in
        the teardown itself (often right after a failure that started it, when a peer died
        of the same signal): the first error, the interrupt included, is raised at the
        end. On the main thread the teardown holds Ctrl-C and SIGTERM back and delivers them
        when it is over (see _on_signal)."""
        _up.pop(id(self), None)
        armed, self._armed = self._armed, False
        with _teardown_guard(armed):
            self._teardown()

    def _teardown(self) -> None:
        errors: list[BaseException] = []
        for p in self._peers:
            try:
                p.stop()
            except BaseException as e:  # noqa: BLE001 - keep tearing down, raise it after
                errors.append(e)
        self._peers.clear()
        for link in self._links:
            try:
                link.close()
            except BaseException as e:  # noqa: BLE001 - keep tearing down, raise it after
                errors.append(e)
        self._links.clear()
        for ns in reversed(self._netns):
            try:
                delete_netns(ns)
            except BaseException as e:  # noqa: BLE001 - keep tearing down, raise it after
                errors.append(e)
        self._netns.clear()
        self._built = False
        if errors:
            raise errors[0]

    # -------------------------------------------------------------- kernel peers
    def server(self, kind: str, port: int = 0, **opts: Any) -> Any:
        """Start a kernel TCP server in the kernel's namespace (see rawtcp.lab.peers)."""
        from rawtcp.lab.peers import Server

        self._require_built()
        opts.setdefault("bind", self.kernel_bind_addr())
        srv = Server(self.kernel_netns, kind, port=port, **opts)
        self._peers.append(srv)
        return srv.start()

    def client(self, port: int, host: str | None = None, **opts: Any) -> Any:
        """Start a kernel TCP client in the kernel's namespace that connects to rawtcp."""
        from rawtcp.lab.peers import Client

        self._require_built()
        cl = Client(self.kernel_netns, host or self.rawtcp_addr, port, **opts)
        self._peers.append(cl)
        return cl.start()

    def kernel_bind_addr(self) -> str:
        return "::" if any(":" in a for a in self.kernel_addrs) else "0.0.0.0"

    kernel_netns: str
    kernel_addrs: list[str]
    rawtcp_addr: str
