"""The two lying actions of the rule language: ``mangle`` (rewrite) and ``inject`` (forge).

``mangle <matchers> set <changes>``: the changes after ``set`` rewrite every segment the
matchers select (``mangle in flags=A set win=0``). ``inject <trigger> send <segment>``: when
the trigger fires, rawtcp sends a segment described relative to the connection
(``inject on=ESTABLISHED send RST seq=snd_nxt+10``). This module reads and checks the parts
after ``set`` and ``send`` (:func:`parse_changes`, :func:`parse_send`) and applies them
(:func:`apply_changes`, :func:`eval_expr`); :mod:`rawtcp.faults.grammar` holds the rest of
the language and :mod:`rawtcp.faults.inject` the connection book-keeping of inject.
Everything is documented in docs/faults.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rawtcp.argtypes import plain_float, plain_int
from rawtcp.core.segment import ACK, FIN, PSH, RST, SYN, Options, Packet, Segment, flags_str

__all__ = ["CHANGE_KEYS", "Change", "Expr", "SEND_KINDS", "SEND_VARS", "SendSpec",
           "apply_changes", "eval_expr", "parse_changes", "parse_send"]

_MOD = 1 << 32
_U32 = (0, _MOD - 1)

#: mangle keys: (allowed operators, inclusive range of the value)
CHANGE_KEYS: dict[str, tuple[tuple[str, ...], tuple[float, float]]] = {
    "win": (("=", "+=", "-=", "*="), (0, 65535)),
    "seq": (("=", "+=", "-="), _U32),
    "ack": (("=", "+=", "-="), _U32),
    "flags": (("=", "+=", "-="), (0, 0)),      # letters, not a number
    "ttl": (("=",), (1, 255)),
    "urg": (("=",), (0, 65535)),
    "len": (("=", "-="), (0, 65535)),
    "mss": (("=",), (1, 65535)),
    "wscale": (("=",), (0, 14)),
    "ts.val": (("=", "+=", "-="), _U32),
    "ts.ecr": (("=", "+=", "-="), _U32),
}
#: ``win*=F``: the factor's range
WIN_FACTOR = (0.0, 1000.0)
#: options a ``-NAME`` removes; ``+sack`` inserts SACK-permitted
REMOVABLE = ("sack", "ts", "wscale", "mss", "opts")

#: the segment kinds of ``send`` and their flags
SEND_KINDS: dict[str, int] = {"rst": RST, "syn": SYN, "ack": ACK, "fin": FIN | ACK,
                              "data": PSH | ACK}
#: connection values an inject expression may name (``window`` = ``rcv_wnd``)
SEND_VARS = ("snd_una", "snd_nxt", "rcv_nxt", "rcv_wnd", "window", "snd_wnd", "iss", "irs")
#: the numbers of ``send``: inclusive ranges
SEND_RANGES: dict[str, tuple[float, float]] = {
    "win": (0, 65535), "len": (0, 65535), "count": (1, 10_000), "every": (0.0, 60_000.0),
    "step": (0, _MOD - 1), "sport": (1, 1000),
}
_CHANGE = re.compile(r"([a-z_.]+)(\+=|-=|\*=|=)(.*)")


@dataclass(frozen=True)
class Change:
    """One rewrite: ``key op value`` (``win *= 0.5``), or an option removal (``-sack``:
    key ``sack``, op ``-``) / insertion (``+sack``), or ``corrupt`` (op ``!``)."""

    key: str
    op: str
    value: float | int | str = 0

    @property
    def text(self) -> str:
        if self.op in ("-", "+"):
            return f"{self.op}{self.key}"
        if self.op == "!":
            return "corrupt"
        v = self.value
        return f"{self.key}{self.op}{v:g}" if isinstance(v, float) else f"{self.key}{self.op}{v}"


def _uint(key: str, text: str, lo: float, hi: float) -> int:
    rng = f"{int(lo)}..{int(hi)}"
    v = plain_int(text)
    if v is None:
        raise ValueError(f"{key} needs a whole number within {rng}, got {text!r}")
    if not lo <= v <= hi:
        raise ValueError(f"{key} must be within {rng}, got {v}")
    return v


def parse_changes(words: list[str]) -> tuple[Change, ...]:
    """The words after ``set`` -> changes. ValueError (one line) naming the bad word."""
    if not words:
        raise ValueError("nothing after 'set' (e.g. 'set win=0', 'set -sack', 'set seq+=1000')")
    out: list[Change] = []
    seen: set[str] = set()
    for w in words:
        low = w.lower()
        if low == "corrupt":
            c = Change("corrupt", "!")
        elif low[:1] in "+-" and low[1:] in REMOVABLE:
            if low[0] == "+" and low[1:] != "sack":
                raise ValueError(f"{w!r}: only +sack inserts an option without a value "
                                 "(insert others with mss=N, wscale=N, ts.val=N, ts.ecr=N)")
            c = Change(low[1:], low[0])
        elif low[:1] in "+-" and "=" not in low:
            raise ValueError(f"{w!r}: unknown option (remove one of "
                             f"{', '.join('-' + r for r in REMOVABLE)}; insert +sack)")
        else:
            m = _CHANGE.fullmatch(low)
            if not m:
                raise ValueError(f"cannot read {w!r} after 'set' (write key=value, key+=N, "
                                 "key-=N, win*=F, -sack, corrupt)")
            key, op, value = m.groups()
            if key not in CHANGE_KEYS:
                raise ValueError(f"unknown field {key!r} after 'set' "
                                 f"(known: {', '.join(CHANGE_KEYS)})")
            ops, (lo, hi) = CHANGE_KEYS[key]
            if op not in ops:
                raise ValueError(f"{w!r}: {key} takes {' '.join(ops)}")
            if value == "":
                raise ValueError(f"{w!r}: missing value")
            if key == "flags":
                from rawtcp.core.segment import parse_flags

                if value != "none":
                    int(parse_flags(value))         # ValueError names the bad letter
                c = Change(key, op, value.upper() if value != "none" else "none")
            elif op == "*=":
                f = plain_float(value, negative=True)
                if f is None:
                    raise ValueError(f"{w!r}: expected a number such as 0.5, got {value!r}")
                if not WIN_FACTOR[0] <= f <= WIN_FACTOR[1]:
                    raise ValueError(f"win*= factor must be within 0..1000, got {value}")
                c = Change(key, op, f)
            else:
                c = Change(key, op, _uint(key, value, lo, hi))
        ident = c.key if c.op != "!" else "corrupt"
        if c.key == "flags":          # flags-=A flags+=R: one change per operator
            ident += c.op
        if ident in seen:
            raise ValueError(f"{w!r}: {ident} changed twice")
        seen.add(ident)
        out.append(c)
    keys = {c.key for c in out}
    if "opts" in keys and keys & {"sack", "ts", "wscale", "mss", "ts.val", "ts.ecr"}:
        raise ValueError("-opts removes every option: do not combine it with other option "
                         "changes")
    if ({"ts", "ts.val"} <= keys or {"ts", "ts.ecr"} <= keys) and any(
            c.key == "ts" and c.op == "-" for c in out):
        raise ValueError("-ts removes the timestamps: do not also set ts.val or ts.ecr")
    return tuple(out)


def _flagbits(text: str) -> int:
    from rawtcp.core.segment import parse_flags

    return 0 if text == "none" else int(parse_flags(text))


def apply_changes(pkt: Packet, changes: tuple[Change, ...]) -> tuple[Packet, int | None, bool]:
    """Rewrite ``pkt``: the new packet, the TTL to send it with (None: unchanged) and whether
    its checksum must be spoiled (``corrupt``)."""
    s = pkt.segment
    kw: dict = {}
    o = s.options
    okw: dict = {}
    ttl: int | None = None
    corrupt = False
    for c in changes:
        k, op, v = c.key, c.op, c.value
        if op == "!":
            corrupt = True
        elif k in ("win", "seq", "ack", "urg"):
            field = {"win": "window", "urg": "urgent"}.get(k, k)
            cur = kw.get(field, getattr(s, field))
            if op == "=":
                new = int(v)
            elif op == "+=":
                new = cur + int(v)
            elif op == "-=":
                new = cur - int(v)
            else:
                new = int(cur * float(v))
            if k in ("seq", "ack"):
                new %= _MOD
            else:
                new = max(0, min(65535, new))
            kw[field] = new
        elif k == "flags":
            cur = kw.get("flags", s.flags)
            bits = _flagbits(str(v))
            kw["flags"] = bits if op == "=" else (cur | bits if op == "+=" else cur & ~bits)
        elif k == "ttl":
            ttl = int(v)
        elif k == "len":
            pl = s.payload
            n = int(v) if op == "=" else max(0, len(pl) - int(v))
            if n < len(pl):
                kw["payload"] = bytes(pl[:n])
        elif k in ("mss", "wscale"):
            if op == "-":
                okw[k] = None
            else:
                okw[k] = int(v)
        elif k == "sack":
            if op == "-":
                okw["sack_permitted"] = False
                okw["sack_blocks"] = ()
            else:
                okw["sack_permitted"] = True
        elif k == "ts":
            okw["timestamps"] = None
        elif k in ("ts.val", "ts.ecr"):
            cur_ts = okw.get("timestamps", o.timestamps) or (0, 0)
            i = 0 if k == "ts.val" else 1
            x = cur_ts[i]
            x = int(v) if op == "=" else (x + int(v) if op == "+=" else x - int(v))
            ts = list(cur_ts)
            ts[i] = x % _MOD
            okw["timestamps"] = (ts[0], ts[1])
        elif k == "opts":
            o = Options()
            okw.clear()
    if okw or o is not s.options:
        kw["options"] = o._replace(**okw)
    if kw:
        pkt = Packet(pkt.src, pkt.dst, s._replace(**kw))
    return pkt, ttl, corrupt


# ------------------------------------------------------------------------------- inject
@dataclass(frozen=True)
class Expr:
    """``var(+|-)N...``: a base (a connection value or a number) and signed terms."""

    terms: tuple[tuple[int, str | int], ...]   # (+1/-1, var name or number)

    def text(self) -> str:
        out = ""
        for i, (sign, t) in enumerate(self.terms):
            if i or sign < 0:
                out += "+" if sign > 0 else "-"
            out += str(t)
        return out


_TERM = re.compile(r"([+-]?)([a-z_]+|[0-9]+)")


def parse_expr(key: str, text: str) -> Expr:
    """``rcv_nxt+10``, ``snd_una-70000``, ``rcv_nxt+window``, ``12345``."""
    low = text.lower()
    pos, terms = 0, []
    while pos < len(low):
        m = _TERM.match(low, pos)
        if not m or (pos and not m.group(1)) or (not pos and m.group(1) == "+"):
            raise ValueError(f"{key}={text!r}: write a connection value or a number, plus or "
                             f"minus more (e.g. {key}=rcv_nxt+10; values: "
                             f"{', '.join(SEND_VARS)})")
        sign = -1 if m.group(1) == "-" else 1
        t = m.group(2)
        if t.isdigit():
            n = int(t)
            if n >= _MOD:
                raise ValueError(f"{key}={text!r}: {n} is beyond 32 bits (0..4294967295)")
            terms.append((sign, n))
        elif t in SEND_VARS:
            terms.append((sign, t))
        else:
            raise ValueError(f"{key}={text!r}: unknown value {t!r} "
                             f"(known: {', '.join(SEND_VARS)})")
        pos = m.end()
    if not terms:
        raise ValueError(f"{key}= needs a value")
    if len(terms) > 8:
        raise ValueError(f"{key}={text!r}: at most 8 terms")
    return Expr(tuple(terms))


def eval_expr(e: Expr, values: dict[str, int]) -> int:
    """The expression's value mod 2**32 (``values``: the connection's, by name)."""
    total = 0
    for sign, t in e.terms:
        total += sign * (t if isinstance(t, int) else values[t])
    return total % _MOD


@dataclass(frozen=True)
class SendSpec:
    """What ``send`` describes: the segment's direction (``out`` to the peer, ``in`` forged
    as the peer's and handed to rawtcp), kind, flags and fields."""

    kind: str
    flags: int
    direction: str = "out"
    seq: Expr | None = None
    ack: Expr | None = None
    win: int | None = None
    length: int = 0
    count: int = 1
    every: float = 0.0
    step: int = 0
    sport_step: int = 0
    explicit_flags: bool = False

    @property
    def text(self) -> str:
        parts = [] if self.direction == "out" else [self.direction]
        parts.append(self.kind.upper())
        if self.explicit_flags:
            parts.append(f"flags={flags_str(self.flags) or 'none'}")
        if self.seq is not None:
            parts.append(f"seq={self.seq.text()}")
        if self.ack is not None:
            parts.append(f"ack={self.ack.text()}")
        if self.win is not None:
            parts.append(f"win={self.win}")
        if self.length:
            parts.append(f"len={self.length}")
        if self.count != 1:
            parts.append(f"count={self.count}")
        if self.every:
            parts.append(f"every={self.every:g}")
        if self.step:
            parts.append(f"step={self.step}")
        if self.sport_step:
            parts.append(f"sport+={self.sport_step}")
        return " ".join(parts)


def parse_send(words: list[str]) -> SendSpec:
    """The words after ``send`` -> SendSpec. ValueError (one line) naming the bad word."""
    if not words:
        raise ValueError("nothing after 'send' (e.g. 'send RST seq=snd_nxt+10')")
    direction = "out"
    rest = list(words)
    if rest[0].lower() in ("in", "out"):
        direction = rest.pop(0).lower()
    if not rest or rest[0].lower() not in SEND_KINDS:
        got = rest[0] if rest else "nothing"
        kinds = ", ".join(k.upper() for k in SEND_KINDS)
        raise ValueError(f"'send' needs a segment kind first ({kinds}), got {got!r}")
    kind = rest.pop(0).lower()
    kw: dict = {"kind": kind, "flags": SEND_KINDS[kind], "direction": direction}
    seen: set[str] = set()
    for w in rest:
        m = re.fullmatch(r"([a-z_]+\+?)=(.*)", w.lower())
        if not m:
            raise ValueError(f"cannot read {w!r} after 'send' (write key=value: seq, ack, "
                             "win, len, flags, count, every, step, sport+)")
        key, value = m.groups()
        if key in seen:
            raise ValueError(f"{key!r} given twice after 'send'")
        seen.add(key)
        if value == "":
            raise ValueError(f"{w!r}: missing value")
        if key in ("seq", "ack"):
            kw[key] = parse_expr(key, value)
        elif key == "flags":
            from rawtcp.core.segment import parse_flags

            kw["flags"] = 0 if value == "none" else int(parse_flags(value))
            kw["explicit_flags"] = True
        elif key in ("win", "len", "count", "step"):
            lo, hi = SEND_RANGES[key]
            kw["length" if key == "len" else key] = _uint(key, value, lo, hi)
        elif key == "sport+":
            lo, hi = SEND_RANGES["sport"]
            kw["sport_step"] = _uint("sport+", value, lo, hi)
        elif key == "every":
            f = plain_float(value, negative=True)
            if f is None:
                raise ValueError(f"every needs milliseconds (a number such as 20 or 0.5), "
                                 f"got {value!r}")
            lo, hi = SEND_RANGES["every"]
            if not lo <= f <= hi:
                raise ValueError(f"every must be within 0..60000 ms, got {value}")
            kw["every"] = f
        else:
            raise ValueError(f"unknown key {key!r} after 'send' (known: seq, ack, win, len, "
                             "flags, count, every, step, sport+)")
    if kw.get("sport_step") and direction == "in":
        raise ValueError("sport+= moves our source port: it applies to 'send out' only")
    if kind == "data" and not kw.get("length"):
        raise ValueError("send DATA needs len=N (1..65535 payload bytes)")
    if kw.get("ack") is not None and not kw["flags"] & ACK:
        raise ValueError(f"ack= given but a {kind.upper()} has no ACK flag "
                         "(add flags=RA or flags=SA)")
    return SendSpec(**kw)


def craft(spec: SendSpec, values: dict[str, int], addr: tuple[str, int, str, int],
          index: int, timestamps: tuple[int, int] | None, win: int) -> Packet:
    """The segment of ``spec`` for a connection (``addr``: local, lport, remote, rport;
    ``values``: its numbers). ``index``: the rule's n-th segment (0-based), for ``step``."""
    local, lport, remote, rport = addr
    if spec.sport_step:           # a flood from other ports of our address
        lport = (lport - 1 + (index + 1) * spec.sport_step) % 65535 + 1
    flags = spec.flags
    out = spec.direction == "out"
    # by default the segment continues its sender's stream: ours (out) or the peer's (in)
    default_seq = values["snd_nxt"] if out else values["rcv_nxt"]
    seq = eval_expr(spec.seq, values) if spec.seq is not None else default_seq
    seq = (seq + index * spec.step) % _MOD
    ack = 0
    if flags & ACK:
        default_ack = values["rcv_nxt"] if out else values["snd_nxt"]
        ack = eval_expr(spec.ack, values) if spec.ack is not None else default_ack
    window = spec.win if spec.win is not None else (0 if flags == RST else win)
    payload = (b"rawtcp-inject " * (spec.length // 14 + 1))[:spec.length]
    opts = Options(timestamps=timestamps) if timestamps is not None and not flags & RST \
        else Options()
    if out:
        return Packet(local, remote, Segment(lport, rport, seq, ack, flags, window, opts,
                                             payload))
    return Packet(remote, local, Segment(rport, lport, seq, ack, flags, window, opts, payload))
