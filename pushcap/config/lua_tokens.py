"""Which token a Lua syntax error may quote.

Lua ends a syntax error with the token it stopped at, as written in the file. pushcap's config
errors never show a credential (README, "Errors in either file"), so a token that could be one is
replaced by its kind: `near <string>`, `near <number>`, `near <name>`.
"""

from __future__ import annotations

import re

from pushcap.config.targets import FIELDS, UNSUPPORTED_FIELDS

__all__ = ["conceal_syntax_token"]

# A Lua syntax error ends with the token it stopped at; a string token (`near '"..."'`, `near
# '[[...]]'`) is the source as written, so a credential when a `..` was forgotten before it. So is
# a secret pasted without quotes: `Key = 3f9a...` is a malformed number, `Key = AKIA.. x` stops
# near a name. Names are quoted only when they cannot be a secret: Lua's keywords, the target
# fields, and names of up to 4 characters (a typo's `b`, `cfg`); punctuation always is.
_NEAR, _STRING_TOKEN = " near '", re.compile(r"[\"']|\[=*\[")
_NUMBER_TOKEN = re.compile(r"\.?[0-9]")
_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*'$")
_SHOWN_NAME_CHARS = 4
_SHOWN_NAMES = frozenset((
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
    "Config", "Target", "table", "insert", *FIELDS, *UNSUPPORTED_FIELDS,
))  # fmt: skip


def conceal_syntax_token(message: str) -> str:
    """A syntax error with the token it quotes replaced by its kind where the token could be a
    credential (see _NAME_TOKEN); the line stays: it says where to look."""
    near = message.find(_NEAR)  # the first: Lua's, not one inside the token
    if near < 0:
        return message
    start = near + len(_NEAR)
    token = message[start:]
    if _STRING_TOKEN.match(token):
        return message[:near] + " near <string>"
    if _NUMBER_TOKEN.match(token):
        return message[:near] + " near <number>"
    if _NAME_TOKEN.fullmatch(token):
        name = token[:-1]
        if len(name) > _SHOWN_NAME_CHARS and name not in _SHOWN_NAMES:
            return message[:near] + " near <name>"
    return message
