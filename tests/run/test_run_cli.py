"""`rawtcp run`'s command line (no lab needed: every case ends before a link is opened)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rawtcp.run import Program, UsageError, exit_status, parse_program

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rawtcp(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("RAWTCP_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "rawtcp", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_help_names_the_program_and_link_options() -> None:
    r = _rawtcp("run", "--help")
    assert r.returncode == 0
    assert "--lab NAME" in r.stdout and "-- python PROGRAM" in r.stdout


@pytest.mark.parametrize("argv, words", [
    (["run"], "give the program"),
    (["run", "--", "python3"], "interactive"),
    (["run", "--", "python3", "-W", "x.py"], "-W"),
    (["run", "--", "python3", "/no/such/prog.py"], "no such program"),
    (["run", "--", "python3", "-m"], "needs an argument"),
])
def test_bad_program_line_is_one_line_and_exit_2(argv: list[str], words: str) -> None:
    r = _rawtcp(*argv)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr


def test_program_forms(tmp_path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("pass\n")
    assert parse_program(["--", "python3", "-u", str(prog), "a"]) == \
        Program("path", str(prog), ["a"])
    assert parse_program(["/usr/bin/python3.11", "-m", "http.server", "8000"]) == \
        Program("module", "http.server", ["8000"])
    assert parse_program(["python", "-mhttp.server"]) == Program("module", "http.server", [])
    assert parse_program([str(prog), "x"]).argv == [str(prog), "x"]
    assert parse_program(["python3", "-c", "print(1)", "z"]).argv == ["-c", "z"]
    with pytest.raises(UsageError):
        parse_program(["python3", str(tmp_path)])          # a directory without __main__


def test_exit_status_as_the_interpreter() -> None:
    assert exit_status(None) == 0 and exit_status(3) == 3 and exit_status(256 + 4) == 4
    assert exit_status("message") == 1


def test_program_threads_are_waited_for_before_the_stack_closes(tmp_path) -> None:
    """A program whose main code returns while a non-daemon thread still works: run_program
    returns only after the thread ended (as the interpreter would), with the stack open."""
    from rawtcp.link.memory import MemoryLink
    from rawtcp.run import run_program
    from rawtcp.runtime import Stack

    out = tmp_path / "out.txt"
    prog = tmp_path / "p.py"
    prog.write_text(
        "import socket, threading\n"
        "ev = threading.Event()\n"
        "def work():\n"
        "    ev.wait(10)\n"
        "    s = socket.socket()\n"
        f"    open({str(out)!r}, 'w').write(type(s).__module__)\n"
        "threading.Thread(target=work).start()\n"
        "ev.set()\n")
    la, _lb = MemoryLink.pair(["10.3.0.1"], ["10.3.0.2"])
    with Stack(la) as st:
        assert run_program(st, Program("path", str(prog))) == 0
        assert out.read_text() == "rawtcp.socket"      # made under the patch, stack open
