import os
import subprocess
import sys

import pytest

from rawtcp.host import privileges

pytestmark = pytest.mark.kernel


def test_root_passes() -> None:
    privileges.check()
    assert privileges.missing() == []


def test_unprivileged_user_gets_one_clear_message() -> None:
    code = ("from rawtcp import privileges\n"
            "try:\n    privileges.check()\n"
            "except PermissionError as e:\n    print(e.errno, e.strerror)\n")
    import rawtcp

    root = os.path.dirname(os.path.dirname(os.path.abspath(rawtcp.__file__)))  # the checkout
    env = dict(os.environ, PYTHONPATH=root)
    # no capabilities at all; uid 0 keeps the checkout readable wherever it lives
    p = subprocess.run(["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
                        "--bounding-set=-all", sys.executable, "-c", code],
                       capture_output=True, text=True, env=env, timeout=30, check=False)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip()
    assert out.startswith("1 rawtcp needs root, or a container with CAP_NET_ADMIN and "
                          "CAP_NET_RAW and /dev/net/tun")
    # uid 0 may still open the device node (it owns it); the capabilities are what it lacks
    assert "missing: CAP_NET_ADMIN, CAP_NET_RAW" in out
