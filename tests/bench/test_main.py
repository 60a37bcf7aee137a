"""`python -m rawtcp.bench`: the same as `rawtcp bench`, signals included (no root needed)."""

from __future__ import annotations

import subprocess
import sys

# main() replaced by one that holds a resource (a `with` block, as a lab is held) and is
# sent SIGTERM in the middle: the block must be left through its __exit__
SCRIPT = """
import os, signal, sys, time
import rawtcp.bench.__main__ as m

class Lab:
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        print("lab removed", flush=True)

def fake_main(args):
    with Lab():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    return 0

m.main = fake_main
sys.exit(m.run(["--size", "1"]))
"""


def test_sigterm_unwinds_like_ctrl_c_and_removes_what_was_built() -> None:
    """`timeout 60 python -m rawtcp.bench` (SIGTERM) must not leave namespaces and kernel
    peers behind: the signal unwinds the stack as Ctrl-C does, exit status 143."""
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=60, check=False)
    assert "lab removed" in p.stdout, (p.returncode, p.stderr)
    assert p.returncode == 143
    assert p.stderr.strip() == "rawtcp bench: terminated"


# the measurements replaced by none; stdout a pipe whose reader has gone (`| head`, `| true`)
PIPE_SCRIPT = """
import os, sys
import rawtcp.bench.cli as cli
import rawtcp.bench.__main__ as m

cli._check_privileges = lambda: None
cli.run_tests = lambda args, progress: []
r, w = os.pipe()
os.close(r)
os.dup2(w, 1)
sys.exit(m.run(["--tests", "conn"]))
"""


def test_a_reader_that_left_is_not_a_failed_measurement() -> None:
    """`rawtcp bench | head`: the output cannot be written; not "Broken pipe" and exit 1
    (which the docs reserve for a failed measurement or check), but silence and 141, as the
    rest of rawtcp does."""
    p = subprocess.run([sys.executable, "-c", PIPE_SCRIPT], capture_output=True, text=True,
                       timeout=60, check=False)
    assert p.returncode == 141, p.stderr
    assert p.stderr == ""
