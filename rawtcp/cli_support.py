"""What the `rawtcp` command's parser (cli.py) and its subcommands (commands.py) share.

It sits below both: cli.py imports commands.py, commands.py never imports cli.py, and both
import this module. Nothing here builds a stack or touches the network.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


class CliError(Exception):
    """A user-facing error: printed as one line, exit status `code` (2 = bad argument)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line and exit 2 (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message} (see {self.prog} --help)", 2)


def print_json(obj: Any) -> None:
    """Machine-readable output on stdout (anything not JSON-native as its str())."""
    print(json.dumps(obj, indent=2, default=str))


def one_line(e: BaseException) -> str:
    """An exception as one line: an OSError's strerror (and file name), else its text."""
    msg = str(e) if not isinstance(e, OSError) or not e.strerror else \
        (f"{e.strerror}" + (f": {e.filename}" if e.filename else ""))
    return " ".join(msg.split()) or type(e).__name__


def seconds(text: str) -> float:
    """argparse type: a duration in seconds, 0 < s <= one day."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < v <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, got {v:g}")
    return v


def port(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, got {text!r}") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {n}")
    return n


__all__ = ["CliError", "Parser", "one_line", "port", "print_json", "seconds"]
