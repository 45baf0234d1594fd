"""How every target field rule reads its value and reports a problem (see targets.py).

A rule gets a field's plain value as lua.py hands it over (Lua strings as bytes, numbers, booleans,
tables as dicts, other values as LuaOpaque); field_text reads a string field and FieldError says
what is wrong with a value. check_field runs one rule and turns its FieldError into the ConfigError
`<prefix>: <Field> <value as written in Lua>: <problem and fix>`, so every field module words its
errors alike. Kept apart so the field rules (targets.py, file_fields.py, flows_fields.py) share it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pushcap.config.model import ConfigError


class LuaOpaque:
    """A Lua value with no Python form (function, thread, a table nested too deep, a table key).

    Compared by identity, so two table keys of one table stay two keys.
    """

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<a {self.kind}>"


class FieldError(Exception):
    """A field's value is wrong; the message says what and how to fix it (no prefix)."""


# --- structure --------------------------------------------------------------------------------


def lua_repr(value: Any, limit: int = 80) -> str:
    """A value as the reader wrote it in Lua: strings in double quotes, nil, true, numbers."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        import json  # error messages only: not on every start

        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= limit else text[: limit - 4] + '..."'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "<a table>"
    if isinstance(value, LuaOpaque):
        return repr(value)
    return f"<a {type(value).__name__}>"


def check_field(prefix: str, field: str, value: Any, parse: Callable[[Any], Any]) -> Any:
    try:
        return parse(value)
    except FieldError as e:
        if value is None:
            raise ConfigError(f"{prefix}: {field} is missing: {e}") from None
        raise ConfigError(f"{prefix}: {field} {lua_repr(value)}: {e}") from None


def field_text(value: Any, example: str, *, required: bool = True) -> str | None:
    """A field's string value; refuses other types, bad UTF-8 and control characters."""
    if value is None:
        if required:
            raise FieldError(f"add it, e.g. {example}")
        return None
    if not isinstance(value, bytes):
        raise FieldError(f"must be a string, e.g. {example}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError("is not valid UTF-8 text") from None
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise FieldError("contains a control character (NUL, newline, tab...); remove it")
    if not text.strip():
        raise FieldError(f"is empty, e.g. {example}")
    if text != text.strip():
        raise FieldError("has spaces at the start or end; remove them")
    return text
