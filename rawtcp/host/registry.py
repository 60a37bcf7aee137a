"""A record, under /run/rawtcp/registry/, of every kernel object rawtcp created.

One small JSON file per object: {"kind": "netns"|"nft"|"link", "name", "netns", "family",
"pid", "created"}. Objects are registered before they are created and unregistered after
they are removed, so after a crash (even SIGKILL) `rawtcp.lab.cleanup.clean()` knows what
to remove: entries whose owning pid is dead.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass

REGISTRY_DIR = os.environ.get("RAWTCP_REGISTRY", "/run/rawtcp/registry")
PREFIX = "rt"


@dataclass(frozen=True)
class Entry:
    kind: str            # "netns", "nft" (table), "link" (interface)
    name: str
    netns: str | None = None
    family: str | None = None   # nft family
    pid: int = 0
    created: float = 0.0
    path: str = ""

    def alive(self) -> bool:
        return pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fname(kind: str, name: str, netns: str | None) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kind}-{netns or '-'}-{name}")
    return os.path.join(REGISTRY_DIR, safe + ".json")


def register(kind: str, name: str, netns: str | None = None, family: str | None = None) -> str:
    os.makedirs(REGISTRY_DIR, exist_ok=True)
    path = _fname(kind, name, netns)
    data = {"kind": kind, "name": name, "netns": netns, "family": family,
            "pid": os.getpid(), "created": time.time()}
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return path


def unregister(kind: str, name: str, netns: str | None = None) -> None:
    try:
        os.unlink(_fname(kind, name, netns))
    except FileNotFoundError:
        pass


def entries() -> list[Entry]:
    out: list[Entry] = []
    try:
        names = sorted(os.listdir(REGISTRY_DIR))
    except FileNotFoundError:
        return out
    for n in names:
        if not n.endswith(".json"):
            continue
        path = os.path.join(REGISTRY_DIR, n)
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            out.append(Entry(kind=d["kind"], name=d["name"], netns=d.get("netns"),
                             family=d.get("family"), pid=int(d.get("pid", 0)),
                             created=float(d.get("created", 0)), path=path))
        except (OSError, ValueError, KeyError, TypeError):
            continue   # a half-written or foreign file: ignore
    return out
