"""The fields that shape a File or rclone target's files: Split, FileName, PipeCmd, FileSuffix.

These are the fields Mode flows refuses (targets.FILE_ONLY_FIELDS): when a file is cut (a time or a
byte split), how it is named (FileName, which must not be coarser than a time split, or files would
overwrite each other), and how it is compressed (PipeCmd, only known compressor command lines,
never executed: its grammar is codec.py's, the one place that reads it) with a FileSuffix that
names that compression. Kept apart from targets.py, which assembles a target from these rules and
the ones every mode shares.
"""

from __future__ import annotations

import re

from pushcap import defaults
from pushcap.config.codec import Codec, parse_codec
from pushcap.config.field_check import FieldError, field_text
from pushcap.config.model import NamingRule, SplitKind, SplitRule
from pushcap.config.naming_rules import STRFTIME_MODE, resolution_ns, validate_naming

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any

_MAX_SPLIT = 2**63 - 1
_NUMBER_RE = re.compile(r"(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")
_MAX_NUMBER_CHARS = 64  # far more than any split needs; int() refuses 4300 digits
_MAX_EXPONENT = 100  # 10^100 is far past any split (below 2^63); keeps 10**n cheap


def whole_number(text: str) -> int | None:
    """The exact value of `60e9`, `1.5e9` or `1000000` when it is a whole number, else None
    (also for exponents past 100). Integer arithmetic on the digits: no float rounding, and no
    `decimal` import, a millisecond of every start."""
    match = _NUMBER_RE.fullmatch(text)
    if not match or not (match[1] or match[2]):
        return None
    mantissa = int((match[1] or "") + (match[2] or ""))
    exponent = int(match[3] or 0) - len(match[2] or "")
    if mantissa == 0:
        return 0
    if exponent > _MAX_EXPONENT or -exponent > len(str(mantissa)):
        return None  # far too big, or a fraction
    if exponent >= 0:
        return mantissa * 10**exponent
    value, rest = divmod(mantissa, 10**-exponent)
    return None if rest else value
_SUFFIX_RE = re.compile(r"\.[A-Za-z0-9._-]{1,20}")
# compressor -> (default FileSuffix, endings a FileSuffix may have); None = no compression
_SUFFIXES: dict[str | None, tuple[str, tuple[str, ...]]] = {
    None: (".pcap", ()),
    "gzip": (".pcap.gz", (".gz", ".gzip")),
    "lz4": (".pcap.lz4", (".lz4",)),
    "zstd": (".pcap.zstd", (".zst", ".zstd")),
}
_COMPRESSED_ENDINGS = tuple(e for _, ends in _SUFFIXES.values() for e in ends)


def parse_split(value: Any) -> SplitRule:
    example = '"--split-time 60e9" (one minute) or "--split-byte 1e9" (1 GB)'
    text = field_text(value, example)
    assert text is not None
    words = text.split()
    kinds = {"--split-time": SplitKind.TIME, "--split-byte": SplitKind.BYTE}
    if len(words) != 2 or words[0] not in kinds:
        raise FieldError(f"must be {example}")
    kind = kinds[words[0]]
    unit = "ns" if kind is SplitKind.TIME else "bytes"
    if len(words[1]) > _MAX_NUMBER_CHARS or not _NUMBER_RE.fullmatch(words[1]) \
            or not any(c.isdigit() for c in words[1]):
        raise FieldError(f"{words[1]!r} is not a number of {unit}; write e.g. 60e9 or 1000000")
    amount = whole_number(words[1])
    if amount is None or amount <= 0 or amount > _MAX_SPLIT:
        raise FieldError(f"must be a positive whole number of {unit} below 2^63")
    if kind is SplitKind.TIME and amount < defaults.MIN_SPLIT_NS:
        hint = f"; did you mean {amount}e9 ({amount} s)?" if amount <= 86400 else ""
        raise FieldError(
            f"is {amount} ns: --split-time is in nanoseconds and must be at least 1e6 (1 ms),"
            f" or files would hold almost nothing{hint}"
        )
    if kind is SplitKind.BYTE and amount < defaults.MIN_SPLIT_BYTES:
        raise FieldError(
            f"is {amount} bytes: must be at least {defaults.MIN_SPLIT_BYTES}, since each file"
            " carries a 24-byte header and whole packets, so smaller splits make a file per packet;"
            " write e.g. --split-byte 1e9"
        )
    return SplitRule(kind, amount)


def parse_filename(value: Any, split: SplitRule | None) -> NamingRule:
    text = field_text(value, f'FileName = "{defaults.DEFAULT_FILENAME}"')
    assert text is not None
    mode, _, rest = text.partition(" ")
    fmt: str | None = rest.strip() or None
    if fmt and fmt[0] in "\"'":
        if len(fmt) < 2 or fmt[-1] != fmt[0]:
            raise FieldError(f"the format opens with {fmt[0]} but does not end with it")
        fmt = fmt[1:-1]
    elif mode == STRFTIME_MODE and fmt is not None and " " in fmt:
        raise FieldError("a strftime format with spaces must be quoted")
    try:
        rule = validate_naming(mode, "" if mode == STRFTIME_MODE and fmt is None else fmt)
    except ValueError as e:
        raise FieldError(str(e)) from None
    step = resolution_ns(rule)
    if split is not None and split.kind is SplitKind.TIME and split.value < step:
        raise FieldError(
            f"names files to {step / 1e9:g} s, but Split starts a file every"
            f" {split.value / 1e9:g} s, so files would overwrite each other; use a finer FileName"
            " (e.g. --filename-tstr-HHMMSS_NS) or a longer --split-time"
        )
    return rule


def parse_pipe_cmd(value: Any) -> Codec | None:
    """The Codec to compress with, or None for no compression (absent, blank or `cat`); the
    grammar and its reasons are codec.py's. Spaces around it are dropped: FMADIO's generator
    writes `" gzip -c "`, and its shell reads it so."""
    if isinstance(value, bytes):
        value = value.strip()
        if not value:
            return None
    text = field_text(value, 'PipeCmd = "gzip -c -1" (or nil for plain .pcap)', required=False)
    return None if text is None else parse_codec(text)


def _suffix_text(value: Any, default: str) -> str | None:
    """FileSuffix as written, with its dot: FMADIO's documentation writes `"pcap.gz"`."""
    if isinstance(value, bytes):
        value = value.strip()
        if not value:
            return None  # FMADIO's generator writes "" for the default
        if not value.startswith(b"."):
            value = b"." + value
    return field_text(value, f'FileSuffix = "{default}"', required=False)


def implied_codec(value: Any) -> Codec | None:
    """The compression a FileSuffix names when there is no PipeCmd (`.pcap.gz`: gzip at its
    default level), else None. FMADIO's documentation gives `FileSuffix = "pcap.gz"` alone as
    "writing a gzip compressed PCAP file"."""
    suffix = _suffix_text(value, ".pcap")
    if suffix is None:
        return None
    for name, (_, endings) in _SUFFIXES.items():
        if name is not None and endings and suffix.endswith(endings):
            return Codec(name)
    return None


def parse_suffix(value: Any, codec: Codec | None) -> str:
    """FileSuffix, defaulting to the compressor's; it must name the compression it holds."""
    default, endings = _SUFFIXES[codec.name if codec else None]
    suffix = _suffix_text(value, default)
    if suffix is None:
        return default
    if not _SUFFIX_RE.fullmatch(suffix):
        raise FieldError(
            "must be '.' then 1-20 letters, digits, '.', '_' or '-', e.g. \".pcap\" or \".pcap.gz\""
        )
    if codec is None:
        wrong = next((e for e in _COMPRESSED_ENDINGS if suffix.endswith(e)), None)
        if wrong:
            raise FieldError(
                f"ends in {wrong} but there is no PipeCmd, so files are plain pcap; add e.g."
                f' PipeCmd = "gzip -c" or use FileSuffix = "{default}"'
            )
    elif not suffix.endswith(endings):
        raise FieldError(
            f'does not match PipeCmd "{codec.command()}", which writes {codec.name} data: end it'
            f' with {" or ".join(endings)}, e.g. FileSuffix = "{default}"'
        )
    return suffix
