"""File names of pushed pcap files: FMADIO's `FileName` modes, as pcap_split's main.c prints them.

A target writes `<Path>_<name>.pcap`; this module only makes `<name>`. `start_ns` is the window
start for a time split (windows are aligned, so it is a multiple of the split) or the first packet's
time for a byte split; `end_ns` is `start_ns + split` for a time split, or the last packet's time
for a byte split (None means "same as start").

pushcap replaces FMADIO, so its names are FMADIO's, byte for byte: an operator's scripts that
parse or glob them keep working. pcap_split formats the time-string and strftime modes in local
time (`localtime`, so the `TZ` environment variable, else /etc/localtime); so does pushcap, through
the same C library call (`time.localtime`), not zoneinfo: the same zone rules, the same `TZ`
syntax (`Asia/Kolkata`, POSIX `IST-5:30`, `:/path`) and the same fallback when `TZ` is unset,
with daylight saving decided per instant. The zone is the process's, fixed when it starts (as
pcap_split's); on a UTC machine every name is what it was. The epoch modes never depend on it.

| mode | pcap_split's format (c = localtime of the start second) |
| --- | --- |
| `--filename-epoch-sec[-startend]` | `<start s>` (`-<end s>`) |
| `--filename-epoch-msec/-usec/-nsec` | the start in ms, µs, ns |
| `--filename-tstr-HHMM` | `YYYYMMDD_HHMM` |
| `--filename-tstr-HHMMSS` | `YYYYMMDD_HHMMSS` |
| `--filename-tstr-HHMMSS_NS` | `YYYYMMDD_HHMMSS.mmm.uuu.nnn` |
| `--filename-tstr-HHMMSS_SUB` | `YYYYMMDD_HH-MM-SS.nnnnnnnnn` (dashes) |
| `--filename-tstr-HHMMSS_TZ` | `YYYY-MM-DD_HH:MM:SS±HH:MM` (the zone's offset) |
| `--filename-strftime "<fmt>"` | the C library's strftime of c |

`--filename-timestr-*` (the name FMADIO's manual uses) are the same as `--filename-tstr-*`.
Where pushcap deliberately differs, FMADIO's name is a bug or unsafe:

- `_TZ` offset: pcap_split prints the offset's leftover seconds as its minutes (`+05:1800` for
  India, `-03:1800` for Newfoundland); pushcap writes `+05:30`. pcap_split also takes the offset
  in force when the file is opened, not at the start instant, so a replay of summer traffic in
  winter would pair 19:59:58 (EDT) with -05:00; pushcap's offset is always the start instant's.
- pcap_split divides the nanosecond time as a double (`(u64)(TS / 1e9)`, also for `localtime`),
  so a start within ~128 ns below a second (ms, µs) boundary is named after the next one, e.g.
  `..._235100.999.999.950`; pushcap's integer arithmetic is exact. Only byte splits (a first
  packet's time) can tell the difference; aligned time-split windows are exact either way.
- `-startend` with a byte split: pcap_split's end is the previous file's start (0 for the first
  file); pushcap's is the last packet's second.
- strftime: pushcap adds `%N` (9-digit nanoseconds; pcap_split leaves `%N` as is) and accepts only
  a portable set of directives and no `/` (config/naming_rules.py): a name never creates folders.
- Local time repeats an hour when daylight saving ends, so `YYYYMMDD_HHMMSS` names can repeat;
  pcap_split's rename then replaces the earlier file, pushcap's shippers take `_2` instead.

A name never contains `/` or NUL and never starts with `.` (a leading dot would hide the file and
collide with the hidden names files are written under before they are complete).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pushcap.config.model import NamingRule
from pushcap.config.naming_rules import NS_PER_S, STRFTIME_MODE, check_strftime


def _local(start_ns: int) -> time.struct_time:
    """The start second in the process's local time (localtime_r: TZ as the process started)."""
    return time.localtime(start_ns // NS_PER_S)


def _sub_ns(start_ns: int) -> int:
    return start_ns % NS_PER_S


def _day(t: time.struct_time, sep: str = "") -> str:
    return f"{t.tm_year:04d}{sep}{t.tm_mon:02d}{sep}{t.tm_mday:02d}"


def _hhmm(start_ns: int) -> str:
    t = _local(start_ns)
    return f"{_day(t)}_{t.tm_hour:02d}{t.tm_min:02d}"


def _hhmmss(start_ns: int, sep: str = "") -> str:
    t = _local(start_ns)
    return f"{_day(t)}_{t.tm_hour:02d}{sep}{t.tm_min:02d}{sep}{t.tm_sec:02d}"


def _hhmmss_ns(start_ns: int) -> str:
    sub = _sub_ns(start_ns)
    return f"{_hhmmss(start_ns)}.{sub // 1_000_000:03d}.{sub // 1000 % 1000:03d}.{sub % 1000:03d}"


def _hhmmss_tz(start_ns: int) -> str:
    """`YYYY-MM-DD_HH:MM:SS±HH:MM`, the offset being the one in force at that instant."""
    t = _local(start_ns)
    offset_s = t.tm_gmtoff or 0
    sign = "-" if offset_s < 0 else "+"
    hours, rest_s = divmod(abs(offset_s), 3600)
    return (f"{_day(t, '-')}_{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            f"{sign}{hours:02d}:{rest_s // 60:02d}")


_Formatter = Callable[[NamingRule, int, int], str]

# mode -> formatter(rule, start_ns, end_ns); config/naming_rules.py holds the modes' grammar
_MODES: dict[str, _Formatter] = {
    "--filename-epoch-sec-startend": lambda r, s, e: f"{s // NS_PER_S}-{e // NS_PER_S}",
    "--filename-epoch-sec": lambda r, s, e: str(s // NS_PER_S),
    "--filename-epoch-msec": lambda r, s, e: str(s // 1_000_000),
    "--filename-epoch-usec": lambda r, s, e: str(s // 1000),
    "--filename-epoch-nsec": lambda r, s, e: str(s),
    "--filename-timestr-HHMM": lambda r, s, e: _hhmm(s),
    "--filename-tstr-HHMM": lambda r, s, e: _hhmm(s),
    "--filename-timestr-HHMMSS": lambda r, s, e: _hhmmss(s),
    "--filename-tstr-HHMMSS": lambda r, s, e: _hhmmss(s),
    "--filename-timestr-HHMMSS_NS": lambda r, s, e: _hhmmss_ns(s),
    "--filename-tstr-HHMMSS_NS": lambda r, s, e: _hhmmss_ns(s),
    "--filename-tstr-HHMMSS_TZ": lambda r, s, e: _hhmmss_tz(s),
    "--filename-tstr-HHMMSS_SUB": lambda r, s, e: f"{_hhmmss(s, '-')}.{_sub_ns(s):09d}",
    STRFTIME_MODE: lambda r, s, e: _render_strftime(r.strftime or "", s),
}


def _render_strftime(fmt: str, start_ns: int) -> str:
    """Expand a validated format in local time, directive by directive: %N and %s are computed
    here (%N is pushcap's), the others are the C library's strftime, as in pcap_split; literal
    text is copied, so it never meets the C library's encoding."""
    local = _local(start_ns)
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
            out.append(time.strftime(f"%{letter}", local))
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
