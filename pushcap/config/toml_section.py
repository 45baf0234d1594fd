"""One TOML table with typed getters whose errors name the file, `[section] key` and its line.

Every section of pcapdaemon.toml is checked through this class, by `run` and `check` alike, so an
operator gets the same message from both: file, section, key, line, and what is wanted, never a
credential's value (a key named like one is reported without it; any other value goes through
`field_check.conceal`, which hides a password inside a URL).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from pushcap.config.field_check import conceal
from pushcap.config.model import ConfigError

# Line scanning for messages only: plain `[name]` headers and `key =` lines; anything fancier
# (dotted keys, [a.b], a line inside a multi-line array) just leaves a key without a line.
_TABLE_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(?:#.*)?$")
_OTHER_HEADER = re.compile(r"\s*\[")
_KEY_LINE = re.compile(r"\s*([A-Za-z0-9_-]+|\"[^\"\\]*\"|'[^']*')\s*=")
SECRET_KEY = re.compile(r"auth|token|pass|secret|key|credential")  # keys whose values are hidden
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
MAX_SECONDS = 10 * 365 * 86400.0  # any duration setting: ten years is surely a mistake already


class LineTable(dict):
    """A TOML table that also knows the line of each of its keys (for messages, not equality)."""

    def __init__(self, values: dict, lines: dict[str, int]) -> None:
        super().__init__(values)
        self.lines = lines

    def __repr__(self) -> str:
        return repr({key: "***" if SECRET_KEY.search(key) else
                     conceal(value) if isinstance(value, str) else value
                     for key, value in self.items()})


def line_of(table: dict, key: str) -> int | None:
    """The line of `key` in the file `table` came from, when known."""
    return getattr(table, "lines", {}).get(key)


def _lines_outside_strings(text: str) -> Iterator[tuple[int, str]]:
    """(1-based number, line) of a TOML text's lines, less those inside a multi-line string
    (whose text may look like a header or a key). TOML breaks lines at "\n" only."""
    open_quote: str | None = None  # inside a multi-line string: which delimiter ends it
    for number, line in enumerate(text.split("\n"), 1):
        if open_quote:
            if line.count(open_quote) % 2:
                open_quote = None
            continue
        yield number, line
        open_quote = next((q for q in ('"""', "'''") if line.count(q) % 2), None)


def key_lines(text: str) -> dict[str, dict[str, int]]:
    """{table: {key: first line}} for the `[table]` sections of a TOML text (1-based lines)."""
    found: dict[str, dict[str, int]] = {}
    section: str | None = ""  # keys before any header belong to the root
    for number, line in _lines_outside_strings(text):
        if header := _TABLE_HEADER.match(line):
            section = header[1]
        elif _OTHER_HEADER.match(line):
            section = None  # [[array]], [a.b] or an array's continuation: not tracked
        elif (key := _KEY_LINE.match(line)) and section is not None:
            found.setdefault(section, {}).setdefault(key[1].strip("\"'"), number)
    return found


def array_table_lines(text: str, name: str) -> list[int]:
    """The line of each `[[name]]` header of a TOML text, in order (1-based): where an entry
    of an array of tables starts, for messages that name the entry."""
    header = re.compile(rf"\s*\[\[\s*{re.escape(name)}\s*\]\]\s*(?:#.*)?$")
    return [number for number, line in _lines_outside_strings(text) if header.match(line)]


# Go's time.Duration syntax, which pcapdaemon's duration fields take ("90s", "1m30s").
GO_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
GO_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_s(text: str) -> float | None:
    """Seconds in a Go duration string ("90s", "1m30s"), or None when it is not one."""
    parts = GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * GO_UNIT_S[u] for n, u in parts)


class TomlSection:
    """One TOML table with typed getters whose errors name `[section] key` and the file."""

    def __init__(self, values: dict, name: str, known: set[str] | None, source: str) -> None:
        self.values, self.name, self.source = values, name, source
        unknown = sorted(set(values) - known) if known is not None else []
        if unknown:  # named with its line, never with its value (a mistyped `auth` holds one)
            raise ConfigError(f"{self.where(unknown[0])}: unknown key "
                              f"(known: {', '.join(sorted(known or ()))})")

    def where(self, key: str) -> str:
        """`file: [section] key (line n)`, the line when the file's text was scanned; a key
        that is not a bare TOML key is quoted (a quoted key may hold a newline)."""
        line = line_of(self.values, key)
        shown = key if _BARE_KEY.fullmatch(key) else json.dumps(key)
        return f"{self.source}: [{self.name}] {shown}" + (f" (line {line})" if line else "")

    def _bad(self, key: str, want: str) -> ConfigError:
        if SECRET_KEY.search(key):
            return ConfigError(f"{self.where(key)}: {want} (the value is not shown: it is a "
                               "credential)")
        return ConfigError(f"{self.where(key)} = {conceal(repr(self.values[key]))}: {want}")

    def text(self, key: str, default: str) -> str:
        value = self.values.get(key, default)
        if not isinstance(value, str) or not value:
            raise self._bad(key, "must be a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key, "") if key in self.values else None

    def boolean(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "must be true or false")
        return value

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.values.get(key, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 1e8 is how people write maxbytes
        if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
                or (maximum is not None and value > maximum)):
            upper = f"..{maximum}" if maximum is not None else " or more"
            raise self._bad(key, f"must be an integer {minimum}{upper}")
        return value

    def seconds(self, key: str, default: float, minimum_s: float = 1e-3) -> float:
        """Seconds as a number, or a Go duration string ("90s", "1m30s") as pcapdaemon's
        time.Duration fields take them. A bare number is seconds, never nanoseconds."""
        value = self.values.get(key, default)
        if isinstance(value, str):
            seconds = go_duration_s(value)
            if seconds is None:
                raise self._bad(key, 'must be seconds or a duration like "90s" or "1m30s"')
            value = seconds
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not minimum_s <= value <= MAX_SECONDS):  # nan, inf, ints beyond a float
            raise self._bad(key, f"must be {minimum_s:g} to {MAX_SECONDS:g} s")
        return float(value)
