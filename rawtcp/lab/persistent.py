"""Labs that outlive the process that made them (`rawtcp lab up` / `lab down` / `lab list`).

A persistent lab is a VethLab (packet mode) whose namespaces are taken out of the crash
registry (rawtcp.host.registry removes objects of dead processes, and the creator exits at
once) and recorded instead as one JSON file per lab under ``LABS_DIR`` (``RAWTCP_LABS``,
default /run/rawtcp/labs). Every function here is the lab side of a CLI command; the CLI
only prints.

    rec = lab_up(ipv6=False)          # LabRecord: name, netns, interface, addresses
    lab_records()                     # every recorded lab, oldest name first
    lab_record("rt0012a9f03c")        # one, or LookupError naming the labs there are
    lab_down("rt0012a9f03c")          # delete its namespaces and forget it
    remove_all()                      # `lab clean --force`: every recorded lab
"""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import os
import time
from dataclasses import asdict, dataclass, field

from rawtcp.host import registry
from rawtcp.host.netns import delete_netns, netns_exists

LABS_DIR = os.environ.get("RAWTCP_LABS", "/run/rawtcp/labs")

__all__ = ["LABS_DIR", "LabRecord", "claim_port", "lab_down", "lab_record", "lab_records",
           "lab_up", "remove_all"]


@dataclass(frozen=True)
class LabRecord:
    name: str
    kernel_netns: str
    rawtcp_netns: str
    rawtcp_if: str
    kernel_addrs: list[str] = field(default_factory=list)
    rawtcp_addrs: list[str] = field(default_factory=list)
    created: float = 0.0

    @property
    def kernel_addr(self) -> str:
        return self.kernel_addrs[0]

    def gone(self) -> bool:
        """Its namespaces were removed behind our back (e.g. by `lab clean --force`)."""
        return not (netns_exists(self.kernel_netns) and netns_exists(self.rawtcp_netns))

    def to_dict(self) -> dict:
        return asdict(self)


def _path(name: str, labs_dir: str | None) -> str:
    return os.path.join(labs_dir or LABS_DIR, f"{name}.json")


def lab_up(ipv6: bool = False, labs_dir: str | None = None) -> LabRecord:
    """Build a packet-mode VethLab that stays after this process exits, and record it."""
    from rawtcp.lab.vethlab import VethLab

    lab = VethLab(mode="packet", family="dual" if ipv6 else "ipv4")
    lab.__enter__()
    recorded = ""
    try:
        rec = LabRecord(lab.tag, lab.kernel_netns, lab.rawtcp_netns, lab.rawtcp_if,
                        list(lab.kernel_addrs), list(lab.rawtcp_addrs), time.time())
        os.makedirs(labs_dir or LABS_DIR, exist_ok=True)
        tmp = _path(rec.name, labs_dir) + f".{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(rec.to_dict(), f)
        os.replace(tmp, _path(rec.name, labs_dir))
        recorded = _path(rec.name, labs_dir)
        # recorded: from now on the record, not the crash registry or this process, owns
        # the namespaces
        for ns in (rec.kernel_netns, rec.rawtcp_netns):
            registry.unregister("netns", ns)
        lab.detach()
    except BaseException:
        lab.__exit__(None, None, None)
        if recorded:
            os.unlink(recorded)
        raise
    return rec


def lab_records(labs_dir: str | None = None) -> list[LabRecord]:
    """Every recorded lab (a file that cannot be read is skipped)."""
    out: list[LabRecord] = []
    try:
        names = sorted(os.listdir(labs_dir or LABS_DIR))
    except FileNotFoundError:
        return out
    for n in names:
        if not n.endswith(".json"):
            continue
        try:
            with open(os.path.join(labs_dir or LABS_DIR, n), encoding="utf-8") as f:
                out.append(LabRecord(**json.load(f)))
        except (OSError, ValueError, TypeError):
            continue
    return out


def lab_record(name: str, labs_dir: str | None = None) -> LabRecord:
    """The lab called ``name``; LookupError (one line naming the labs there are) if none."""
    for rec in lab_records(labs_dir):
        if rec.name == name:
            return rec
    known = ", ".join(r.name for r in lab_records(labs_dir)) or "none"
    raise LookupError(f"no lab named {name!r} (labs: {known}; make one with `rawtcp lab up`)")


def claim_port(name: str, port: int, labs_dir: str | None = None) -> int:
    """Claim ``port`` on lab ``name`` for this process: OSError(EADDRINUSE) naming the owner
    when another live process holds it. The claim is an flock on a small file, so it ends
    with the process however it ends (SIGKILL too). Returns the fd to keep open."""
    d = os.path.join(labs_dir or LABS_DIR, "claims")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{name}-{port}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise OSError(errno.EADDRINUSE, f"port {port} of lab {name} is already used by "
                                        f"another rawtcp (pid {owner}); choose another port"
                      ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def lab_down(name: str, labs_dir: str | None = None) -> LabRecord:
    """Delete the lab's namespaces (with everything inside) and forget it."""
    rec = lab_record(name, labs_dir)
    for ns in (rec.rawtcp_netns, rec.kernel_netns):
        delete_netns(ns)
    for claim in glob.glob(os.path.join(labs_dir or LABS_DIR, "claims", f"{name}-*.lock")):
        try:
            os.unlink(claim)
        except OSError:
            pass
    try:
        os.unlink(_path(name, labs_dir))
    except FileNotFoundError:
        pass
    return rec


def remove_all(labs_dir: str | None = None) -> list[str]:
    """Every recorded lab down; their names."""
    return [lab_down(rec.name, labs_dir).name for rec in lab_records(labs_dir)]
