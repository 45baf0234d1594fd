"""PipeCmd, FMADIO's compressor command line, parsed once into a Codec that push/ executes.

FMADIO pipes each finished file through `PipeCmd` in a shell. pushcap never runs it: it reads the
line as one of the known compressor commands and compresses in-process (push/compress.py), so a
config file cannot start a program. This module is the only reader of that grammar; consumers get
a frozen Codec (or None for no compression) and never see the text.

The grammar, a program name and then whitespace-separated options:

    cat                                   no compression (also: PipeCmd absent)
    gzip -c [-1..-9]                      default level 6, like gzip
    lz4  -c [-1..-12]                     default level 1, like lz4
    zstd -c [-1..-19] [-T0..-T256]        default level 3, one thread; -T0 = one per core

Decisions, where a stricter or a looser rule was possible (earlier, config and push/compress.py
each had a grammar and they disagreed; this is the one rule now):
- Levels are each tool's own range without extra flags, so any level an operator has used with
  the tool means the same here. lz4 therefore goes to -12 (its `--best`; -10..-12 are real
  high-compression levels that lz4.frame implements), not only -9. zstd stops at -19: -20..-22
  need `--ultra` and far more memory per file, and are refused rather than silently clamped.
- zstd takes any `-T<n>` up to 256 (libzstd's worker limit on 64-bit; zstd clamps larger counts
  silently, so they are refused instead), not only -T0: on a capture host an operator caps the
  compression threads (`-T2`) so they leave cores to capture, which `-T0` (every core) does not.
- Options may come in any order (`gzip -9 -c`, `zstd -c -T0 -3`), as the tools take them; each at
  most once, since a repeated level would be a silent "last one wins".
- `-c` (write to standard output) is required: every documented form has it, and it is what makes
  the line a pipe stage on FMADIO, where the same line runs in a shell.
- Only these exact spellings: no bundled flags (`-c9`), long options (`--best`, `--fast`),
  paths (`/bin/gzip`) or upper case, so nothing is accepted whose meaning pushcap would have to
  guess. Shell syntax (`;`, `|`, quotes...) is refused with a message saying why.
"""

from __future__ import annotations

import re

from pushcap.config.field_check import FieldError
from pushcap.config.record import record

# codec -> (lowest level, highest level, default level): each command-line tool's own
LEVELS: dict[str, tuple[int, int, int]] = {"gzip": (1, 9, 6), "lz4": (1, 12, 1), "zstd": (1, 19, 3)}
MAX_ZSTD_THREADS = 256  # ZSTDMT_NBWORKERS_MAX of a 64-bit libzstd
_FORMS = {
    "gzip": "gzip -c [-1..-9]",
    "lz4": "lz4 -c [-1..-12]",
    "zstd": f"zstd -c [-1..-19] [-T0..-T{MAX_ZSTD_THREADS}]",
}
KNOWN = "cat, " + ", ".join(_FORMS.values())
_NO_SHELL = "pushcap compresses in-process and never runs a command from the config"
_PLAIN_RE = re.compile(r"[A-Za-z0-9 -]+")  # letters, digits, '-' and spaces: no shell syntax
_NUMBER_RE = re.compile(r"-(T?)(\d+)")


@record(frozen=True)
class Codec:
    """A parsed PipeCmd: what to compress with. Invalid values cannot be built (ValueError), so
    push/ can execute any Codec it is given without checking it again.

    `level` and `threads` are as written: None when the command line does not give them (see
    `effective_level`); `threads` is zstd's `-T<n>`, 0 meaning one thread per core.
    """

    name: str  # "gzip", "lz4" or "zstd"
    level: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.name not in LEVELS:
            raise ValueError(f"unknown codec {self.name!r} (known: {', '.join(LEVELS)})")
        low, high, _ = LEVELS[self.name]
        if self.level is not None and not low <= self.level <= high:
            raise ValueError(f"{self.name} level {self.level} is outside {low}..{high}")
        if self.threads is not None and (
            self.name != "zstd" or not 0 <= self.threads <= MAX_ZSTD_THREADS
        ):
            raise ValueError(f"{self.name} cannot take threads={self.threads}")

    @property
    def effective_level(self) -> int:
        """The level to compress at: the one written, else the tool's default (gzip 6, lz4 1,
        zstd 3), so a file compressed here is what the tool would have made of the same line."""
        return self.level if self.level is not None else LEVELS[self.name][2]

    def command(self) -> str:
        """The command line in its canonical spelling (`zstd -c -19 -T0`), for messages."""
        words = [self.name, "-c"]
        if self.level is not None:
            words.append(f"-{self.level}")
        if self.threads is not None:
            words.append(f"-T{self.threads}")
        return " ".join(words)

    def describe(self) -> str:
        """For `pushcap check` and the start-up log: `zstd level 3 threads=per-core`."""
        if self.threads is None:
            threads = ""
        else:
            threads = f" threads={self.threads or 'per-core'}"
        return f"{self.name} level {self.effective_level}{threads}"


def parse_codec(text: str) -> Codec | None:
    """The Codec of a PipeCmd line (see the module docstring), or None for `cat`.

    Raises FieldError with what is wrong and the accepted forms; `text` has been through
    field_check.field_text (a non-empty string without control characters).
    """
    if not _PLAIN_RE.fullmatch(text):
        odd = next(c for c in text if not _PLAIN_RE.fullmatch(c))
        raise FieldError(
            f"has {odd!r}, which is shell syntax or a path: {_NO_SHELL}; write one of: {KNOWN}"
        )
    name, *options = text.split()
    if name == "cat":
        if options:
            raise FieldError(f"cat takes no arguments (it means: no compression); {_NO_SHELL}")
        return None
    if name not in LEVELS:
        raise FieldError(f"not a known compressor (known: {KNOWN}); {_NO_SHELL}")
    form = _FORMS[name]
    given: dict[str, str] = {}  # what an option sets -> the option as written
    for option in options:
        number = _NUMBER_RE.fullmatch(option)
        if option == "-c":
            what = "-c"
        elif number and not number[1]:
            what = "a level"
        elif number and name == "zstd":
            what = "a thread count"
        else:
            raise FieldError(f'{name} option "{option}" is not accepted: write {form}; {_NO_SHELL}')
        if what in given:
            raise FieldError(f'gives {what} twice ("{given[what]}", "{option}"); write {form}')
        given[what] = option
    if "-c" not in given:
        raise FieldError(f"needs -c (compress to standard output, as a pipe does): write {form}")
    return Codec(name, _level(name, given.get("a level")), _threads(given.get("a thread count")))


def _level(name: str, option: str | None) -> int | None:
    """The level of `-<n>`, checked against the tool's range (no leading zeros: `-09`)."""
    if option is None:
        return None
    low, high, _ = LEVELS[name]
    if option[1:] not in {str(n) for n in range(low, high + 1)}:
        raise FieldError(f'"{option}" is not a {name} level: write -{low}..-{high}')
    return int(option[1:])


def _threads(option: str | None) -> int | None:
    """The count of zstd's `-T<n>`, 0 to MAX_ZSTD_THREADS (no leading zeros: `-T04`)."""
    if option is None:
        return None
    if option[2:] not in {str(n) for n in range(MAX_ZSTD_THREADS + 1)}:
        raise FieldError(
            f'"{option}" is not a thread count: write -T1..-T{MAX_ZSTD_THREADS}, or -T0 for one'
            " per core"
        )
    return int(option[2:])
