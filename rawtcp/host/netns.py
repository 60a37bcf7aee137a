"""Network namespaces: run code with one thread inside one, create, list and delete them.

Linux lets each thread have its own network namespace (setns(2) with CLONE_NEWNET). Sockets
and TUN devices belong to the namespace that was current when they were created and stay
there, so a link opens its fd inside `in_netns(name)` and then lives in the original one.
Python 3.11 has no os.setns, so this uses libc through ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

from rawtcp.host import registry
from rawtcp.host.system import run, uninterrupted

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/var/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns(CLONE_NEWNET) failed: {os.strerror(e)} (needs CAP_SYS_ADMIN)")


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Switch this thread into network namespace `name` (None: stay) and always switch back."""
    if name is None:
        yield
        return
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"network namespace {name!r} does not exist "
                      f"(create it with `ip netns add {name}`)") from None
    try:
        own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net",
                      os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(own)
    finally:
        os.close(target)


def ip_cmd(netns: str | None) -> list[str]:
    """The start of an `ip` command line that acts inside `netns`."""
    return ["ip", "-n", netns] if netns else ["ip"]


def exec_prefix(netns: str | None) -> list[str]:
    """Command prefix that runs a program inside `netns`."""
    return ["ip", "netns", "exec", netns] if netns else []


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def add_netns(name: str) -> None:
    """Create namespace `name` with its loopback up, recorded in the registry first."""
    registry.register("netns", name)
    try:
        run(["ip", "netns", "add", name])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
    except BaseException:
        delete_netns(name)
        raise


def netns_pids(name: str) -> list[int]:
    p = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                       check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def delete_netns(name: str) -> None:
    """Kill what still runs inside (processes the lab started), then delete the namespace.
    A Ctrl-C or SIGTERM landing in the middle does not leave it half done: the removal
    finishes, then the interrupt is raised."""
    uninterrupted(lambda: _delete_netns(name))


def _delete_netns(name: str) -> None:
    for _ in range(2):
        pids = [p for p in netns_pids(name) if p != os.getpid()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(registry.pid_alive(p) for p in pids):
            time.sleep(0.01)
    # `ip` may die of the terminal's Ctrl-C (it is in our process group) before it deletes:
    # the registry entry stays until the namespace is really gone
    for _ in range(3):
        if not netns_exists(name):
            break
        run(["ip", "netns", "del", name], check=False)
    if netns_exists(name):
        raise OSError(errno.EBUSY, f"network namespace {name} could not be deleted "
                                   f"(`rawtcp lab clean` retries)")
    registry.unregister("netns", name)
