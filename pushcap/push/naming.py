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

if TYPE_CHECKING:
    import datetime

NS_PER_S = 1_000_000_000

STRFTIME_MODE = "--filename-strftime"

# Directives `--filename-strftime` accepts: each gives the same text on every libc, none yields a
# `/` (unlike %D, %x, %c) or whitespace (unlike %e, %c). %N and %s are computed by pushcap.
STRFTIME_DIRECTIVES = "YyGgmdjUWVuwHIMSpbBaAFTzZsN%"

# Smallest step of each strftime directive, in ns: two windows at least this far apart never share
# a value of the finest directive of a format. Directives missing here are constant in UTC.
_DAY_NS = 86400 * NS_PER_S
_STRFTIME_RESOLUTION_NS = {
    "N": 1,
    **dict.fromkeys("SsT", NS_PER_S),
    "M": 60 * NS_PER_S,
    **dict.fromkeys("HI", 3600 * NS_PER_S),
    "p": _DAY_NS // 2,
    **dict.fromkeys("djuwaAF", _DAY_NS),
    **dict.fromkeys("UWV", 7 * _DAY_NS),
    **dict.fromkeys("mbB", 28 * _DAY_NS),
    **dict.fromkeys("YyGg", 365 * _DAY_NS),
}
_CONSTANT_DIRECTIVES = "%zZ"  # same text for every instant: they do not make a name unique
_MAX_STRFTIME_LEN = 200


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

# mode -> (formatter(rule, start_ns, end_ns), resolution_ns)
_MODES: dict[str, tuple[_Formatter, int]] = {
    "--filename-epoch-sec-startend": (
        lambda r, s, e: f"{s // NS_PER_S}-{e // NS_PER_S}",
        NS_PER_S,
    ),
    "--filename-epoch-sec": (lambda r, s, e: str(s // NS_PER_S), NS_PER_S),
    "--filename-epoch-msec": (lambda r, s, e: str(s // 1_000_000), 1_000_000),
    "--filename-epoch-usec": (lambda r, s, e: str(s // 1000), 1000),
    "--filename-epoch-nsec": (lambda r, s, e: str(s), 1),
    "--filename-timestr-HHMM": (lambda r, s, e: f"{_utc(s):%Y%m%d_%H%M}", 60 * NS_PER_S),
    "--filename-tstr-HHMM": (lambda r, s, e: f"{_utc(s):%Y%m%d_%H%M}", 60 * NS_PER_S),
    "--filename-timestr-HHMMSS": (lambda r, s, e: _hhmmss(s), NS_PER_S),
    "--filename-tstr-HHMMSS": (lambda r, s, e: _hhmmss(s), NS_PER_S),
    "--filename-timestr-HHMMSS_NS": (lambda r, s, e: _hhmmss_ns(s), 1),
    "--filename-tstr-HHMMSS_NS": (lambda r, s, e: _hhmmss_ns(s), 1),
    "--filename-tstr-HHMMSS_TZ": (lambda r, s, e: f"{_hhmmss(s)}_{_local_iso(s)}", NS_PER_S),
    "--filename-tstr-HHMMSS_SUB": (lambda r, s, e: f"{_hhmmss(s)}.{_sub_ns(s):09d}", 1),
    STRFTIME_MODE: (lambda r, s, e: _render_strftime(r.strftime or "", s), 0),  # per format
}

KNOWN_FILENAME_MODES: tuple[str, ...] = tuple(_MODES)


def _directives(fmt: str) -> list[str]:
    """The directive letters of a format, in order; raises ValueError on a dangling `%`."""
    found: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            if i + 1 >= len(fmt):
                raise ValueError("ends with a lone '%'; write '%%' for a literal percent sign")
            found.append(fmt[i + 1])
            i += 2
        else:
            i += 1
    return found


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


def _check_strftime(fmt: str | None) -> None:
    """Raise ValueError (what is wrong, the fix) unless `fmt` always gives a safe, varying name."""
    example = f'{STRFTIME_MODE} "%Y%m%d_%H%M%S"'
    if not fmt:
        raise ValueError(f"needs a format after {STRFTIME_MODE}, e.g. {example}")
    if len(fmt) > _MAX_STRFTIME_LEN:
        raise ValueError(f"the format is longer than {_MAX_STRFTIME_LEN} characters")
    if "/" in fmt:
        raise ValueError(
            "a '/' in the format would put files in subdirectories; use '-' or '_' instead"
        )
    if any(ord(c) < 0x20 or c == "\x7f" for c in fmt):
        raise ValueError("the format contains a control character (NUL, newline, tab...)")
    if fmt.startswith("."):
        raise ValueError("a name starting with '.' would be a hidden file; start with a directive")
    letters = _directives(fmt)
    unknown = sorted({d for d in letters if d not in STRFTIME_DIRECTIVES})
    if unknown:
        listed = " ".join(f"%{d}" for d in STRFTIME_DIRECTIVES)
        bad = " ".join(f"%{d}" for d in unknown)
        raise ValueError(f"unsupported directive {bad}; supported: {listed}")
    if all(d in _CONSTANT_DIRECTIVES for d in letters):
        raise ValueError(f"has no time directive, so every file would get the same name; {example}")


def validate_naming(mode: str, strftime: str | None = None) -> NamingRule:
    """Check a FileName mode (and its strftime format) and return the rule for file_name().

    Raises ValueError with a message saying what is wrong and how to fix it; the config loader
    prefixes it with the file, target and field.
    """
    if mode not in _MODES:
        import difflib  # only for this error's hint: not on every start

        close = difflib.get_close_matches(mode, KNOWN_FILENAME_MODES, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(
            f"is not a known FileName mode; {hint}known: {', '.join(KNOWN_FILENAME_MODES)}"
        )
    if mode == STRFTIME_MODE:
        _check_strftime(strftime)
    elif strftime is not None:
        raise ValueError(f"{mode} takes no argument (only {STRFTIME_MODE} takes a format)")
    return NamingRule(mode=mode, strftime=strftime)


def resolution_ns(rule: NamingRule) -> int:
    """Nanoseconds two start times must differ by to always get different names.

    The loader refuses a time split shorter than this, since files would overwrite each other.
    For strftime it is the finest directive's step (a format without the larger units, say `%M%S`,
    still repeats; that is the format's author's choice).
    """
    if rule.mode != STRFTIME_MODE:
        return _MODES[rule.mode][1]
    steps = [_STRFTIME_RESOLUTION_NS.get(d) for d in _directives(rule.strftime or "")]
    return min((s for s in steps if s is not None), default=365 * _DAY_NS)


def file_name(rule: NamingRule, start_ns: int, end_ns: int | None = None) -> str:
    """The `<name>` in `<Path>_<name>.pcap` for a file starting at `start_ns` (see module doc).

    Raises ValueError for a rule that did not come from validate_naming() or a name that would be
    unsafe, rather than writing a file somewhere unexpected.
    """
    entry = _MODES.get(rule.mode)
    if entry is None:
        raise ValueError(f"unknown FileName mode {rule.mode!r}")
    if rule.mode == STRFTIME_MODE:
        _check_strftime(rule.strftime)
    name = entry[0](rule, start_ns, start_ns if end_ns is None else end_ns)
    if not name or "/" in name or "\x00" in name or name.startswith("."):
        raise ValueError(f"FileName {rule.describe()} gave an unsafe file name {name!r}")
    return name
