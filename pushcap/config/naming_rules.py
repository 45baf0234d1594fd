"""The FileName grammar: which modes exist, what a strftime format may hold, how fine each is.

FMADIO's `--filename-*` modes plus `--filename-strftime "<fmt>"`. Validation lives here, in
the config layer, so a Lua file is judged in one pass; push/naming.py renders the names.
"""

from __future__ import annotations

from pushcap import defaults
from pushcap.config.model import NamingRule

NS_PER_S = 1_000_000_000

STRFTIME_MODE = "--filename-strftime"

# Directives `--filename-strftime` accepts: each gives the same text on every libc, none yields a
# `/` (unlike %D, %x, %c) or whitespace (unlike %e, %c). They format local time, as pcap_split's
# strftime does (push/naming.py); %N and %s are computed by pushcap.
STRFTIME_DIRECTIVES = "YyGgmdjUWVuwHIMSpbBaAFTzZsN%"

# Smallest step of each strftime directive, in ns: two windows at least this far apart never share
# a value of the finest directive of a format (except when daylight saving ends and local time
# repeats an hour: the shippers then add `_2`). Directives missing here (the zone's offset and
# name) never tell two windows apart.
_DAY_NS = 86400 * NS_PER_S
STRFTIME_RESOLUTION_NS = {
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
CONSTANT_DIRECTIVES = "%zZ"  # same text for every instant: they do not make a name unique


# Each mode and how far apart two start times must be to always get different names (ns);
# strftime's depends on its format (resolution_ns).
MODE_RESOLUTION_NS: dict[str, int] = {
    "--filename-epoch-sec-startend": NS_PER_S,
    "--filename-epoch-sec": NS_PER_S,
    "--filename-epoch-msec": 1_000_000,
    "--filename-epoch-usec": 1000,
    "--filename-epoch-nsec": 1,
    "--filename-timestr-HHMM": 60 * NS_PER_S,
    "--filename-tstr-HHMM": 60 * NS_PER_S,
    "--filename-timestr-HHMMSS": NS_PER_S,
    "--filename-tstr-HHMMSS": NS_PER_S,
    "--filename-timestr-HHMMSS_NS": 1,
    "--filename-tstr-HHMMSS_NS": 1,
    "--filename-tstr-HHMMSS_TZ": NS_PER_S,
    "--filename-tstr-HHMMSS_SUB": 1,
    STRFTIME_MODE: 0,  # per format
}

KNOWN_FILENAME_MODES: tuple[str, ...] = tuple(MODE_RESOLUTION_NS)


def directives(fmt: str) -> list[str]:
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


def check_strftime(fmt: str | None) -> None:
    """Raise ValueError (what is wrong, the fix) unless `fmt` always gives a safe, varying name."""
    example = f'{STRFTIME_MODE} "%Y%m%d_%H%M%S"'
    if not fmt:
        raise ValueError(f"needs a format after {STRFTIME_MODE}, e.g. {example}")
    if len(fmt) > defaults.MAX_STRFTIME_CHARS:
        raise ValueError(f"the format is longer than {defaults.MAX_STRFTIME_CHARS} characters")
    if "/" in fmt:
        raise ValueError(
            "a '/' in the format would put files in subdirectories; use '-' or '_' instead"
        )
    if any(ord(c) < 0x20 or c == "\x7f" for c in fmt):
        raise ValueError("the format contains a control character (NUL, newline, tab...)")
    if fmt.startswith("."):
        raise ValueError("a name starting with '.' would be a hidden file; start with a directive")
    letters = directives(fmt)
    unknown = sorted({d for d in letters if d not in STRFTIME_DIRECTIVES})
    if unknown:
        listed = " ".join(f"%{d}" for d in STRFTIME_DIRECTIVES)
        bad = " ".join(f"%{d}" for d in unknown)
        raise ValueError(f"unsupported directive {bad}; supported: {listed}")
    if all(d in CONSTANT_DIRECTIVES for d in letters):
        raise ValueError(f"has no time directive, so every file would get the same name; {example}")


def validate_naming(mode: str, strftime: str | None = None) -> NamingRule:
    """Check a FileName mode (and its strftime format) and return the rule for file_name().

    Raises ValueError with a message saying what is wrong and how to fix it; the config loader
    prefixes it with the file, target and field.
    """
    if mode not in MODE_RESOLUTION_NS:
        import difflib  # only for this error's hint: not on every start

        close = difflib.get_close_matches(mode, KNOWN_FILENAME_MODES, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(
            f"is not a known FileName mode; {hint}known: {', '.join(KNOWN_FILENAME_MODES)}"
        )
    if mode == STRFTIME_MODE:
        check_strftime(strftime)
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
        return MODE_RESOLUTION_NS[rule.mode]
    steps = [STRFTIME_RESOLUTION_NS.get(d) for d in directives(rule.strftime or "")]
    return min((s for s in steps if s is not None), default=365 * _DAY_NS)
