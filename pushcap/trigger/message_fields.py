"""Typed reads of a request message's fields, each refusal naming the field and what it takes.

A message comes from the network, so a value is checked for type, size and range before anything
uses it, and a bad one is refused with a TriggerError naming its field and the allowed form: the
publisher learns what to fix. Numbers are bounded here too (JSON brings integers of any size and
1e400 as inf), so no arithmetic further on overflows. What each field means is message.py's.
"""

from __future__ import annotations

import math
import re

from pushcap.trigger.errors import TriggerError

# Control characters have no place in a name, a tag or a filter, and would break a log line.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class MessageFields:
    """Typed getters over the message whose errors name the field and the allowed range."""

    def __init__(self, msg: dict) -> None:
        self.msg = msg

    def text(self, key: str, max_chars: int) -> str:
        value = self.msg.get(key)
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > max_chars or CONTROL_CHARS.search(value):
            raise TriggerError(key, f"must be a string of at most {max_chars} characters "
                               "without control characters")
        return value

    def names(self, key: str) -> list[str]:
        value = self.msg.get(key)
        if value in (None, "", []):
            return []
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(
                isinstance(v, str) and 0 < len(v) <= 64 and not CONTROL_CHARS.search(v)
                for v in values):
            raise TriggerError(key, "must be a name or an array of names")
        return values

    def boolean(self, key: str) -> bool:
        value = self.msg.get(key, False)
        if not isinstance(value, bool):
            raise TriggerError(key, "must be true or false")
        return value

    def number(self, key: str) -> float | None:
        """A finite float. JSON brings ints of any size and 1e400 as inf: both are refused
        here, by name, instead of overflowing in arithmetic further on."""
        value = self.msg.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TriggerError(key, "must be a number")
        try:
            number = float(value)
        except OverflowError:
            raise TriggerError(key, f"{shown_value(value)} is too large") from None
        if not math.isfinite(number):
            raise TriggerError(key, f"{shown_value(value)} is not a finite number")
        return number

    def integer(self, key: str, default: int | None, low: int, high: int,
                cap_name: str | None = None, zero_is_default: bool = False) -> int | None:
        value = self.msg.get(key)
        if value is None or (zero_is_default and value == 0 and not isinstance(value, bool)):
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TriggerError(key, "must be an integer")
        if not low <= value <= high:
            cap = f" ({cap_name})" if cap_name else ""
            zero = "0 (the default) or " if zero_is_default else ""
            raise TriggerError(key, f"{shown_value(value)} is out of range "
                               f"{zero}{low}..{high}{cap}")
        return value

    def seconds(self, key: str, default: float, high: float, cap_name: str) -> float:
        """Seconds in (0, high]; 0 means `default`, as an unset field did in pcapdaemon."""
        value = self.number(key)
        if value is None or value == 0:
            return default
        if value < 0 or value > high:
            raise TriggerError(key, f"{value:g} s is out of range: 0 (the default) or up to "
                               f"{high:g} s ({cap_name})")
        return value


def shown_value(value: object) -> str:
    """A value for an error message, cut short: an integer can have thousands of digits."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"
