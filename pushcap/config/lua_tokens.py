"""Which token or name a Lua error may quote.

Lua ends a syntax error with the token it stopped at, as written in the file, and a runtime error
names the variable it failed on (`attempt to concatenate a nil value (global 'x')`). pushcap's
config errors never show a credential (README, "Errors in either file"), and a secret pasted
without its quotes is read as exactly such a token or variable name. So one that could be a
secret is replaced by its kind: `near <string>`, `near <number>`, `near <name>`,
`(global <name>)`.
"""

from __future__ import annotations

import re

from pushcap.config.fmadio_fields import TOP_LEVEL_FIELDS
from pushcap.config.targets import FIELDS

__all__ = ["conceal_tokens"]

# A Lua syntax error ends with the token it stopped at; a string token (`near '"..."'`, `near
# '[[...]]'`) is the source as written, so a credential when a `..` was forgotten before it. So is
# a secret pasted without quotes: `Key = 3f9a...` is a malformed number, `Key = AKIA.. x` stops
# near a name, and `Key = AKIA..` alone is a nil global that a runtime error names. Names are
# quoted only when they cannot be a secret: Lua's keywords, the target fields, the library names
# a config uses, and names of up to 4 characters (a typo's `b`, `cfg`); punctuation always is.
_NEAR, _STRING_TOKEN = " near '", re.compile(r"[\"']|\[=*\[")
_NUMBER_TOKEN = re.compile(r"\.?[0-9]")
_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*'$")
_SHOWN_NAME_CHARS = 4
_SHOWN_NAMES = frozenset((
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
    "Config", "Target", "table", "insert", "string", "format", "math", "floor", "tostring",
    "tonumber", "ipairs", "pairs", "select", "error", "assert", "pcall", "utf8", "concat",
    "date", "time", "clock", "getenv", *FIELDS, *TOP_LEVEL_FIELDS,
))  # fmt: skip
# A runtime error's variable: `(global 'x')`, `(local 'x')`, `(field 'x')`, `(upvalue 'x')`...
_VARIABLE = re.compile(
    r"\((global|local|field|upvalue|constant|method) '([A-Za-z_][A-Za-z0-9_]*)'\)")


def conceal_tokens(message: str, *, syntax: bool) -> str:
    """`message` with each token or variable name that could be a credential replaced by its
    kind; the line stays: it says where to look."""
    if syntax:
        return _syntax_token_concealed(message)
    return _VARIABLE.sub(lambda m: m.group(0) if _shown(m.group(2)) else f"({m.group(1)} <name>)",
                         message)


def _shown(name: str) -> bool:
    return len(name) <= _SHOWN_NAME_CHARS or name in _SHOWN_NAMES


def _syntax_token_concealed(message: str) -> str:
    near = message.find(_NEAR)  # the first: Lua's, not one inside the token
    if near < 0:
        return message
    token = message[near + len(_NEAR):]
    if _STRING_TOKEN.match(token):
        return message[:near] + " near <string>"
    if _NUMBER_TOKEN.match(token):
        return message[:near] + " near <number>"
    if _NAME_TOKEN.fullmatch(token) and not _shown(token[:-1]):
        return message[:near] + " near <name>"
    return message
