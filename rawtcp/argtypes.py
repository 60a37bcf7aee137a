"""Numbers on a command line as a user writes them: plain ASCII decimal.

int() and float() take more than a user means by a number: '1_000', blanks (' 5'),
non-ASCII digits such as Arabic-Indic ones, and float() also '1e3', 'inf' and 'nan'. A
parser that wants a plain number reads it through these instead. The module is at the
bottom of the layers (standard library only) so that every parser can use it: rawtcp's own
(cli_support.py re-exports `decimal`) and `rawtcp bench`'s (bench/cli.py, a layer below
cli_support).
"""

from __future__ import annotations

import argparse
import re

_DIGITS = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"[-+]?[0-9]+")
_FRACTION = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def decimal(text: str, what: str, signed: bool = False) -> int:
    """A whole number in plain ASCII decimal digits (a sign allowed when ``signed``, so that
    a range can say what it takes); ArgumentTypeError naming ``what`` otherwise."""
    if not (_SIGNED if signed else _DIGITS).fullmatch(text):
        raise argparse.ArgumentTypeError(f"{what} must be a number (digits 0-9), "
                                         f"got {text!r}")
    return int(text)


def decimal_fraction(text: str, what: str) -> float:
    """A number in plain ASCII decimal digits with an optional fraction ('5', '2.5'): no
    sign, exponent, blanks, '_', 'inf' or 'nan'; ArgumentTypeError naming ``what``
    otherwise."""
    if not _FRACTION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{what} must be a number (digits 0-9 and an "
                                         f"optional '.' fraction), got {text!r}")
    return float(text)


__all__ = ["decimal", "decimal_fraction"]
