"""Running the system's network tools (`ip`, `nft`, `ss`) with errors users can act on."""

from __future__ import annotations

import errno
import subprocess


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
