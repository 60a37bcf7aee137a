#!/usr/bin/env python3
"""Write docs/states.md, the state diagram, from rawtcp.core.states.TRANSITIONS."""

from __future__ import annotations

import pathlib
import sys

from rawtcp.core.states import diagram

OUT = pathlib.Path(__file__).resolve().parent.parent / "docs" / "states.md"

if __name__ == "__main__":
    OUT.write_text(diagram())
    print(f"wrote {OUT}", file=sys.stderr)
