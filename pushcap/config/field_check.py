"""How every target field rule reads its value and reports a problem (see targets.py).

A rule gets a field's plain value as lua.py hands it over (Lua strings as bytes, numbers, booleans,
tables as dicts, other values as LuaOpaque); field_text reads a string field and FieldError says
what is wrong with a value. check_field runs one rule and turns its FieldError into the ConfigError
`<file>:<line>: target <i> "<Desc>": <Field> <value as written in Lua>: <problem and fix>`, so every
field module words its errors alike; TargetPlace says where a target is (lua.py finds the lines,
see lua_lines.py) and points at the field's own line when the operator wrote it in the target's
table, else at the table's. Kept apart so the field rules (targets.py, file_fields.py,
flows_fields.py) share it without importing each other.

A value shown in a message may be a credential: an rclone Path can be a connection string with keys
(`:s3,secret_access_key=...:bucket/x`) and a URL can carry `user:password@`. So every value passes
through conceal() (the rclone scrubber plus the secrets found in the value itself, so a rule that
echoes a piece of its value leaks nothing either) before it is quoted and cut to length, and a Path
is shown as rclone_remote.display_path() shows it in logs: remote name and path, no parameters.
pcapdaemon.py uses conceal() for its TOML values and flags too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from pushcap.config.model import ConfigError
from pushcap.config.record import field, record, replace
from pushcap.config.secrets import SENSITIVE_NAME, scrub, url_secrets

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any


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

        # concealed before the cut, which could otherwise leave half a secret unrecognisable
        text = json.dumps(conceal(value), ensure_ascii=False)
        return text if len(text) <= limit else text[: limit - 4] + '..."'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "<a table>"
    if isinstance(value, LuaOpaque):
        return repr(value)
    return f"<a {type(value).__name__}>"


def shown_value(field: str, value: Any) -> str:
    """`value` for a message about `field`: lua_repr, a Path without its connection parameters;
    a number given as Path is not shown (a numeric key pasted without quotes)."""
    if field == "Path" and isinstance(value, int | float) and not isinstance(value, bool):
        return "<number>"
    if field == "Path" and isinstance(value, bytes | str):
        from pushcap.config.rclone_path import display_path  # error messages only

        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return lua_repr(display_path(text))
    return lua_repr(value)


@record(frozen=True)
class TargetPlace:
    """Where target `index` is written, for the start of its messages; a line is None if unknown.

    `line` is its table's (the `{`), `field_lines` those of the fields written in that table, so a
    message about a field points at the field, and one about the whole target, or a field that was
    set elsewhere (a default, `t.Split = x`), at the table. Compilers' `file:line:` form, so editors
    and operators can jump to it.
    """

    source_name: str
    index: int
    desc: str | None = None  # shown once it is known to be valid
    line: int | None = None
    field_lines: Mapping[str, int] = field(default_factory=dict)

    def named(self, desc: str) -> TargetPlace:
        return replace(self, desc=desc)

    def line_of(self, name: str | None = None) -> int | None:
        """The line of field `name` if written in the target's table, else the table's."""
        return self.field_lines.get(name, self.line) if name is not None else self.line

    def prefix(self, name: str | None = None) -> str:
        """`<file>:<line>: target <i> "<Desc>"`, the line being field `name`'s (see line_of)."""
        line = self.line_of(name)
        where = self.source_name if line is None else f"{self.source_name}:{line}"
        label = "" if self.desc is None else f' "{self.desc}"'
        return f"{where}: target {self.index}{label}"


def check_field(place: TargetPlace, name: str, value: Any, parse: Callable[[Any], Any]) -> Any:
    """`parse(value)`, its FieldError raised as a ConfigError that names the place and field."""
    try:
        return parse(value)
    except FieldError as e:
        prefix = place.prefix(name)
        if value is None:
            raise ConfigError(f"{prefix}: {name} is missing: {e}") from None
        raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else ""
        problem = conceal(str(e), raw)  # a rule may quote part of the value (a host, a prefix)
        raise ConfigError(f"{prefix}: {name} {shown_value(name, value)}: {problem}") from None


# --- secrets ----------------------------------------------------------------------------------

# `name=value` parameters whose name says credential: the scrubber's own rule (config/secrets.py).
# Compiled on first use, as secrets.py's patterns: only a refused value needs it, and compiling
# it was ~0.5 ms of every start (issue 15).
_SECRET_PARAM = rf"(?i)\b{SENSITIVE_NAME}\s*=\s*('[^']*'|\"[^\"]*\"|[^&,:\s'\"]+)"
_MIN_SECRET_CHARS = 4  # shorter ones are still hidden where they appear as `name=value`


def secrets_in(text: str) -> set[str]:
    """Credential values written in `text`: `name=value` parameters, URL passwords and token
    user names (the scrubber's URL rule, `secrets.url_secrets`)."""
    found = url_secrets(text)
    found.update(m[1].strip("'\"") for m in re.finditer(_SECRET_PARAM, text))
    return {s for s in found if len(s) >= _MIN_SECRET_CHARS}


def conceal(text: str, *sources: str) -> str:
    """`text` fit for an error message: no secret of its own or of `sources` (the raw values)."""

    secrets = secrets_in(text).union(*(secrets_in(s) for s in sources))
    return scrub(text, secrets)


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
