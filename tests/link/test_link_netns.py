import errno
import os
import subprocess
import threading

import pytest

from rawtcp.host.netns import in_netns

pytestmark = pytest.mark.kernel


def own_netns() -> int:
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


def test_switches_thread_and_back() -> None:
    name = f"rt{os.getpid() % 0xFFFF:04x}ns"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        target = os.stat(f"/var/run/netns/{name}").st_ino
        before = own_netns()
        with in_netns(name):
            assert own_netns() == target
        assert own_netns() == before
        with pytest.raises(RuntimeError), in_netns(name):
            raise RuntimeError("body fails")
        assert own_netns() == before
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_missing_namespace_is_enoent() -> None:
    with pytest.raises(OSError) as e, in_netns("rt-no-such-ns"):
        pass
    assert e.value.errno == errno.ENOENT
