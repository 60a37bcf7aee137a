"""Running the system's network tools (`ip`, `nft`, `ss`) with errors users can act on."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Callable


def run(cmd: list[str], input: str | None = None, check: bool = True,
        timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run a system command; on failure raise OSError naming the command and its stderr."""
    try:
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                           check=False)
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"{cmd[0]} is not installed (install iproute2/nftables)") \
            from None
    if check and p.returncode != 0:
        raise OSError(errno.EIO, f"`{' '.join(cmd)}` failed: {p.stderr.strip()}")
    return p


def uninterrupted(step: Callable[[], None], attempts: int = 3) -> None:
    """Run `step`, an idempotent removal, to its end even when Ctrl-C or SIGTERM lands inside
    it (a BaseException that is not an Exception: KeyboardInterrupt, SystemExit): run it
    again, then raise the interrupt. An error of the step itself is raised as it is."""
    pending: BaseException | None = None
    for _ in range(attempts):
        try:
            step()
            break
        except Exception:
            if pending is not None:
                raise pending from None
            raise
        except BaseException as e:  # noqa: BLE001 - finish the removal, raise it after
            pending = pending or e
    if pending is not None:
        raise pending
