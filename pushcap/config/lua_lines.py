"""Where in push_realtime.lua each target was written: the line of its table and of each field.

Targets are built at run time (table.insert, a literal list, a loop, a helper function), so the
table a target ends up as cannot be found by reading the source alone, and Lua keeps no record of
where a table was made. So lua.py runs a copy of the source in which every table constructor
`{...}` is wrapped as `(MARK(n, {...}))`, n being its place among the file's constructors: the
trusted MARK (a closure of the driver, not `debug`) remembers n for the table it is given. After
the run, a target's table gives back its constructor, and the static scan below gives that
constructor's line and the line of each field written directly in it (`Split = ...`), so a
message can point at the field the operator wrote, or at the table when the field came from
elsewhere (`t.Split = x`, a default). A target made by one constructor in a loop or in a helper
function points at that constructor.

Only text outside strings and comments is touched and no line break is added before the end, so
Lua's own line numbers, messages and the values the config builds are those of the file as
written; the config runs as a function called without arguments, so its `...` stays empty. Still,
the marked copy is only a second opinion: lua.py runs the file as written, which alone decides what
loads and what fails (Lua errors, time and memory limits: marking costs a call and a table entry
per constructor), and runs the marked copy only to place a target's error, using its lines only if
it built the same value. The scan only needs to tell strings and comments from code (the file as
written ran, so it is valid Lua); if what it finds does not add up, nothing is marked and messages
have no line. string_literals serves lua.py's last guard against secrets in messages, on any file.
"""

from __future__ import annotations

import math
import re
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field

from pushcap import defaults

__all__ = ["MARK_NAME", "Constructor", "instrument", "scan_constructors", "string_literals"]

# The local the rewritten chunk receives MARK in (its `...`); not a global, so _G never shows it,
# and numbered if the config writes this name, which then stays the config's own (nil).
MARK_NAME = "__pushcap_mark"

# A token, or the opening bracket of a long string or comment, which _lex reads to its end with
# str.find. Each byte is read once, so the scan is linear in the file's size whatever it holds: no
# pattern here can fail after reading far (a short string's closing quote is optional, `open` if
# missing) or backtrack. (Patterns that could made 1 MiB of unclosed `[[` take minutes, and 40
# `\z` in an unclosed string 2^40 tries, all of it in Python, outside the Lua time budget.)
_TOKEN = re.compile(
    rb"""
      (?P<space>[ \t\n\r\f\v]+)
    | (?P<comment>--(?!\[=*\[)[^\r\n]*)
    | (?P<long>(?:--)?\[=*\[)
    | (?P<string>"(?:[^"\\\r\n]+|\\z\s*|\\(?:\r\n|\n\r|.))*(?P<dq>")?
        | '(?:[^'\\\r\n]+|\\z\s*|\\(?:\r\n|\n\r|.))*(?P<sq>')?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>\.?[0-9](?:[eEpP][+-]|[0-9A-Za-z_.])*)
    | (?P<op>\.\.\.|\.\.|[=~<>]=|//|::|<<|>>|.)
    """,
    re.S | re.X,
)
# Lua counts "\r\n" and "\n\r" as one line break, like "\n" or "\r" alone (llex.c inclinenumber).
_LINE_BREAK = re.compile(rb"\r\n|\n\r|\n|\r")
_BLOCK_OPEN = frozenset((b"function", b"do", b"if", b"repeat"))  # each closed by one end/until
_BLOCK_CLOSE = frozenset((b"end", b"until"))
_FIELD_START = frozenset((b"{", b",", b";"))  # what comes before a field in a constructor
_BLOCK = "block"  # also the bottom of scan_constructors' stack: the chunk
_OPENING = {b")": b"(", b"]": b"["}


@dataclass
class Constructor:
    """One `{...}` of the source: the line of its `{` and of each `Name = ...` written in it."""

    line: int
    open_at: int  # byte offsets of its braces
    close_at: int = -1
    keys: dict[str, int] = field(default_factory=dict)  # field -> line (the last one wins)


# (kind, text, offset): a plain tuple, as a 1 MiB file may hold a million tokens
_Token = tuple[str, bytes, int]


class _OutOfTime(Exception):
    """The scan is still going at its deadline."""


def scan_constructors(data: bytes, deadline: float = math.inf) -> list[Constructor]:
    """Every table constructor of `data`, in source order; [] when the scan does not add up, or
    is still going at time.monotonic() `deadline`: the lines are not worth more than the run. The
    scan is linear, but a 1 MiB file can hold a million tokens, a second or more of Python."""
    breaks = [m.end() for m in _LINE_BREAK.finditer(data)]

    def line_of(offset: int) -> int:
        return bisect_right(breaks, offset) + 1

    try:
        tokens = list(_lex(data, deadline))
    except _OutOfTime:
        return []
    if any(kind == "open" for kind, _, _ in tokens):
        return []  # not valid Lua: Lua refuses it, so nothing runs marked
    found: list[Constructor] = []
    stack: list[int | bytes | str] = [_BLOCK]  # a constructor's index, b"(", b"[" or _BLOCK
    after_separator = False  # the token before is `{`, `,` or `;`
    check_at = defaults.LUA_CLOCK_CHECK_BYTES
    for j, (kind, text, at) in enumerate(tokens):
        if at >= check_at:
            check_at = at + defaults.LUA_CLOCK_CHECK_BYTES
            if time.monotonic() > deadline:
                return []
        top = stack[-1]
        in_table = type(top) is int
        if kind == "name":
            if text in _BLOCK_OPEN:
                stack.append(_BLOCK)
            elif text in _BLOCK_CLOSE:
                if len(stack) == 1 or stack.pop() != _BLOCK:
                    return []
            elif in_table and after_separator and _is_op(tokens, j + 1, b"="):
                found[top].keys[text.decode()] = line_of(at)  # type: ignore[index]
        elif kind == "op":
            if text == b"{":
                found.append(Constructor(line_of(at), at))
                stack.append(len(found) - 1)
            elif text == b"}":
                if not in_table:
                    return []
                found[stack.pop()].close_at = at  # type: ignore[index]
            elif text == b"(" or text == b"[":
                if text == b"[" and in_table and after_separator:
                    key = _bracket_key(tokens, j)
                    if key is not None:
                        found[top].keys[key] = line_of(at)  # type: ignore[index]
                stack.append(text)
            elif text == b")" or text == b"]":
                if stack.pop() != _OPENING[text]:
                    return []
        after_separator = kind == "op" and text in _FIELD_START
    return found if stack == [_BLOCK] else []


def string_literals(data: bytes) -> list[bytes]:
    """The string literals written in `data`, quotes included, and any left open (a syntax error)
    running to where Lua gave up on it: where a secret may be written."""
    return [text for kind, text, _ in _lex(data) if kind == "string" or kind == "open"]


def _lex(data: bytes, deadline: float = math.inf) -> Iterator[_Token]:
    """The tokens of `data` but spaces and comments, in order; a string, long string or long
    comment left open comes out as one "open" token, and the scan goes on after it."""
    pos, check_at = 0, defaults.LUA_CLOCK_CHECK_BYTES
    while pos < len(data):
        for m in _TOKEN.finditer(data, pos):
            kind, at = m.lastgroup, m.start()
            if at >= check_at:
                check_at = at + defaults.LUA_CLOCK_CHECK_BYTES
                if time.monotonic() > deadline:
                    raise _OutOfTime
            if kind == "long":
                break  # read to its end here, then tokens again from there
            if kind == "string" and m["dq"] is None and m["sq"] is None:
                kind = "open"  # a line break or the end of the file before the closing quote
            if kind != "space" and kind != "comment":
                yield (kind, m[0], at)  # type: ignore[misc]
        else:
            return
        # `[==[` or `--[==[`: the first `]==]` closes it, as in Lua's own lexer
        start, opener = m.start(), m[0]
        close = data.find(b"]" + opener.strip(b"-[") + b"]", m.end())
        pos = close + len(opener.lstrip(b"-")) if close >= 0 else len(data)
        if close < 0 or opener[:1] == b"[":
            yield ("open" if close < 0 else "string", data[start:pos], start)


def _is_op(tokens: list[_Token], j: int, text: bytes) -> bool:
    return j < len(tokens) and tokens[j][0] == "op" and tokens[j][1] == text


def _bracket_key(tokens: list[_Token], j: int) -> str | None:
    """The name in `["Split"] = ...` starting at tokens[j]; None for any other key."""
    if not (_is_op(tokens, j + 2, b"]") and _is_op(tokens, j + 3, b"=")):
        return None
    kind, text, _ = tokens[j + 1]
    if kind != "string" or text[:1] not in (b'"', b"'") or b"\\" in text:
        return None  # a long string or one with escapes: not worth decoding for a line number
    try:
        return text[1:-1].decode("utf-8")
    except UnicodeDecodeError:
        return None


def instrument(data: bytes, constructors: list[Constructor]) -> bytes:
    """`data` with constructor n written `(MARK(n, {...}))`, MARK a local set from the chunk's `...`
    and named by _unused_name, so no name the config writes is MARK: it reads nil as before.

    Same lines as `data`: nothing added before its end holds a line break. The config runs as a
    function called with nothing, so its own `...` is empty, as when it runs as written.
    """
    mark = _unused_name(data)
    inserts: list[tuple[int, int, bytes]] = []  # (offset, closing first, text inserted before it)
    for n, c in enumerate(constructors):
        inserts.append((c.open_at, 1, b"(%s(%d," % (mark, n)))
        inserts.append((c.close_at + 1, 0, b"))"))
    inserts.sort()
    parts, done = [b"local %s = ...; return (function(...) " % mark], 0
    for offset, _, text in inserts:
        parts += (data[done:offset], text)
        done = offset
    parts += (data[done:], b"\nend)()")  # on its own line: the file may end in a -- comment
    return b"".join(parts)


def _unused_name(data: bytes) -> bytes:
    """MARK_NAME, or MARK_NAME with a number, whichever `data` nowhere holds as a whole name."""
    base = MARK_NAME.encode()
    taken = set(re.findall(rb"(?<![A-Za-z0-9_])%s[A-Za-z0-9_]*" % base, data))
    names = (base + (b"%d" % n if n else b"") for n in range(len(taken) + 1))
    return next(name for name in names if name not in taken)  # one of len(taken) + 1 is free
