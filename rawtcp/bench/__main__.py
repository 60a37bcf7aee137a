"""`python -m rawtcp.bench [options]`."""

from __future__ import annotations

import argparse
import sys

from rawtcp.bench import configure_parser, main


def run(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rawtcp bench",
                                description="rawtcp against the kernel, next to references")
    configure_parser(p)
    args = p.parse_args(argv)
    try:
        return main(args)
    except ValueError as e:
        print(f"rawtcp bench: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"rawtcp bench: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(run())
