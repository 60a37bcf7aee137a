"""Check, before touching the kernel, that this process may do what rawtcp needs.

rawtcp creates network namespaces, TUN devices, AF_PACKET and raw IP sockets and nftables
rules. That needs root, or a container started with CAP_NET_ADMIN and CAP_NET_RAW and the
device node /dev/net/tun. `check()` reads the effective capability set from
/proc/self/status and tries to open /dev/net/tun, and raises one PermissionError (an OSError
with errno EPERM) whose message says what is missing and how to get it.
"""

from __future__ import annotations

import errno
import os

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21   # setns(2) into a network namespace

TUN_PATH = "/dev/net/tun"

HOW_TO = (
    "rawtcp needs root, or a container with CAP_NET_ADMIN and CAP_NET_RAW and /dev/net/tun "
    "(e.g. `sudo rawtcp ...`, or `docker run --cap-add NET_ADMIN --cap-add NET_RAW "
    "--device /dev/net/tun ...`; the lab's network namespaces also need CAP_SYS_ADMIN, "
    "i.e. `--privileged`)"
)


def effective_caps(status_path: str = "/proc/self/status") -> int:
    """The effective capability mask (CapEff) of this process, 0 if it cannot be read."""
    try:
        with open(status_path, encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def missing(need_tun: bool = True) -> list[str]:
    """What is missing, as short phrases; empty when everything is there."""
    caps = effective_caps()
    out: list[str] = []
    for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_NET_RAW, "CAP_NET_RAW")):
        if not caps & (1 << bit):
            out.append(name)
    if need_tun:
        if not os.path.exists(TUN_PATH):
            out.append(f"{TUN_PATH} (does not exist)")
        else:
            try:
                fd = os.open(TUN_PATH, os.O_RDWR)
            except OSError as e:
                out.append(f"{TUN_PATH} ({os.strerror(e.errno)})")
            else:
                os.close(fd)
    return out


def check(need_tun: bool = True) -> None:
    """Raise PermissionError(EPERM) with one clear message unless rawtcp may run here."""
    lacking = missing(need_tun)
    if lacking:
        raise PermissionError(errno.EPERM, f"{HOW_TO}; missing: {', '.join(lacking)}")
