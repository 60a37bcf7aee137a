"""Remove what crashed rawtcp processes left behind: `python -m rawtcp.lab.cleanup [--force]`.

clean() walks the registry (/run/rawtcp/registry): entries whose owning pid is dead (all of
them with force=True) are removed: namespaces (with every device and nftables table inside
them), interfaces, nftables tables. orphans=True also removes namespaces and root-namespace
nftables tables with rawtcp's names that no live process has registered: a lab name is
"rt" + the creator's pid (6 hex digits) + 4 random hex digits (+ k/r/t), and such a
namespace is only taken when that pid is dead; tables are "rt_<kind>_<pid>_<hex>". It is off
by default because the prefix is short.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

from rawtcp.host import nft, registry
from rawtcp.host.netns import delete_netns, ip_cmd, netns_exists
from rawtcp.lab.base import tag_pid

_OLD_NETNS_RE = re.compile(r"^rt[0-9a-f]{6}[a-z]?$")   # names before the pid was in them
_TABLE_RE = re.compile(r"^rt_[a-z]+_\d+_[0-9a-f]{6}$")


def list_labs() -> list[dict]:
    """Every registered object: {kind, name, netns, family, pid, alive, created}."""
    return [{"kind": e.kind, "name": e.name, "netns": e.netns, "family": e.family,
             "pid": e.pid, "alive": e.alive(), "created": e.created}
            for e in registry.entries()]


def remove_entry(e: registry.Entry) -> str:
    """Remove what one registry entry names (namespace, nftables table, link); a line
    saying what."""
    if e.kind == "netns":
        delete_netns(e.name)
        return f"netns {e.name}"
    if e.kind == "nft":
        if e.netns is None or netns_exists(e.netns):
            nft.delete_table(e.netns, e.family or "inet", e.name)
        else:
            registry.unregister("nft", e.name, e.netns)
        return f"nft table {e.family} {e.name}" + (f" in {e.netns}" if e.netns else "")
    if e.kind == "link":
        if e.netns is None or netns_exists(e.netns):
            subprocess.run(ip_cmd(e.netns) + ["link", "del", e.name], capture_output=True,
                           check=False)
        registry.unregister("link", e.name, e.netns)
        return f"link {e.name}"
    os.unlink(e.path)
    return f"unknown entry {e.path}"


def clean(force: bool = False, orphans: bool = False) -> list[str]:
    """Remove leftovers; returns a description of each removed object."""
    done: list[str] = []
    entries = registry.entries()
    live = {(e.kind, e.name) for e in entries if e.alive() and not force}
    # tables and links first: a namespace removal takes its contents with it
    order = {"nft": 0, "link": 1, "netns": 2}
    for e in sorted(entries, key=lambda e: order.get(e.kind, 3)):
        if force or not e.alive():
            done.append(remove_entry(e))
    if orphans:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                               check=False).stdout
        for line in names.splitlines():
            name = line.split()[0] if line.split() else ""
            pid = tag_pid(name)
            ours = (pid is not None and (force or not registry.pid_alive(pid))) \
                or _OLD_NETNS_RE.match(name)
            if ours and ("netns", name) not in live:
                delete_netns(name)
                done.append(f"netns {name} (orphan)")
        tables = nft.nft(["list", "tables"], None, check=False)
        for line in tables.splitlines():
            parts = line.split()
            if len(parts) == 3 and _TABLE_RE.match(parts[2]) and ("nft", parts[2]) not in live:
                nft.delete_table(None, parts[1], parts[2])
                done.append(f"nft table {parts[1]} {parts[2]} (orphan)")
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rawtcp.lab.cleanup")
    p.add_argument("--force", action="store_true", help="also remove live processes' objects")
    p.add_argument("--orphans", action="store_true", help="also unregistered rt* objects")
    p.add_argument("--list", action="store_true", help="only list what is registered")
    a = p.parse_args(argv)
    if a.list:
        for e in list_labs():
            print(f"{e['kind']:6} {e['name']:28} netns={e['netns']} pid={e['pid']} "
                  f"{'alive' if e['alive'] else 'dead'}")
        return 0
    for d in clean(force=a.force, orphans=a.orphans):
        print("removed", d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
