"""Labs build private topologies and leave nothing behind, even when the body fails."""

import os
import signal
import subprocess
import sys

import pytest
from lab_helpers import snapshot

from rawtcp.lab import TunLab, VethLab, registry
from rawtcp.lab.cleanup import clean, list_labs
from rawtcp.link import discover

pytestmark = pytest.mark.kernel


def lab_names(lab) -> set[str]:
    return {ns for ns in (getattr(lab, "kernel_netns", None), getattr(lab, "rawtcp_netns", None))
            if ns}


def assert_gone(lab, before) -> None:
    after = snapshot()
    assert not lab_names(lab) & after["netns"]
    assert not {n for n in after["netns"] - before["netns"] if n.startswith(lab.tag)}
    assert not {t for t in after["tables"] - before["tables"] if str(os.getpid()) in t}
    assert not {ln for ln in after["links"] if ln.startswith(lab.tag)}
    assert not [e for e in registry.entries() if e.pid == os.getpid()]


@pytest.mark.parametrize("make", [lambda: TunLab("dual"), lambda: VethLab("packet"),
                                  lambda: VethLab("rawip")], ids=["tun", "veth-packet",
                                                                   "veth-rawip"])
def test_lab_created_and_removed(host_snapshot, make) -> None:
    lab = make()
    with lab:
        now = snapshot()
        assert lab_names(lab) <= now["netns"]
        assert len(lab.tag) == 8 and lab.tag.startswith("rt")
        link = lab.open_link()
        assert len(link.name) <= 15
        if isinstance(lab, VethLab):
            assert discover.addresses_of(lab.kernel_if, lab.kernel_netns)[:2] == \
                lab.kernel_addrs
            ours = discover.addresses_of(lab.rawtcp_if, lab.rawtcp_netns)
            assert ours == ([] if lab.mode == "packet" else lab.rawtcp_addrs)
            assert not discover.tx_checksum_offload(lab.kernel_if, lab.kernel_netns)
        routes = subprocess.run(["ip", "-n", lab.kernel_netns, "route", "show", "default"],
                                capture_output=True, text=True, check=True).stdout
        assert routes == ""   # no default route
    assert link.closed
    assert_gone(lab, host_snapshot)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_teardown_when_body_raises(host_snapshot, exc) -> None:
    lab = VethLab("rawip")
    with pytest.raises(exc), lab:
        lab.open_link()
        srv = lab.server("hold", port=5000)
        srv.wait_ready()
        raise exc("boom")
    assert srv.returncode is not None   # peer killed
    assert_gone(lab, host_snapshot)


def test_teardown_when_build_fails(host_snapshot, monkeypatch) -> None:
    lab = VethLab("packet")

    def fail(*a, **k):
        raise OSError(5, "injected")
    monkeypatch.setattr(discover, "mac_of", fail)
    with pytest.raises(OSError, match="injected"), lab:
        pass
    assert_gone(lab, host_snapshot)


def test_cleanup_removes_leftovers_of_a_killed_process(host_snapshot) -> None:
    code = ("import os, sys\nfrom rawtcp.lab import VethLab\n"
            "lab = VethLab('rawip').__enter__()\nlab.open_link()\n"
            "print(lab.kernel_netns, lab.rawtcp_netns, flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == -signal.SIGKILL, p.stderr
    k, r = p.stdout.split()
    assert {k, r} <= snapshot()["netns"]
    mine = [e for e in list_labs() if e["netns"] == r or e["name"] in (k, r)]
    assert {e["kind"] for e in mine} == {"netns", "nft"} and not any(e["alive"] for e in mine)
    removed = clean()
    assert f"netns {k}" in removed and f"netns {r}" in removed
    assert not {k, r} & snapshot()["netns"]
    assert not [e for e in list_labs() if e["netns"] == r or e["name"] in (k, r)]


def test_cleanup_keeps_live_labs(host_snapshot) -> None:
    with VethLab("packet") as lab:
        clean()
        assert lab_names(lab) <= snapshot()["netns"]
        assert {e["name"] for e in list_labs() if e["alive"]} >= lab_names(lab)
    assert_gone(lab, host_snapshot)


def test_registry_pid_check() -> None:
    assert registry.pid_alive(os.getpid())
    p = subprocess.Popen(["true"])
    p.wait()
    assert not registry.pid_alive(p.pid)
