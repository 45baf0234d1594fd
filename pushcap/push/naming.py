"""File names of pushed pcap files, in FMADIO's `FileName` modes.

A target writes `<Path>_<name>.pcap`; this module only makes `<name>`. `start_ns` is the window
start for a time split (windows are aligned, so it is a multiple of the split) or the first packet's
time for a byte split; `end_ns` is `start_ns + split` for a time split, or the last packet's time
for a byte split (None means "same as start").

Every mode formats the instant in UTC, so names do not depend on the host's timezone and never
jump or repeat at a daylight saving change. The exceptions, and the modes pushcap adds to FMADIO's:

- `--filename-tstr-HHMMSS_TZ` gives `<UTC YYYYMMDD_HHMMSS>_<local YYYY-MM-DD_HH:MM:SS±HH:MM>`: the
  first part is exactly `--filename-tstr-HHMMSS` (UTC, so names still sort by time), the second part
  is the same instant in the process's local timezone (the `TZ` environment variable, else the
  system's) with its ISO offset, `+00:00` for UTC. FMADIO writes local time in both parts; pushcap
  keeps the first part in UTC so that sorting and uniqueness never depend on the timezone.
- `--filename-tstr-HHMMSS_SUB` gives `YYYYMMDD_HHMMSS.<9-digit nanoseconds>`.
- `--filename-strftime "<fmt>"` formats the UTC start time with strftime directives (a fixed,
  portable subset, see STRFTIME_DIRECTIVES) plus `%N` for the 9-digit nanoseconds and `%s` for epoch
  seconds (computed here, not by the C library, which would read the time as local).

A name never contains `/` or NUL and never starts with `.` (a leading dot would hide the file and
collide with the hidden names files are written under before they are complete).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pushcap.config.model import NamingRule
from pushcap.config.naming_rules import NS_PER_S, STRFTIME_MODE, check_strftime

if TYPE_CHECKING:
    import datetime

def _utc(start_ns: int) -> datetime.datetime:
    """The UTC time of a name (imported here: the epoch modes, the default, never need it)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(start_ns // NS_PER_S, tz=UTC)


def _sub_ns(start_ns: int) -> int:
    return start_ns % NS_PER_S


def _local_iso(start_ns: int) -> str:
    """The instant in the process's local timezone with its ISO offset; honours TZ after tzset()."""
    local = time.localtime(start_ns // NS_PER_S)
    offset_min = (local.tm_gmtoff or 0) // 60
    sign = "-" if offset_min < 0 else "+"
    hours, minutes = divmod(abs(offset_min), 60)
    return f"{time.strftime('%Y-%m-%d_%H:%M:%S', local)}{sign}{hours:02d}:{minutes:02d}"


def _hhmmss(start_ns: int) -> str:
    return f"{_utc(start_ns):%Y%m%d_%H%M%S}"


def _hhmmss_ns(start_ns: int) -> str:
    sub = _sub_ns(start_ns)
    return f"{_hhmmss(start_ns)}.{sub // 1_000_000:03d}.{sub // 1000 % 1000:03d}.{sub % 1000:03d}"


_Formatter = Callable[[NamingRule, int, int], str]

# mode -> formatter(rule, start_ns, end_ns); config/naming_rules.py holds the modes' grammar
_MODES: dict[str, _Formatter] = {
    "--filename-epoch-sec-startend": lambda r, s, e: f"{s // NS_PER_S}-{e // NS_PER_S}",
    "--filename-epoch-sec": lambda r, s, e: str(s // NS_PER_S),
    "--filename-epoch-msec": lambda r, s, e: str(s // 1_000_000),
    "--filename-epoch-usec": lambda r, s, e: str(s // 1000),
    "--filename-epoch-nsec": lambda r, s, e: str(s),
    "--filename-timestr-HHMM": lambda r, s, e: f"{_utc(s):%Y%m%d_%H%M}",
    "--filename-tstr-HHMM": lambda r, s, e: f"{_utc(s):%Y%m%d_%H%M}",
    "--filename-timestr-HHMMSS": lambda r, s, e: _hhmmss(s),
    "--filename-tstr-HHMMSS": lambda r, s, e: _hhmmss(s),
    "--filename-timestr-HHMMSS_NS": lambda r, s, e: _hhmmss_ns(s),
    "--filename-tstr-HHMMSS_NS": lambda r, s, e: _hhmmss_ns(s),
    "--filename-tstr-HHMMSS_TZ": lambda r, s, e: f"{_hhmmss(s)}_{_local_iso(s)}",
    "--filename-tstr-HHMMSS_SUB": lambda r, s, e: f"{_hhmmss(s)}.{_sub_ns(s):09d}",
    STRFTIME_MODE: lambda r, s, e: _render_strftime(r.strftime or "", s),
}


def _render_strftime(fmt: str, start_ns: int) -> str:
    """Expand a validated format; directive by directive so %N and %s never reach the libc."""
    utc = _utc(start_ns)
    out: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        letter = fmt[i + 1]
        if letter == "N":
            out.append(f"{_sub_ns(start_ns):09d}")
        elif letter == "s":
            out.append(str(start_ns // NS_PER_S))
        elif letter == "%":
            out.append("%")
        else:
            out.append(utc.strftime(f"%{letter}"))
        i += 2
    return "".join(out)


def file_name(rule: NamingRule, start_ns: int, end_ns: int | None = None) -> str:
    """The `<name>` in `<Path>_<name>.pcap` for a file starting at `start_ns` (see module doc).

    Raises ValueError for a rule that did not come from validate_naming() or a name that would be
    unsafe, rather than writing a file somewhere unexpected.
    """
    render = _MODES.get(rule.mode)
    if render is None:
        raise ValueError(f"unknown FileName mode {rule.mode!r}")
    if rule.mode == STRFTIME_MODE:
        check_strftime(rule.strftime)
    name = render(rule, start_ns, start_ns if end_ns is None else end_ns)
    if not name or "/" in name or "\x00" in name or name.startswith("."):
        raise ValueError(f"FileName {rule.describe()} gave an unsafe file name {name!r}")
    return name
