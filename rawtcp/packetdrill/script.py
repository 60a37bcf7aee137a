"""The packetdrill script as data: what the parser produces and the runner/exporter consume.

Every node is a small frozen dataclass. All times are integers in microseconds. The parser
(:mod:`rawtcp.packetdrill.parser`) checks syntax only; what a script *means* (relative
sequence numbers, which syscalls exist, tolerance) is the runner's business.

Shape of a script::

    Script(path, options={"ip_version": "ipv4", ...},
           events=(Command | Code | Packet | Syscall, ...))

Time semantics (as packetdrill runs them; the parser enforces the "only ..." rules):

- ``absolute`` ``0.100``: 100 ms after the script started.
- ``relative`` ``+0.1``: 100 ms after the previous event *actually* happened, i.e. the time at
  which packetdrill finished handling it (an outbound packet: when it was seen; a call: when
  it returned, or for a blocking call when it was started; an inbound packet: when it was
  injected). One exception: between two inbound packets the base is the previous packet's
  *scripted* time, so a burst of injected packets does not drift. Before any event the base
  is 0 (the script start), so a leading ``+0.5`` means ``0.5``.
- ``any`` ``*`` (outbound packets only): no time check; the packet may come whenever; the
  next relative time counts from when it came.
- ranges (outbound packets only) ``0.1~0.2`` (absolute) and ``+.1~+.11`` (relative, both
  ends from the same base): the packet must come within [start - tolerance, end + tolerance].
  ``Time.end`` holds the end in the same frame as ``start``.
- blocking calls ``+.1...0.2 connect(...)``: the call starts at the event time and must
  *return* at ``Syscall.end_time`` (within the tolerance). packetdrill adds the same base to
  the end as to the start: when the start is relative, the end is an offset from the
  **previous event** (not from the call's own start), so ``+.1...0.2`` after an event at 0.3
  starts at 0.4 and returns at 0.5. ``Syscall.end_time`` is stored as written, in that frame.
- tolerance: ``--tolerance_usecs`` (default 4000) and ``--tolerance_percent`` (default
  12.5) of the scripted gap since the previous event, whichever is larger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import EllipsisType

__all__ = [
    "ScriptError", "Time", "Option", "Packet", "Symbol", "BitOr", "Array", "Str", "Struct",
    "Call", "Expr", "Syscall", "Command", "Code", "Event", "Script", "FLAG_CHARS", "ECN_CODES",
    "format_time", "format_option", "format_options", "format_packet", "format_expr",
]

ECN_CODES = ("noecn", "ect0", "ect1", "ect01", "ce")
"""The ``[...]`` IP ECN markers packetdrill accepts after the direction (ect01: either ECT)."""

FLAG_CHARS = "FSRP.UEW"
"""TCP flag letters in packetdrill: FIN SYN RST PSH ACK(``.``) URG ECE CWR; ``-`` = none."""


class ScriptError(ValueError):
    """A script that cannot be parsed. ``str(e)`` is ``"FILE:LINE: what is wrong"``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(f"{path}:{line}: {message}")


@dataclass(frozen=True)
class Time:
    """When an event happens. ``kind`` is ``"absolute"``, ``"relative"`` or ``"any"`` (``*``).

    ``start`` is microseconds (0 for ``any``); ``end`` is not None only for ``~`` ranges and is
    in the same frame as ``start`` (see the module docstring).
    """

    kind: str
    start: int
    end: int | None = None


@dataclass(frozen=True)
class Option:
    """A TCP option in ``<...>``.

    ``kind`` and ``values``: ``mss`` (n,), ``wscale`` (n,), ``TS`` (val, ecr), ``nop`` (),
    ``eol`` (), ``sackOK`` (), ``sack`` () with the blocks in ``blocks`` as (left, right)
    pairs as written (relative numbers in packetdrill's scripts).
    """

    kind: str
    values: tuple[int, ...] = ()
    blocks: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Packet:
    """A TCP segment: ``<`` inbound (the script injects it), ``>`` outbound (the stack must
    send it).

    ``flags`` as written with ``-`` turned into ``""`` (letters from :data:`FLAG_CHARS`, ``.`` is
    ACK). ``seq_start:seq_end(length)`` as written. ``ack``/``win``/``urg`` None when absent
    (absent on an outbound packet means "not checked"). ``options`` None for ``<...>`` (any
    options accepted), ``()`` when no option list is written, else the options in order.
    ``ecn``: the IP ECN field when written ``< [ect0] . 1:1(0) ...`` (one of :data:`ECN_CODES`;
    ``ect01`` on outbound packets only), else None (not checked / Not-ECT). ``<...>``, ``*``
    and time ranges are accepted on outbound packets only (as packetdrill does).
    """

    line: int
    time: Time
    direction: str
    flags: str
    seq_start: int
    seq_end: int
    length: int
    ack: int | None = None
    win: int | None = None
    options: tuple[Option, ...] | None = ()
    urg: int | None = None
    ecn: str | None = None


@dataclass(frozen=True)
class Symbol:
    """A symbolic constant: ``SOCK_STREAM``, ``O_NONBLOCK``, ``SO_ERROR``, ``ECONNRESET`` ..."""

    name: str


@dataclass(frozen=True)
class BitOr:
    """``A | B | C``."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Array:
    """``[1]``, ``[...]``, ``[{fd=3, events=POLLIN}]``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Str:
    """A string literal ``"..."`` (escapes decoded; adjacent literals ``"a" "b"`` are joined).
    ``partial`` is True for ``"abc"...``: the data starts with ``value``, the rest unchecked."""

    value: str
    partial: bool = False


@dataclass(frozen=True)
class Struct:
    """``{l_onoff=1, l_linger=0}``: fields in order. A key written ``msg_iov(1)`` is kept as that
    text; an unnamed field (``{1, 2}``) has the key ``""``."""

    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class Call:
    """A function-like expression in an argument: ``htons(8080)``, ``inet_addr("1.2.3.4")``."""

    name: str
    args: tuple[Expr, ...]


Expr = int | EllipsisType | Symbol | BitOr | Array | Str | Struct | Call
"""An argument or result: an ``int`` (decimal, hex or negative), ``...`` (Python's ``Ellipsis``:
anything / don't care), or one of the node classes above."""


@dataclass(frozen=True)
class Syscall:
    """``time name(args) = result [ERRNO] [(text)]``.

    ``end_time``: for a blocking call written ``start...end``, the end in microseconds in the
    frame described in the module docstring; else None. ``errno_name`` e.g. ``"EINPROGRESS"``;
    ``errno_text`` is the parenthesised text after the result, whatever it says (an errno
    description ``"Operation now in progress"`` or an annotation like ``"flags O_RDWR"``); it is
    documentation and has no meaning.
    """

    line: int
    time: Time
    name: str
    args: tuple[Expr, ...]
    result: Expr
    errno_name: str | None = None
    errno_text: str | None = None
    end_time: int | None = None


@dataclass(frozen=True)
class Command:
    """A backtick shell command. ``time`` is None for the untimed command at the top of a script
    (packetdrill runs it before the first event)."""

    line: int
    time: Time | None
    text: str


@dataclass(frozen=True)
class Code:
    """A ``%{ ... }%`` Python block (text between the markers, stripped). ``time`` as in
    :class:`Command`."""

    line: int
    time: Time | None
    text: str


Event = Packet | Syscall | Command | Code


@dataclass(frozen=True)
class Script:
    """A parsed script: header options (``--name=value`` → ``{"name": "value"}``; ``--flag`` →
    ``{"flag": ""}``) and the events in order."""

    path: str
    options: dict[str, str] = field(default_factory=dict)
    events: tuple[Event, ...] = ()


# ---------------------------------------------------------------------------------------------
# Printing back to text (the exporter writes scripts with these; parse(format(x)) == x).


def _secs(usecs: int) -> str:
    sign = "-" if usecs < 0 else ""
    whole, frac = divmod(abs(usecs), 1_000_000)
    text = f"{whole}.{frac:06d}".rstrip("0")
    if text.endswith("."):
        text = text[:-1]
    return sign + text


def format_time(t: Time | None) -> str:
    """``0.1``, ``+0.01``, ``*``, ``0.1~0.2``, ``+0.1~+0.11``; ``""`` for None."""
    if t is None:
        return ""
    if t.kind == "any":
        return "*"
    plus = "+" if t.kind == "relative" else ""
    text = plus + _secs(t.start)
    if t.end is not None:
        text += "~" + plus + _secs(t.end)
    return text


def format_option(o: Option) -> str:
    """One option as packetdrill writes it: ``mss 1460``, ``TS val 1 ecr 0``, ``sack 1:2 3:4``."""
    if o.kind == "TS":
        return f"TS val {o.values[0]} ecr {o.values[1]}"
    if o.kind == "sack":
        return "sack " + " ".join(f"{left}:{right}" for left, right in o.blocks)
    return " ".join([o.kind, *map(str, o.values)])


def format_options(options: tuple[Option, ...] | None) -> str:
    """``<mss 1460,nop,wscale 7>``, ``<...>`` for None, ``""`` for ()."""
    if options is None:
        return "<...>"
    if not options:
        return ""
    return "<" + ",".join(format_option(o) for o in options) + ">"


def format_packet(p: Packet) -> str:
    """The packet as one script line (without indentation), e.g.
    ``+0.1 < S. 0:0(0) ack 1 win 5792 <mss 1460>``."""
    ecn = f"[{p.ecn}]" if p.ecn else ""
    parts = [format_time(p.time), p.direction, ecn, p.flags or "-",
             f"{p.seq_start}:{p.seq_end}({p.length})"]
    if p.ack is not None:
        parts.append(f"ack {p.ack}")
    if p.win is not None:
        parts.append(f"win {p.win}")
    if p.urg is not None:
        parts.append(f"urg {p.urg}")
    opts = format_options(p.options)
    if opts:
        parts.append(opts)
    return " ".join(x for x in parts if x)


def format_expr(e: Expr) -> str:
    """An argument or result back to script text."""
    if e is ...:
        return "..."
    if isinstance(e, bool):
        raise TypeError("bool is not a script expression")
    if isinstance(e, int):
        return str(e)
    if isinstance(e, Symbol):
        return e.name
    if isinstance(e, BitOr):
        return "|".join(format_expr(x) for x in e.operands)
    if isinstance(e, Array):
        return "[" + ", ".join(format_expr(x) for x in e.items) + "]"
    if isinstance(e, Str):
        escaped = e.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"' + ("..." if e.partial else "")
    if isinstance(e, Struct):
        return "{" + ", ".join(f"{k}={format_expr(v)}" if k else format_expr(v)
                               for k, v in e.fields) + "}"
    if isinstance(e, Call):
        return f"{e.name}(" + ", ".join(format_expr(x) for x in e.args) + ")"
    raise TypeError(f"not a script expression: {e!r}")
