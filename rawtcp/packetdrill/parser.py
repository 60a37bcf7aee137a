"""packetdrill's script language: text in, a :class:`~.script.Script` out.

A hand-written scanner and recursive-descent parser. The language is free-form (an event may
span lines); every event starts with a time. What it accepts::

    --tolerance_usecs=10000                   header options, before the first event
    `../common/defaults.sh`                    an untimed command at the top
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
    +.1...0.2 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
    +0 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)
    +0 < S 0:0(0) win 32792 <mss 1000,nop,wscale 7>
    * > S. 0:0(0) ack 1 <...>
    0.1~0.2 > F. 1:1(0) ack 1
    +0 `sysctl -q net.ipv4.tcp_sack=1`
    +0 %{ assert tcpi_state == TCPI_CLOSE }%

Comments are ``//`` to the end of the line and ``/* ... */``. Errors raise
:class:`~.script.ScriptError` with the line of the offending token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rawtcp.packetdrill.script import (
    ECN_CODES,
    FLAG_CHARS,
    Array,
    BitOr,
    Call,
    Code,
    Command,
    Event,
    Expr,
    Option,
    Packet,
    Script,
    ScriptError,
    Str,
    Struct,
    Symbol,
    Syscall,
    Time,
    format_expr,
)

__all__ = ["parse_script", "parse_file"]

#: ASCII digits only (\d also matches other scripts' digits, which int() and float() read)
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+\.[0-9]+|[0-9]+\.(?!\.)|\.[0-9]+|[0-9]+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PUNCT = "+-*~=()[]{}<>,:|.&;!"
_SEQ_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class _Tok:
    kind: str       # NUM IDENT STR CMD CODE OPT ELLIPSIS PUNCT EOF
    text: str       # for PUNCT the character; for STR/CMD/CODE the contents
    line: int
    pos: int        # offset of the first character
    end: int        # offset after the last character


class _Lexer:
    """Scans on demand, so the parser can take raw text (``(Operation now in progress)``)."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.pos = 0
        self.line = 1
        self.last_line = 1      # line of the last token: where "the end of the script" is
        self._peeked: _Tok | None = None

    def error(self, line: int, message: str) -> ScriptError:
        return ScriptError(self.path, line, message)

    def _advance(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t\r\n\f\v":
                self._advance(self.pos + 1)
            elif text.startswith("//", self.pos):
                nl = text.find("\n", self.pos)
                self._advance(len(text) if nl < 0 else nl)
            elif text.startswith("/*", self.pos):
                close = text.find("*/", self.pos + 2)
                if close < 0:
                    raise self.error(self.line, "unterminated comment: '/*' without '*/'")
                self._advance(close + 2)
            else:
                return

    def _at_line_start(self) -> bool:
        start = self.text.rfind("\n", 0, self.pos) + 1
        return self.text[start:self.pos].strip() == ""

    def _scan(self) -> _Tok:
        self._skip_space()
        text, pos, line = self.text, self.pos, self.line
        if pos >= len(text):
            return _Tok("EOF", "", self.last_line, pos, pos)
        c = text[pos]
        if text.startswith("--", pos) and self._at_line_start():
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            comment = text.find("//", pos, end)
            stop = end if comment < 0 else comment
            self._advance(stop)
            return _Tok("OPT", text[pos:stop].strip(), line, pos, stop)
        if text.startswith("...", pos):
            self._advance(pos + 3)
            return _Tok("ELLIPSIS", "...", line, pos, pos + 3)
        if c == "`":
            close = text.find("`", pos + 1)
            if close < 0:
                raise self.error(line, "unterminated command: '`' without a closing '`'")
            self._advance(close + 1)
            return _Tok("CMD", text[pos + 1:close], line, pos, close + 1)
        if text.startswith("%{", pos):
            close = text.find("}%", pos + 2)
            if close < 0:
                raise self.error(line, "unterminated code block: '%{' without '}%'")
            self._advance(close + 2)
            return _Tok("CODE", text[pos + 2:close].strip(), line, pos, close + 2)
        if c == '"':
            return self._string()
        m = _NUMBER.match(text, pos)
        if m and (c.isdigit() or c == "."):
            self._advance(m.end())
            return _Tok("NUM", m.group(), line, pos, m.end())
        m = _IDENT.match(text, pos)
        if m:
            self._advance(m.end())
            return _Tok("IDENT", m.group(), line, pos, m.end())
        if c in _PUNCT:
            self._advance(pos + 1)
            return _Tok("PUNCT", c, line, pos, pos + 1)
        raise self.error(line, f"unexpected character {c!r}")

    def _string(self) -> _Tok:
        text, start, line = self.text, self.pos, self.line
        out: list[str] = []
        i = start + 1
        escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"'}
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                out.append(escapes.get(text[i + 1], text[i + 1]))
                i += 2
            elif text[i] == "\n":
                break
            else:
                out.append(text[i])
                i += 1
        if i >= len(text) or text[i] != '"':
            raise self.error(line, "unterminated string: '\"' without a closing '\"'")
        self._advance(i + 1)
        return _Tok("STR", "".join(out), line, start, i + 1)

    def peek(self) -> _Tok:
        if self._peeked is None:
            self._peeked = self._scan()
            self.last_line = self.line
        return self._peeked

    def next(self) -> _Tok:
        tok = self.peek()
        self._peeked = None
        return tok

    def raw_until_close_paren(self, line: int) -> str:
        """After a consumed ``(``: the raw text up to the matching ``)`` on the same line."""
        assert self._peeked is None
        text = self.text
        depth, i = 1, self.pos
        while i < len(text) and text[i] != "\n":
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
                if depth == 0:
                    raw = text[self.pos:i]
                    self._advance(i + 1)
                    return raw.strip()
            i += 1
        raise self.error(line, "unbalanced '(': no ')' before the end of the line")




class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.lx = _Lexer(text, path)
        self.path = path

    # -- helpers ------------------------------------------------------------------------------
    def err(self, tok: _Tok, message: str) -> ScriptError:
        return ScriptError(self.path, tok.line, message)

    def is_punct(self, tok: _Tok, chars: str) -> bool:
        return tok.kind == "PUNCT" and tok.text in chars

    def expect_punct(self, char: str, what: str) -> _Tok:
        tok = self.lx.next()
        if not self.is_punct(tok, char):
            raise self.err(tok, f"expected '{char}' {what}, found {_describe(tok)}")
        return tok

    def expect_int(self, what: str, lo: int = 0, hi: int | None = None) -> int:
        tok = self.lx.next()
        if tok.kind != "NUM":
            raise self.err(tok, f"expected a number for {what}, found {_describe(tok)}")
        value = self.int_of(tok, what)
        if value < lo or (hi is not None and value > hi):
            raise self.err(tok, f"{what} {value} is out of range ({lo}..{hi})")
        return value

    def int_of(self, tok: _Tok, what: str) -> int:
        text = tok.text
        if text[:2] in ("0x", "0X"):
            return int(text, 16)
        if "." in text:
            raise self.err(tok, f"expected an integer for {what}, found {text!r}")
        return int(text)

    # -- script -------------------------------------------------------------------------------
    def script(self) -> Script:
        options: dict[str, str] = {}
        events: list[Event] = []
        timed_seen = False
        while True:
            tok = self.lx.peek()
            if tok.kind == "EOF":
                break
            if tok.kind == "OPT":
                self.lx.next()
                if events:
                    raise self.err(tok, f"option {tok.text.split()[0]!r} after the first "
                                        "event: header options go at the top of the script")
                self.header_options(tok, options)
            elif tok.kind in ("CMD", "CODE") and not timed_seen:
                self.lx.next()
                cls = Command if tok.kind == "CMD" else Code
                events.append(cls(tok.line, None, tok.text))
            elif tok.kind == "CMD" and timed_seen:
                # an untimed command after the events: packetdrill's cleanup command, run
                # once the script ended; it must be the last thing in the script
                self.lx.next()
                if self.lx.peek().kind != "EOF":
                    raise self.err(tok, "an untimed `command` after the first timed event is "
                                        "only allowed last (the cleanup command); give it a "
                                        "time (+0 `...`)")
                events.append(Command(tok.line, None, tok.text))
            else:
                event = self.event()
                last = events[-1].time if events else None
                now = event.time
                if last is not None and last.kind == now.kind == "absolute" \
                        and now.start < last.start:
                    raise ScriptError(self.path, event.line,
                                      f"time goes backward: {now.start / 1e6:.6f} s after "
                                      f"{last.start / 1e6:.6f} s on the previous event")
                events.append(event)
                timed_seen = True
        return Script(self.path, options, tuple(events))

    def header_options(self, tok: _Tok, options: dict[str, str]) -> None:
        for word in tok.text.split():
            if not word.startswith("--") or len(word) < 3:
                raise self.err(tok, f"bad option {word!r}: expected --name=value")
            name, _, value = word[2:].partition("=")
            if not _IDENT.fullmatch(name):
                raise self.err(tok, f"bad option name {name!r} in {word!r}")
            options[name] = value

    # -- events -------------------------------------------------------------------------------
    def event(self) -> Event:
        first = self.lx.peek()
        time = self.time()
        end_time = None
        tok = self.lx.peek()
        if tok.kind == "ELLIPSIS":
            self.lx.next()
            if time.kind == "any" or time.end is not None:
                raise self.err(tok, "a blocking span 'start...end' needs a plain start time")
            end_time = self.seconds(self.lx.next(), "the end of the blocking span")
            if time.kind == "absolute" and end_time < time.start:
                raise self.err(tok, "the blocking span ends before it starts")
            tok = self.lx.peek()
        if tok.kind == "PUNCT" and tok.text in "<>":
            if end_time is not None:
                raise self.err(tok, "only system calls can block ('...'); packets cannot")
            if tok.text == "<" and (time.kind == "any" or time.end is not None):
                raise self.err(first, "'*' and time ranges (a~b) are for outbound packets "
                                      "('>') only")
            return self.packet(first.line, time)
        if time.kind == "any" or time.end is not None:
            raise self.err(first, "'*' and time ranges (a~b) are for outbound packets "
                                  "('>') only")
        if tok.kind == "IDENT":
            return self.syscall(first.line, time, end_time)
        if tok.kind in ("CMD", "CODE") and end_time is None:
            self.lx.next()
            cls = Command if tok.kind == "CMD" else Code
            return cls(first.line, time, tok.text)
        raise self.err(tok, "expected a packet ('<' or '>'), a system call, a `command` or "
                            f"%{{ code }}% after the time, found {_describe(tok)}")

    def time(self) -> Time:
        tok = self.lx.next()
        if self.is_punct(tok, "*"):
            return Time("any", 0)
        relative = self.is_punct(tok, "+")
        if relative:
            tok = self.lx.next()
        if tok.kind != "NUM":
            raise self.err(tok, f"expected an event time (0.1, +0.1 or *), "
                                f"found {_describe(tok)}")
        start = self.seconds(tok, "the event time")
        end = None
        if self.is_punct(self.lx.peek(), "~"):
            tilde = self.lx.next()
            plus = self.is_punct(self.lx.peek(), "+")
            if plus:
                self.lx.next()
            if plus != relative:
                raise self.err(tilde, "a time range has both ends relative (+a~+b) or both "
                                      "absolute (a~b)")
            end = self.seconds(self.lx.next(), "the end of the time range")
            if end < start:
                raise self.err(tilde, "the time range ends before it starts")
        return Time("relative" if relative else "absolute", start, end)

    def seconds(self, tok: _Tok, what: str) -> int:
        if tok.kind != "NUM" or tok.text[:2] in ("0x", "0X"):
            raise self.err(tok, f"expected seconds for {what}, found {_describe(tok)}")
        whole, _, frac = tok.text.partition(".")
        if len(frac) > 6 and frac[6:].strip("0"):
            raise self.err(tok, f"{tok.text} is finer than a microsecond")
        return int(whole or "0") * 1_000_000 + int((frac[:6] or "0").ljust(6, "0"))

    # -- packets ------------------------------------------------------------------------------
    def packet(self, line: int, time: Time) -> Packet:
        direction = self.lx.next().text
        flags_tok = self.lx.peek()
        if flags_tok.kind == "IDENT" and flags_tok.text in ("udp", "icmp", "sctp"):
            raise self.err(flags_tok, f"{flags_tok.text} packets are not supported "
                                      "(rawtcp runs TCP scripts)")
        ecn = None
        if self.is_punct(flags_tok, "["):
            self.lx.next()
            code = self.lx.next()
            if code.kind != "IDENT" or code.text not in ECN_CODES:
                raise self.err(code, f"unknown IP ECN marker {code.text!r} "
                                     f"(known: {', '.join(ECN_CODES)})")
            ecn = code.text
            if ecn == "ect01" and direction == "<":
                raise self.err(code, "[ect01] (either ECT) is for outbound packets only")
            self.expect_punct("]", "after the ECN marker")
            flags_tok = self.lx.peek()
        flags = self.flags()
        seq_start = self.expect_int("the start sequence number", 0, _SEQ_MAX)
        self.expect_punct(":", "between the sequence numbers (start:end(length))")
        seq_end = self.expect_int("the end sequence number", 0, _SEQ_MAX)
        self.expect_punct("(", "before the payload length (start:end(length))")
        length = self.expect_int("the payload length", 0, 0xFFFF)
        self.expect_punct(")", "after the payload length")
        if seq_end != seq_start + length:
            raise self.err(flags_tok, f"bad sequence range {seq_start}:{seq_end}({length}): "
                                      "end must be start + length (no wrap)")
        fields: dict[str, int] = {}
        options: tuple[Option, ...] | None = ()
        seen_options = False
        while True:
            tok = self.lx.peek()
            if tok.kind == "IDENT" and tok.text in ("ack", "win", "urg"):
                self.lx.next()
                if tok.text in fields:
                    raise self.err(tok, f"'{tok.text}' given twice")
                hi = _SEQ_MAX if tok.text == "ack" else 0xFFFF
                fields[tok.text] = self.expect_int(f"'{tok.text}'", 0, hi)
            elif self.is_punct(tok, "<") and not seen_options:
                options = self.options(self.lx.next())
                if options is None and direction == "<":
                    raise self.err(tok, "<...> (any options) is for outbound packets only; "
                                        "an inbound packet needs its options written out")
                seen_options = True
            elif tok.kind == "IDENT":
                raise self.err(tok, f"unexpected {tok.text!r} in a packet (expected ack N, "
                                    "win N, urg N or <options>)")
            else:
                break
        return Packet(line, time, direction, flags, seq_start, seq_end, length,
                      fields.get("ack"), fields.get("win"), options, fields.get("urg"), ecn)

    def flags(self) -> str:
        """The flag letters: adjacent tokens with no space between them (``S.`` is two)."""
        first = self.lx.peek()
        if self.is_punct(first, "-"):
            self.lx.next()
            return ""
        parts, end, tok = [], first.pos, first
        while tok.pos == end and (tok.kind == "IDENT" or self.is_punct(tok, ".")):
            parts.append(tok.text)
            end = tok.end
            self.lx.next()
            tok = self.lx.peek()
        text = "".join(parts)
        if not text:
            raise self.err(first, f"expected TCP flags (S, S., ., P., F., R ...), "
                                  f"found {_describe(first)}")
        bad = [c for c in text if c not in FLAG_CHARS]
        if bad or len(set(text)) != len(text):
            raise self.err(first, f"unknown TCP flags {text!r}: use the letters "
                                  f"{FLAG_CHARS!r} ('.' is ACK), each once, or '-' for none")
        return text

    def options(self, opener: _Tok) -> tuple[Option, ...] | None:
        if self.lx.peek().kind == "ELLIPSIS":
            self.lx.next()
            self.expect_punct(">", "after '<...'")
            return None
        out: list[Option] = []
        while True:
            out.append(self.option())
            tok = self.lx.next()
            if self.is_punct(tok, ">"):
                return tuple(out)
            if not self.is_punct(tok, ","):
                raise self.unclosed(opener, tok, ">", " in the TCP options")

    def option(self) -> Option:
        tok = self.lx.next()
        kind = tok.text if tok.kind == "IDENT" else ""
        if kind in ("nop", "eol", "sackOK"):
            return Option(kind)
        if kind == "mss":
            return Option(kind, (self.expect_int("mss", 0, 0xFFFF),))
        if kind == "wscale":
            return Option(kind, (self.expect_int("wscale", 0, 255),))
        if kind == "TS":
            values = []
            for name in ("val", "ecr"):
                word = self.lx.next()
                if word.kind != "IDENT" or word.text != name:
                    raise self.err(word, f"expected '{name}' in 'TS val N ecr N', "
                                         f"found {_describe(word)}")
                values.append(self.expect_int(f"TS {name}", 0, _SEQ_MAX))
            return Option(kind, tuple(values))
        if kind == "sack":
            blocks = []
            while self.lx.peek().kind == "NUM":
                left = self.expect_int("a SACK block edge", 0, _SEQ_MAX)
                self.expect_punct(":", "in a SACK block (left:right)")
                blocks.append((left, self.expect_int("a SACK block edge", 0, _SEQ_MAX)))
            if not blocks:
                raise self.err(tok, "'sack' needs at least one block left:right")
            return Option(kind, blocks=tuple(blocks))
        raise self.err(tok, f"unknown TCP option {tok.text!r} (known: mss, nop, eol, "
                            "wscale, sackOK, TS val N ecr N, sack L:R ...)")

    # -- system calls -------------------------------------------------------------------------
    def syscall(self, line: int, time: Time, end_time: int | None) -> Syscall:
        name = self.lx.next()
        opener = self.expect_punct("(", f"after the system call name {name.text!r}")
        args = self.expr_list(")", opener)
        eq = self.lx.next()
        if not self.is_punct(eq, "="):
            raise self.err(eq, f"expected '=' and the result after {name.text}(...), "
                               f"found {_describe(eq)}")
        result = self.expr()
        errno_name = errno_text = None
        tok = self.lx.peek()
        if tok.kind == "IDENT":
            self.lx.next()
            errno_name = tok.text
            tok = self.lx.peek()
        if self.is_punct(tok, "("):
            self.lx.next()
            errno_text = self.lx.raw_until_close_paren(tok.line)
        return Syscall(line, time, name.text, args, result, errno_name, errno_text, end_time)

    def unclosed(self, opener: _Tok, tok: _Tok, close: str, what: str = "") -> ScriptError:
        """The error for a token that is neither ',' nor the closing bracket."""
        if tok.line != opener.line or tok.kind == "EOF":
            return self.err(opener, f"unbalanced '{opener.text}': no matching '{close}' "
                                    f"(found {_describe(tok)} on line {tok.line})")
        return self.err(tok, f"expected ',' or '{close}'{what}, found {_describe(tok)}")

    def expr_list(self, close: str, opener: _Tok) -> tuple[Expr, ...]:
        """Comma-separated expressions up to ``close`` (consumed); ``opener`` was consumed."""
        items: list[Expr] = []
        if self.is_punct(self.lx.peek(), close):
            self.lx.next()
            return ()
        while True:
            items.append(self.expr())
            tok = self.lx.next()
            if self.is_punct(tok, close):
                return tuple(items)
            if not self.is_punct(tok, ","):
                raise self.unclosed(opener, tok, close)

    def expr(self) -> Expr:
        operands = [self.primary()]
        while self.is_punct(self.lx.peek(), "|"):
            self.lx.next()
            operands.append(self.primary())
        return operands[0] if len(operands) == 1 else BitOr(tuple(operands))

    def primary(self) -> Expr:
        tok = self.lx.next()
        if tok.kind == "NUM":
            return self.int_of(tok, "an argument")
        if self.is_punct(tok, "-"):
            num = self.lx.next()
            if num.kind != "NUM":
                raise self.err(num, f"expected a number after '-', found {_describe(num)}")
            return -self.int_of(num, "an argument")
        if tok.kind == "ELLIPSIS":
            return ...
        if tok.kind == "STR":
            value = tok.text
            while self.lx.peek().kind == "STR":
                value += self.lx.next().text
            if self.lx.peek().kind == "ELLIPSIS":
                self.lx.next()
                return Str(value, partial=True)
            return Str(value)
        if tok.kind == "IDENT":
            if self.is_punct(self.lx.peek(), "("):
                return Call(tok.text, self.expr_list(")", self.lx.next()))
            return Symbol(tok.text)
        if self.is_punct(tok, "["):
            return Array(self.expr_list("]", tok))
        if self.is_punct(tok, "{"):
            return self.struct(tok)
        raise self.err(tok, f"expected an argument, found {_describe(tok)}")

    def struct(self, opener: _Tok) -> Struct:
        fields: list[tuple[str, Expr]] = []
        if self.is_punct(self.lx.peek(), "}"):
            self.lx.next()
            return Struct(())
        while True:
            key, value = self.struct_field()
            fields.append((key, value))
            tok = self.lx.next()
            if self.is_punct(tok, "}"):
                return Struct(tuple(fields))
            if not self.is_punct(tok, ","):
                raise self.unclosed(opener, tok, "}")

    def struct_field(self) -> tuple[str, Expr]:
        tok = self.lx.peek()
        if tok.kind != "IDENT":
            return "", self.expr()
        self.lx.next()
        key = tok.text
        if self.is_punct(self.lx.peek(), "("):
            args = self.expr_list(")", self.lx.next())
            nxt = self.lx.peek()
            if not self.is_punct(nxt, "="):        # a call used as an unnamed value
                return "", Call(key, args)
            key += "(" + ", ".join(format_expr(a) for a in args) + ")"
        if not self.is_punct(self.lx.peek(), "="):   # an unnamed symbol value
            return "", self._continue_bitor(Symbol(tok.text))
        self.lx.next()
        return key, self.expr()

    def _continue_bitor(self, first: Expr) -> Expr:
        operands = [first]
        while self.is_punct(self.lx.peek(), "|"):
            self.lx.next()
            operands.append(self.primary())
        return operands[0] if len(operands) == 1 else BitOr(tuple(operands))


def _describe(tok: _Tok) -> str:
    if tok.kind == "EOF":
        return "the end of the script"
    if tok.kind == "CMD":
        return "a `command`"
    if tok.kind == "CODE":
        return "a %{ code }% block"
    if tok.kind == "STR":
        return "a string"
    if tok.kind == "OPT":
        return f"option {tok.text!r}"
    return repr(tok.text)


def parse_script(text: str, path: str = "<script>") -> Script:
    """Parse a packetdrill script; :class:`ScriptError` ("PATH:LINE: ...") if it is malformed."""
    return _Parser(text, path).script()


def parse_file(path: str | Path) -> Script:
    """Read and parse a script file (UTF-8; undecodable bytes are replaced)."""
    p = Path(path)
    return parse_script(p.read_text(encoding="utf-8", errors="replace"), str(p))
