"""Numbers as a user writes them (a command line, a fault rule, a --config value): plain
ASCII decimal.

int() and float() take more than a user means by a number: '1_000', blanks (' 5'),
non-ASCII digits such as Arabic-Indic ones, and float() also '1e3', 'inf' and 'nan'. A
parser that wants a plain number reads it through these instead. The module is at the
bottom of the layers (standard library only) so that every parser can use it: rawtcp's own
(cli_support.py re-exports `decimal`) and `rawtcp bench`'s (bench/cli.py, a layer below
cli_support).
"""

from __future__ import annotations

import argparse
import math
import re

_DIGITS = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"[-+]?[0-9]+")
_FRACTION = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_MINUS = re.compile(r"-?[0-9]+")
_MINUS_FRACTION = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def plain_int(text: str, negative: bool = False) -> int | None:
    """``text`` as a whole number in plain ASCII decimal digits (a leading '-' when
    ``negative``), or None: for parsers with their own error messages."""
    return int(text) if (_MINUS if negative else _DIGITS).fullmatch(text) else None


def plain_float(text: str, negative: bool = False) -> float | None:
    """``text`` as a finite number in plain ASCII decimal digits with an optional fraction
    (a leading '-' when ``negative``), or None (400 digits overflow to inf: None too)."""
    if not (_MINUS_FRACTION if negative else _FRACTION).fullmatch(text):
        return None
    f = float(text)
    return f if math.isfinite(f) else None


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


__all__ = ["decimal", "decimal_fraction", "plain_float", "plain_int"]
