"""Where an archive's files and indexes are, and which files belong to a series.

A series writes `<prefix>_<name>[_N]<FileSuffix>` in its folder (push/naming.py); its indexes go
to `<folder>/.pushcap-index/<data file name>.parquet`, a hidden folder that no `<Path>_*` glob
matches (Path's base may not start with '.'), written as `.<data file name>.parquet.part` there
first and renamed once complete. The index of a file is found by the file's name alone, so a
folder copied elsewhere, or to a remote (`rclone copy`), keeps its indexes usable.

Which files are a series': the name after `<prefix>_` must be one its FileName mode writes,
with the `_N` a taken name gets. A glob of `<prefix>_*` alone would also match another target's
`<prefix>_tcp_...` files, and retention must never delete those.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pushcap import defaults
from pushcap.config.model import NamingRule, TargetConfig
from pushcap.config.naming_rules import STRFTIME_MODE

PART_SUFFIX = ".part"
# Capture files a `--dir` query reads: every name that ends so (hidden files never).
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcap.lz4", ".pcap.zst",
                    ".pcap.zstd")

_MODE_PATTERNS = {
    "--filename-epoch-sec-startend": r"\d+-\d+",
    "--filename-epoch-sec": r"\d+",
    "--filename-epoch-msec": r"\d+",
    "--filename-epoch-usec": r"\d+",
    "--filename-epoch-nsec": r"\d+",
    "--filename-timestr-HHMM": r"\d{8}_\d{4}",
    "--filename-tstr-HHMM": r"\d{8}_\d{4}",
    "--filename-timestr-HHMMSS": r"\d{8}_\d{6}",
    "--filename-tstr-HHMMSS": r"\d{8}_\d{6}",
    "--filename-timestr-HHMMSS_NS": r"\d{8}_\d{6}\.\d{3}\.\d{3}\.\d{3}",
    "--filename-tstr-HHMMSS_NS": r"\d{8}_\d{6}\.\d{3}\.\d{3}\.\d{3}",
    "--filename-tstr-HHMMSS_SUB": r"\d{8}_\d{2}-\d{2}-\d{2}\.\d{9}",
    "--filename-tstr-HHMMSS_TZ": r"\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}",
}
# What each strftime directive writes (C locale), as a pattern.
_DIRECTIVE_PATTERNS = {
    **dict.fromkeys("YGsN", r"-?\d+"), **dict.fromkeys("ymdHIMSjUWVuwyg", r"\d+"),
    **dict.fromkeys("bBaApZ", r"[A-Za-z0-9+-]+"), "F": r"-?\d+-\d{2}-\d{2}",
    "T": r"\d{2}:\d{2}:\d{2}", "z": r"[+-]\d{4}", "%": "%",
}


def index_dir(folder: Path) -> Path:
    return folder / defaults.INDEX_DIR_NAME


def index_path(data: Path) -> Path:
    """The index of data file `data`."""
    return index_dir(data.parent) / (data.name + defaults.INDEX_SUFFIX)


def index_part(data: Path) -> Path:
    """Where the index of `data` is written before it is complete (hidden)."""
    return index_dir(data.parent) / f".{data.name}{defaults.INDEX_SUFFIX}{PART_SUFFIX}"


def data_of_index(index: Path) -> Path | None:
    """The data file an index (or an index part) is for, or None for another file."""
    name = index.name
    if name.startswith(".") and name.endswith(defaults.INDEX_SUFFIX + PART_SUFFIX):
        name = name[1:-len(PART_SUFFIX)]
    if name.startswith(".") or not name.endswith(defaults.INDEX_SUFFIX):
        return None
    return index.parent.parent / name[:-len(defaults.INDEX_SUFFIX)]


def name_pattern(naming: NamingRule) -> str:
    """A regular expression of the `<name>` part FileName `naming` writes."""
    if naming.mode != STRFTIME_MODE:
        return _MODE_PATTERNS[naming.mode]
    fmt, out, i = naming.strftime or "", [], 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            out.append(_DIRECTIVE_PATTERNS.get(fmt[i + 1], r"[^/]+?"))
            i += 2
        else:
            out.append(re.escape(fmt[i]))
            i += 1
    return "".join(out)


class SeriesFiles:
    """The published files of one series: `<prefix>_<name>[_N]<suffix>` in prefix's folder.

    `any_interface`: also `<prefix>_<interface>_<name>...`, every series of a target whose
    interfaces are not known (a query without the daemon's TOML). Another target whose Path is
    `<prefix>_<word>` would then look like one of its interfaces: name the config to avoid it.
    """

    def __init__(self, prefix: Path, naming: NamingRule, suffix: str,
                 any_interface: bool = False) -> None:
        self.prefix = prefix
        self.folder = prefix.parent
        self.suffix = suffix
        interface = r"(?:[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}_)?" if any_interface else ""
        self._pattern = re.compile(re.escape(prefix.name + "_") + interface
                                   + f"(?:{name_pattern(naming)})" + r"(?:_\d+)?"
                                   + re.escape(suffix))

    def owns(self, name: str) -> bool:
        return self._pattern.fullmatch(name) is not None

    def listing(self) -> list[os.DirEntry]:
        """The series' files now on disk (entries of one directory scan), in no order."""
        try:
            with os.scandir(self.folder) as entries:
                return [e for e in entries if self.owns(e.name) and e.is_file()]
        except FileNotFoundError:
            return []

    def paths(self) -> list[Path]:
        return [Path(e.path) for e in self.listing()]


def folder_files(folder: Path) -> list[Path]:
    """The capture files of a folder (`pushcap query --dir`): names ending in a capture suffix,
    hidden files never."""
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries
                    if not e.name.startswith(".") and e.name.endswith(CAPTURE_SUFFIXES)
                    and e.is_file()]
    except FileNotFoundError:
        return []


def target_series(target: TargetConfig, interface: str, several: bool) -> SeriesFiles:
    """The files a File target writes for `interface` (`several`: it reads more than one, so
    its series is `<Path>_<interface>`, as supervisor.consumers.series_prefix names it). For
    a trigger reaching into the archive of an interface's indexed targets."""
    prefix = Path(f"{target.path}_{interface}" if several else target.path)
    return SeriesFiles(prefix, target.naming, target.file_suffix)
