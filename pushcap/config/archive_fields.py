"""The fields of a File target's archive: Keep (retention) and Index (a Parquet index per file).

`Keep = "--keep-bytes 500e9 --keep-files 1000 --keep-time 86400e9 --keep-free 10"` takes any of
the four options, each once, in FMADIO's units (bytes, files, nanoseconds, like Split) plus a
free-space floor in percent of the file system (Stenographer's DiskFreePercentage). `Index =
true` writes a Parquet index beside each published file (pushcap/archive/). Both are for File
targets only: an rclone target's files leave the host (a remote keeps them by its own lifecycle
rules), and a flows target writes no files; a setting that could not act is refused, never
ignored. Kept apart from targets.py, which assembles a target from these rules.
"""

from __future__ import annotations

from pushcap.config.field_check import FieldError, field_text
from pushcap.config.file_fields import whole_number
from pushcap.config.model import KeepRule

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any

_KEEP_EXAMPLE = '"--keep-bytes 500e9 --keep-time 86400e9" (any of --keep-bytes, --keep-files, ' \
    '--keep-time <ns>, --keep-free <percent>)'
_KEEP_OPTIONS = {"--keep-bytes": "max_bytes", "--keep-files": "max_files",
                 "--keep-time": "max_age_ns", "--keep-free": "min_free_percent"}
_MAX_LIMIT = 2**63 - 1


def parse_keep(value: Any) -> KeepRule | None:
    """The retention rule, or None when Keep is absent (nothing is ever deleted)."""
    text = field_text(value, f"Keep = {_KEEP_EXAMPLE}", required=False)
    if text is None:
        return None
    words = text.split()
    if len(words) % 2:
        raise FieldError(f"each option takes a value; write e.g. Keep = {_KEEP_EXAMPLE}")
    found: dict[str, int | float] = {}
    for option, amount in zip(words[0::2], words[1::2], strict=True):
        name = _KEEP_OPTIONS.get(option)
        if name is None:
            raise FieldError(f"{option!r} is not a Keep option; write e.g. Keep = {_KEEP_EXAMPLE}")
        if name in found:
            raise FieldError(f"{option} is given twice; give each option once")
        found[name] = _percent(amount) if name == "min_free_percent" else _limit(option, amount)
    if found.get("max_age_ns") is not None and found["max_age_ns"] < 10**9:
        hint = f"; did you mean {found['max_age_ns']}e9 ({found['max_age_ns']} s)?" \
            if found["max_age_ns"] <= 10**7 else ""
        raise FieldError(f"--keep-time is {found['max_age_ns']} ns: it is in nanoseconds, like "
                         f"--split-time, and must be at least 1e9 (1 s){hint}")
    return KeepRule(**found)


def _limit(option: str, text: str) -> int:
    amount = whole_number(text) if len(text) <= 64 else None
    if amount is None or amount <= 0 or amount > _MAX_LIMIT:
        unit = {"--keep-bytes": "bytes", "--keep-files": "files"}.get(option, "ns")
        raise FieldError(f"{option} {text!r} must be a positive whole number of {unit} below "
                         "2^63, e.g. 500e9")
    return amount


def _percent(text: str) -> float:
    try:
        percent = float(text.removesuffix("%"))
    except ValueError:
        percent = -1.0
    if not 0 < percent < 100:
        raise FieldError(f"--keep-free {text!r} must be a percentage of the file system above 0 "
                         "and below 100, e.g. --keep-free 10")
    return percent


def parse_index(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise FieldError("must be true (a Parquet index beside each published file, for "
                         "`pushcap query`) or false, e.g. Index = true")
    return value


def refuse_for_rclone(value: Any) -> None:
    raise FieldError("is for File targets only: an rclone target's files leave this host (keep "
                     "them with the remote's own lifecycle rules); remove it")
