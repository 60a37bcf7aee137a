"""`python -m rawtcp.bench [options]`: the same as `rawtcp bench [options]`."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import NoReturn

from rawtcp.bench import configure_parser, main


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A bad argument is one line on stderr and exit status 2."""
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


class _Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`): unwind like Ctrl-C, so labs and peers are removed."""


def _on_sigterm(signum: int, frame: object) -> None:  # noqa: ARG001 - handler signature
    raise _Terminated()


def run(argv: list[str] | None = None) -> int:
    p = _Parser(prog="rawtcp bench")
    configure_parser(p)
    args = p.parse_args(argv)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return main(args)
    except ValueError as e:
        print(f"rawtcp bench: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"rawtcp bench: {e.strerror or e}", file=sys.stderr)
        return 1
    except _Terminated:
        print("rawtcp bench: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("rawtcp bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
