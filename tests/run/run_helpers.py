"""Helpers of tests/run: a lab, `rawtcp run` as a subprocess, kernel programs in the lab's
kernel namespace, and the evidence that traffic went through rawtcp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from rawtcp.lab import persistent

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Lab:
    rec: persistent.LabRecord
    labs_dir: str

    @property
    def name(self) -> str:
        return self.rec.name

    @property
    def kernel_addr(self) -> str:
        return self.rec.kernel_addr

    @property
    def rawtcp_addr(self) -> str:
        return self.rec.rawtcp_addrs[0]

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=ROOT, RAWTCP_LABS=self.labs_dir,
                   PYTHONUNBUFFERED="1")
        env.pop("RAWTCP_DEBUG", None)
        return env

    def rawtcp_run(self, *args: str, timeout: float = 90, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.run_argv(*args), capture_output=True, text=True,
                              timeout=timeout, env=self.env(), **kw)

    def run_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "rawtcp", "run", "--lab", self.name, *args]

    def kernel(self, argv: list[str], **kw) -> subprocess.Popen:
        """A process in the kernel's namespace (stdout, stderr piped, text)."""
        return subprocess.Popen(["ip", "netns", "exec", self.rec.kernel_netns, *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                **kw)

    def rawtcp_side_kernel_addrs(self) -> list[str]:
        """The IP addresses the kernel of rawtcp's namespace has (loopback aside)."""
        out = subprocess.run(["ip", "-n", self.rec.rawtcp_netns, "-j", "addr", "show"],
                             capture_output=True, text=True, check=True).stdout
        return [a["local"] for ifc in json.loads(out) for a in ifc.get("addr_info", [])
                if ifc.get("ifname") != "lo"]

    def down(self) -> None:
        persistent.lab_down(self.name, self.labs_dir)


def make_lab(labs_dir: str) -> Lab:
    return Lab(persistent.lab_up(ipv6=False, labs_dir=labs_dir), labs_dir)


def stop(proc: subprocess.Popen, timeout: float = 10) -> tuple[str, str]:
    """Kill (if still running) and reap; its output."""
    if proc.poll() is None:
        proc.kill()
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return "", ""


def wait_line(proc: subprocess.Popen, needle: str, stream: str = "stdout",
              limit: int = 50) -> str:
    """Read lines of the process until one holds ``needle`` (the test's own timeout bounds
    the wait); AssertionError with what came if the process ends first."""
    seen = []
    f = getattr(proc, stream)
    for _ in range(limit):
        line = f.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no line with {needle!r}: {seen!r} (status {proc.poll()})")


def segments(trace: str, direction: str | None = None) -> list[dict]:
    from rawtcp.trace import read_trace

    return [e for e in read_trace(trace) if e["ev"] == "seg"
            and (direction is None or e["dir"] == direction)]


def pcap_packets(path: str) -> int:
    """The number of records of a pcap file (classic format, as rawtcp writes it)."""
    import struct

    n = 0
    with open(path, "rb") as f:
        f.read(24)
        while True:
            head = f.read(16)
            if len(head) < 16:
                return n
            incl = struct.unpack("<IIII", head)[2]
            f.seek(incl, 1)
            n += 1
