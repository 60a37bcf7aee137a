"""`rawtcp bench`: what rawtcp does on this machine, next to references measured in the same run.

The CLI wires it with `configure_parser(subparser)` and `main(args)`; `python -m rawtcp.bench`
runs it directly.
"""

from __future__ import annotations

from rawtcp.bench.cli import configure_parser, main

__all__ = ["configure_parser", "main"]

