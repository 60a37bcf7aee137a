"""Labs build private topologies and leave nothing behind, even when the body fails."""

import os
import signal
import subprocess
import sys

import pytest
from lab_helpers import snapshot

from rawtcp.host import registry
from rawtcp.lab import TunLab, VethLab
from rawtcp.lab.base import tag_pid
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
        assert len(lab.tag) == 12 and tag_pid(lab.tag) == os.getpid()
        link = lab.open_link()
        assert len(link.name) <= 15
        if isinstance(lab, VethLab):
            assert discover.addresses_of(lab.kernel_if, lab.kernel_netns)[:2] == \
                lab.kernel_addrs
            ours = discover.addresses_of(lab.rawtcp_if, lab.rawtcp_netns)
            assert ours == ([] if lab.mode == "packet" else lab.rawtcp_addrs)
            assert not discover.tx_checksum_offload(lab.kernel_if, lab.kernel_netns)
        for ns in lab_names(lab):                     # no default route, v4 or v6
            for fam in ("-4", "-6"):
                routes = subprocess.run(["ip", "-n", ns, fam, "route"], capture_output=True,
                                        text=True, check=True).stdout
                assert "default" not in routes, (ns, fam, routes)
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


def test_an_interrupt_inside_the_teardown_does_not_stop_it(host_snapshot, monkeypatch) -> None:
    """Ctrl-C often lands while a lab is being torn down (a peer died of the same signal and
    its error started the teardown): the teardown goes on with the other namespace and
    raises the interrupt after. Both namespaces were left behind."""
    import rawtcp.lab.base as base

    real = base.delete_netns
    calls: list[str] = []

    def interrupted_once(name: str) -> None:
        calls.append(name)
        real(name)
        if len(calls) == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(base, "delete_netns", interrupted_once)
    lab = VethLab("rawip")
    with pytest.raises(KeyboardInterrupt), lab:
        names = lab_names(lab)
        assert len(names) == 2 and names <= snapshot()["netns"]
    assert len(calls) == 2
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


def test_names_unique_per_run(host_snapshot) -> None:
    """Two labs of one process at once: different namespaces and interfaces, both named
    after this pid (so labs of concurrent test runs never collide)."""
    with VethLab("packet") as a, VethLab("packet") as b:
        assert a.tag != b.tag
        assert tag_pid(a.tag) == tag_pid(b.tag) == os.getpid()
        assert not lab_names(a) & lab_names(b)
        assert {a.kernel_if, a.rawtcp_if}.isdisjoint({b.kernel_if, b.rawtcp_if})
        assert lab_names(a) | lab_names(b) <= snapshot()["netns"]
    assert_gone(a, host_snapshot)
    assert_gone(b, host_snapshot)


def test_cleanup_orphans_without_registry(host_snapshot) -> None:
    """A killed process whose registry entries are lost too (e.g. /run wiped): its
    namespaces are still recognised by name (its pid is in it, and dead) and removed."""
    code = ("import os\nfrom rawtcp.lab import TunLab\n"
            "lab = TunLab().__enter__()\nprint(lab.netns, flush=True)\n"
            "os.kill(os.getpid(), 9)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == -signal.SIGKILL, p.stderr
    ns = p.stdout.strip()
    for e in registry.entries():
        if e.name == ns:
            os.unlink(e.path)
    assert ns in snapshot()["netns"]
    with VethLab("packet") as live:
        for e in registry.entries():              # unregistered too, but its pid is alive
            if e.name in lab_names(live):
                os.unlink(e.path)
        removed = clean(orphans=True)
        assert f"netns {ns} (orphan)" in removed
        assert lab_names(live) <= snapshot()["netns"]
    assert ns not in snapshot()["netns"]


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
