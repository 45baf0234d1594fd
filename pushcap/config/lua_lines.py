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
written; the config runs as a function called without arguments, so its `...` stays empty. The scan
only needs to tell strings and comments from code (the source was already loaded as it is, so it
is valid Lua); if what it finds does not add up, nothing is marked and messages have no line.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

__all__ = ["MARK_NAME", "Constructor", "instrument", "scan_constructors"]

# The local the rewritten chunk receives MARK in (its `...`); not a global, so _G never shows it.
MARK_NAME = "__pushcap_mark"

_TOKEN = re.compile(
    rb"""
      (?P<space>[ \t\n\r\f\v]+)
    | (?P<comment>--(?:\[(?P<ceq>=*)\[.*?\](?P=ceq)\]|[^\r\n]*))
    | (?P<string>\[(?P<seq>=*)\[.*?\](?P=seq)\]
        | "(?:[^"\\\r\n]|\\z\s*|\\(?:\r\n|\n\r|.))*"
        | '(?:[^'\\\r\n]|\\z\s*|\\(?:\r\n|\n\r|.))*')
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
_BLOCK = "block"


@dataclass
class Constructor:
    """One `{...}` of the source: the line of its `{` and of each `Name = ...` written in it."""

    line: int
    open_at: int  # byte offsets of its braces
    close_at: int = -1
    keys: dict[str, int] = field(default_factory=dict)  # field -> line (the last one wins)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: bytes
    at: int


def scan_constructors(data: bytes) -> list[Constructor]:
    """Every table constructor of `data`, in source order; [] when the scan does not add up."""
    breaks = [m.end() for m in _LINE_BREAK.finditer(data)]

    def line_of(offset: int) -> int:
        return bisect_right(breaks, offset) + 1

    tokens = [
        _Token(m.lastgroup or "op", m[0], m.start())
        for m in _TOKEN.finditer(data)
        if m.lastgroup not in ("space", "comment")
    ]
    found: list[Constructor] = []
    stack: list[int | bytes | str] = []  # a constructor's index, b"(", b"[" or _BLOCK
    for j, token in enumerate(tokens):
        in_table = bool(stack) and isinstance(stack[-1], int)
        after_separator = (
            j > 0 and tokens[j - 1].kind == "op" and tokens[j - 1].text in _FIELD_START
        )
        if token.kind == "name":
            if token.text in _BLOCK_OPEN:
                stack.append(_BLOCK)
            elif token.text in _BLOCK_CLOSE:
                if not stack or stack.pop() != _BLOCK:
                    return []
            elif in_table and after_separator and _is_op(tokens, j + 1, b"="):
                found[stack[-1]].keys[token.text.decode()] = line_of(token.at)  # type: ignore[index]
            continue
        if token.kind != "op":
            continue
        if token.text == b"{":
            found.append(Constructor(line_of(token.at), token.at))
            stack.append(len(found) - 1)
        elif token.text == b"}":
            if not in_table:
                return []
            found[stack.pop()].close_at = token.at  # type: ignore[index]
        elif token.text in (b"(", b"["):
            if token.text == b"[" and in_table and after_separator:
                key = _bracket_key(tokens, j)
                if key is not None:
                    found[stack[-1]].keys[key] = line_of(token.at)  # type: ignore[index]
            stack.append(token.text)
        elif token.text in (b")", b"]"):
            if not stack or stack.pop() != token.text.replace(b")", b"(").replace(b"]", b"["):
                return []
    return [] if stack else found


def _is_op(tokens: list[_Token], j: int, text: bytes) -> bool:
    return j < len(tokens) and tokens[j].kind == "op" and tokens[j].text == text


def _bracket_key(tokens: list[_Token], j: int) -> str | None:
    """The name in `["Split"] = ...` starting at tokens[j]; None for any other key."""
    if not (_is_op(tokens, j + 2, b"]") and _is_op(tokens, j + 3, b"=")):
        return None
    literal = tokens[j + 1]
    if literal.kind != "string" or literal.text[:1] not in (b'"', b"'") or b"\\" in literal.text:
        return None  # a long string or one with escapes: not worth decoding for a line number
    try:
        return literal.text[1:-1].decode("utf-8")
    except UnicodeDecodeError:
        return None


def instrument(data: bytes, constructors: list[Constructor]) -> bytes:
    """`data` with constructor n written `(MARK(n, {...}))`, MARK taken from the chunk's `...`.

    Same lines as `data`: nothing added before its end holds a line break. The config runs as a
    function called with nothing, so its own `...` is empty, as when it runs as written.
    """
    mark = MARK_NAME.encode()
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
