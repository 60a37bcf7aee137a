"""Moved to rawtcp.host.privileges; this name stays for rawtcp/commands.py
(`from rawtcp import privileges`). New code imports rawtcp.host.privileges."""

from rawtcp.host.privileges import (
    CAP_NET_ADMIN,
    CAP_NET_RAW,
    CAP_SYS_ADMIN,
    HOW_TO,
    TUN_PATH,
    check,
    effective_caps,
    missing,
)

__all__ = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "HOW_TO", "TUN_PATH", "check",
           "effective_caps", "missing"]
