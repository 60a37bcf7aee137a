"""Parse every .pkt script under the given directories; print each failure and the counts.

    .venv/bin/python scripts/packetdrill_parse_all.py ../shared/conformance/packetdrill

Exit status 0 when every script parsed, 1 when one did not, 2 for a bad argument.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rawtcp.packetdrill.parser import parse_file
from rawtcp.packetdrill.script import ScriptError


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: packetdrill_parse_all.py DIR_OR_FILE...", file=sys.stderr)
        return 2
    files: list[Path] = []
    for arg in argv:
        p = Path(arg)
        if p.is_dir():
            files.extend(sorted(p.rglob("*.pkt")))
        elif p.is_file():
            files.append(p)
        else:
            print(f"packetdrill_parse_all: no such file or directory: {arg}", file=sys.stderr)
            return 2
    failed = 0
    for f in files:
        try:
            parse_file(f)
        except ScriptError as e:
            failed += 1
            print(f"FAIL {e}")
    print(f"{len(files) - failed} parsed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
