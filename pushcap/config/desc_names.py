"""A target's Desc where it becomes a file name or a log field.

FMADIO takes any text as Desc (its own example is `"port80 zstd"`) and names the target's log
file after it. pushcap keeps the Desc as written wherever it is shown as text (check, status,
the status page, metric labels, which prometheus-client escapes), and derives two safe forms:
- `file_name`: for `push_<Desc>.log`, the rclone spool folder and thread names: every character
  other than a letter, digit, `.`, `_` or `-` becomes `_`, a leading `.` too (no hidden file),
  cut to defaults.DESC_FILE_NAME_MAX_CHARS. Two Descs with one file name are refused at load
  (target_unique.py), so two targets never share a log file or a spool.
- `log_value`: the value of `target=` in a key=value log line: the Desc itself when it is one
  word of safe characters (every Desc pushcap accepted before), else JSON-quoted
  (`target="port80 zstd"`), so a log parser never splits it.
"""

from __future__ import annotations

import re

from pushcap import defaults

_UNSAFE = re.compile(r"[^\w.-]")
_PLAIN = re.compile(r"[\w.-]+")


def desc_file_name(desc: str) -> str:
    """The Desc as a file name component (see the module docstring)."""
    name = _UNSAFE.sub("_", desc)
    if name.startswith("."):
        name = "_" + name[1:]
    return name[: defaults.DESC_FILE_NAME_MAX_CHARS] or "_"


def log_value(text: str) -> str:
    """`text` as the value of a key=value log field."""
    if _PLAIN.fullmatch(text):
        return text
    import json  # a Desc that is not one plain word: not in every start-up

    return json.dumps(text, ensure_ascii=False)
