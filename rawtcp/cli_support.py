"""What the `rawtcp` command's parser (cli.py) and its subcommands (commands.py) share.

It sits below both: cli.py imports commands.py, commands.py never imports cli.py, and both
import this module. Nothing here builds a stack or touches the network.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
from typing import Any

from rawtcp.argtypes import decimal, decimal_fraction  # re-exported for sweep_cli
from rawtcp.core.config import SEC, Config, check_value


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
    """argparse type: a duration in seconds, 0 < s <= one day, in plain decimal digits with
    an optional fraction ('10', '2.5'; not float()'s '1_0', ' 5', '1e1', 'inf' or 'nan')."""
    v = decimal_fraction(text, "seconds")
    if not 0 < v <= 86400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400 seconds, "
                                         f"got {text}")
    return v


def count(what: str, lo: int, hi: int) -> Any:
    """argparse type: a whole number lo..hi in plain decimal digits (not int()'s '1_0', ' 5'
    or '+5'); one line naming ``what`` otherwise."""
    def parse(text: str) -> int:
        n = decimal(text, what)
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be within {lo}..{hi}, got {n}")
        return n

    parse.__name__ = what
    return parse


#: one label of a host name: letters, digits, '-' (not first or last) and '_' (found in real
#: DNS names), 1-63 characters (RFC 1123 2.1, RFC 1035 2.3.4)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def port(text: str) -> int:
    """argparse type: a TCP port, 1-65535, in decimal digits."""
    n = decimal(text, "port")
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {n}")
    return n


def host(text: str) -> str:
    """argparse type: an IPv4 or IPv6 address, or a name that could be resolved (labels of
    letters, digits, '-' and '_', at most 253 characters; a non-ASCII name by its IDNA
    form). Whether a name resolves is left to the connection; what could never be a host
    (empty, blanks, 999.1.1.1, an over-long name) is a bad argument."""
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    shown = repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"
    bad = f"not an IP address or a host name: {shown}"
    if len(text) > 253:
        raise argparse.ArgumentTypeError(f"a host name has at most 253 characters, got "
                                         f"{shown}")
    try:
        name = text.encode("idna").decode("ascii")
    except UnicodeError:           # an empty label, a label over 63 characters, ...
        raise argparse.ArgumentTypeError(bad) from None
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(x) for x in labels):
        raise argparse.ArgumentTypeError(bad)
    if all(x.isdigit() for x in labels):    # dotted numbers are an address or nothing
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}")
    return text


def check_output_file(path: str, option: str) -> None:
    """An output file (--pcap, --trace, --packetdrill) that cannot be written where it is
    named is a bad argument (exit 2), found before anything runs: a directory, or a file
    whose directory does not exist or is not writable."""
    if os.path.isdir(path):
        raise CliError(f"rawtcp: {option} {path}: is a directory; give a file name", 2)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise CliError(f"rawtcp: {option} {path}: cannot write there", 2)


# --------------------------------------------------------------------------- Config options
def add_config_args(p: argparse.ArgumentParser, extra: str = "") -> None:
    """--config KEY=VALUE (repeatable) and --config-file FILE (TOML)."""
    g = p.add_argument_group("stack configuration; `rawtcp config` lists the keys" + extra)
    g.add_argument("--config", action="append", default=[], type=config_assignment,
                   metavar="KEY=VALUE", dest="config_items",
                   help="set one Config field, e.g. msl=1000000 (us), sack=off, "
                        "time_wait=none; repeatable; overrides --config-file")
    g.add_argument("--config-file", metavar="FILE",
                   help="a TOML file: Config fields as a flat table or in a [config] table")


def config_assignment(text: str) -> tuple[str, Any]:
    """argparse type of --config: "KEY=VALUE" -> (key, typed value), the value checked
    against the field's type and range."""
    try:
        ((key, value),) = Config.parse_assignments([text]).items()
        return key, check_value(key, value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def load_config_file(path: str) -> dict[str, Any]:
    """The Config fields in a TOML file, checked one by one; CliError (exit 2) for a missing,
    unreadable or malformed file, an unknown key or a bad value. When the file has a
    [config] table, only that table is read (the file may hold other tools' tables)."""
    import tomllib

    where = f"rawtcp: --config-file {path}"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise CliError(f"{where}: {e.strerror or one_line(e)}", 2) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CliError(f"{where}: not valid TOML ({one_line(e)})", 2) from None
    table = data.get("config", data)
    if not isinstance(table, dict):
        raise CliError(f"{where}: 'config' must be a table of Config fields", 2)
    try:
        return {key: check_value(key, value) for key, value in table.items()}
    except ValueError as e:
        raise CliError(f"{where}: {one_line(e)}", 2) from None


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The Config overrides of a command: --config-file first, then each --config in order
    (a later one wins). The result is checked as a whole Config (e.g. rto_min <= rto_max);
    any problem is a CliError, exit 2."""
    out: dict[str, Any] = {}
    if getattr(args, "config_file", None):
        out.update(load_config_file(args.config_file))
    out.update(getattr(args, "config_items", None) or [])
    try:
        Config().with_overrides(out)
    except ValueError as e:
        raise CliError(f"rawtcp: {one_line(e)}", 2) from None
    return out


def human_us(us: int | None) -> str:
    """A duration in microseconds, in the largest unit that keeps it an integer."""
    if us is None:
        return "none"
    for size, name in ((3600 * SEC, "h"), (SEC, "s"), (SEC // 1000, "ms")):
        if us and us % size == 0:
            return f"{us // size} {name}"
    return f"{us} us"


__all__ = ["CliError", "Parser", "add_config_args", "check_output_file", "config_assignment",
           "config_overrides", "count", "decimal", "decimal_fraction", "host", "human_us",
           "load_config_file", "one_line", "port", "print_json", "seconds"]
