"""nftables tables that rawtcp creates: load one atomically, read its counters, delete it.

Each table is recorded in the registry (rawtcp.host.registry) while it exists, so
`rawtcp.lab.cleanup.clean()` can remove it if the process dies before `delete_table`.
"""

from __future__ import annotations

import errno
import json
import os
import secrets

from rawtcp.host import registry
from rawtcp.host.netns import exec_prefix
from rawtcp.host.system import run, uninterrupted


def unique_table_name(kind: str) -> str:
    """e.g. "rt_rawip_1234_9f3a0c": the "rt" prefix, what made it, pid, random."""
    return f"rt_{kind}_{os.getpid()}_{secrets.token_hex(3)}"


def nft(args: list[str], netns: str | None, input: str | None = None,
        check: bool = True) -> str:
    return run(exec_prefix(netns) + ["nft"] + args, input=input, check=check).stdout


def add_table(netns: str | None, family: str, name: str, body: str) -> None:
    """Create table `family name` with `body` (chains, sets) in one transaction."""
    registry.register("nft", name, netns, family)
    try:
        nft(["-f", "-"], netns, input=f"table {family} {name} {{\n{body}\n}}\n")
    except BaseException:
        delete_table(netns, family, name)
        raise


def delete_table(netns: str | None, family: str, name: str) -> None:
    """Delete the table and its registry entry; a Ctrl-C or SIGTERM landing in the middle
    does not leave either behind: the removal finishes, then the interrupt is raised."""
    def remove() -> None:
        # `nft` may die of the terminal's Ctrl-C (it is in our process group) before it
        # deletes: then it runs again, and the registry entry stays if it never succeeds
        for _ in range(3):
            p = run(exec_prefix(netns) + ["nft", "delete", "table", family, name], check=False)
            if p.returncode >= 0:
                break
        else:
            raise OSError(errno.EINTR, f"nftables table {family} {name} could not be deleted "
                                       f"(`rawtcp lab clean` retries)")
        registry.unregister("nft", name, netns)

    uninterrupted(remove)


def table_exists(netns: str | None, family: str, name: str) -> bool:
    return f"table {family} {name}" in nft(["list", "tables"], netns, check=False).splitlines()


def rule_counters(netns: str | None, family: str, name: str) -> list[dict]:
    """Every rule of the table that has a counter: {"chain", "comment", "packets", "bytes"}."""
    out = json.loads(nft(["-j", "list", "table", family, name], netns) or "{}")
    rules = []
    for item in out.get("nftables", []):
        r = item.get("rule")
        if not r:
            continue
        for e in r.get("expr", []):
            if "counter" in e and isinstance(e["counter"], dict):
                rules.append({"chain": r.get("chain"), "comment": r.get("comment"),
                              "packets": e["counter"]["packets"],
                              "bytes": e["counter"]["bytes"]})
    return rules
