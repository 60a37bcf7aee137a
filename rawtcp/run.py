"""`rawtcp run ... -- python PROGRAM [ARGS]`: a Python program run in this process, under
:func:`rawtcp.patch`, on one shared stack.

The command line after ``--`` is what one would give ``python``: ``python PROGRAM ARGS``,
``python -m MODULE ARGS`` or ``python -c CODE ARGS`` (the first word may be ``python``,
``python3``, ``python3.11`` or a path to a python; or the program's path directly). The
program sees ``sys.argv`` and ``sys.path[0]`` as Python would set them, runs through
:mod:`runpy` as ``__main__``, and its exit status is the command's: ``sys.exit(n)`` gives n,
an uncaught exception prints its traceback and gives 1, Ctrl-C 130. As at interpreter exit,
the non-daemon threads the program started are waited for before the stack closes (its
``atexit`` functions, though, run only after that, when rawtcp's process ends).
"""

from __future__ import annotations

import os
import re
import runpy
import sys
import threading
import traceback
from dataclasses import dataclass, field

from rawtcp.patch import patch

_PYTHON = re.compile(r"python(\d+(\.\d+)*)?$")
#: interpreter flags that change nothing for a program run in this process
_IGNORED_FLAGS = {"-u", "-B", "-E", "-s", "-S", "-I", "-b", "-bb", "-d", "-O", "-OO", "-q",
                  "-P", "-R", "-v"}


class UsageError(ValueError):
    """The command line after ``--`` is not a Python program (the CLI exits 2)."""


@dataclass
class Program:
    kind: str                                   # "path" | "module" | "code"
    target: str                                 # the script, the module name or the code
    args: list[str] = field(default_factory=list)

    @property
    def argv(self) -> list[str]:
        """sys.argv as python sets it (for -m, runpy puts the module's file in argv[0])."""
        first = {"path": self.target, "module": "-m", "code": "-c"}[self.kind]
        return [first, *self.args]


def parse_program(words: list[str]) -> Program:
    """``python [FLAGS] (PROGRAM | -m MODULE | -c CODE) [ARGS]``, or ``PROGRAM [ARGS]``."""
    words = list(words)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise UsageError("rawtcp run: give the program after --, e.g. "
                         "`rawtcp run --lab NAME -- python3 client.py` or `-- python3 -m "
                         "http.server`")
    if _PYTHON.match(os.path.basename(words[0])):
        words = words[1:]
        while words and words[0] in _IGNORED_FLAGS:
            words = words[1:]
        if not words:
            raise UsageError("rawtcp run: an interactive python is not supported; give a "
                             "program, -m MODULE or -c CODE")
        head = words[0]
        if head in ("-m", "-c") or (len(head) > 2 and head[:2] in ("-m", "-c")
                                    and not os.path.exists(head)):
            flag, rest = head[:2], head[2:]
            if rest:
                target, args = rest, words[1:]
            elif len(words) >= 2:
                target, args = words[1], words[2:]
            else:
                raise UsageError(f"rawtcp run: python {flag} needs an argument")
            return Program("module" if flag == "-m" else "code", target, args)
        if head.startswith("-") and head != "-":
            raise UsageError(f"rawtcp run: python option {head} is not supported (use a "
                             "program, -m MODULE or -c CODE)")
    path = words[0]
    if not os.path.exists(path):
        raise UsageError(f"rawtcp run: no such program: {path}")
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "__main__.py")):
        raise UsageError(f"rawtcp run: {path} is a directory without __main__.py")
    return Program("path", path, words[1:])


def exit_status(code: object) -> int:
    """The process status of SystemExit(code), as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_program(stack, program: Program) -> int:
    """Run ``program`` as ``__main__`` under ``rawtcp.patch(stack)``; its exit status."""
    saved_argv, saved_path0 = sys.argv[:], (sys.path[0] if sys.path else None)
    saved_main = sys.modules.get("__main__")
    sys.argv = program.argv
    if program.kind == "path":
        where = os.path.dirname(os.path.abspath(program.target)) \
            if not os.path.isdir(program.target) else os.path.abspath(program.target)
    else:
        where = os.getcwd()
    if sys.path:
        sys.path[0] = where
    else:
        sys.path.append(where)
    before = set(threading.enumerate())
    try:
        with patch(stack):
            try:
                if program.kind == "path":
                    runpy.run_path(program.target, run_name="__main__")
                elif program.kind == "module":
                    runpy.run_module(program.target, run_name="__main__", alter_sys=True)
                else:
                    code = compile(program.target, "<string>", "exec")
                    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102
                _join_program_threads(before)
            except SystemExit as e:
                return exit_status(e.code)
            except KeyboardInterrupt:
                raise
            except BaseException:   # noqa: BLE001 - the program's error, reported as python
                traceback.print_exc()
                return 1
            finally:
                _flush_std()
        return 0
    finally:
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path:
            sys.path[0] = saved_path0
        if saved_main is not None:
            sys.modules["__main__"] = saved_main


def _join_program_threads(before: set[threading.Thread]) -> None:
    """As the interpreter does at exit: wait for the non-daemon threads the program
    started, so their sockets are not cut off by the stack closing."""
    for t in threading.enumerate():
        if t not in before and not t.daemon and t is not threading.current_thread():
            t.join()


def _flush_std() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass


__all__ = ["Program", "UsageError", "exit_status", "parse_program", "run_program"]
