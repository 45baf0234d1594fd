"""Everything a File series has written so far, each packet once: its published files and the
parts it has not published yet, for a reader that must not miss the newest packets (a trigger
joining the archive to the ring: the ring no longer holds what it evicted, and an open part
may be the only place that still does).

A published file is read by its name; a part (the open `.part` the series writes into, or one
closed and waiting to be finished, or its `.zdone` mark where compressing on a file system
without hard links) is opened at once and read through its descriptor (`/proc/self/fd/N`), so
publishing it meanwhile (a rename) takes nothing away. A part holds whole records up to what
the series flushed to the OS (every poll); a record cut at its end by a write in progress is
left out, as at any cut file's end. Parts are to be read, never mapped (`parts`): a series cuts
a part back after a failed write, and a mapped page past the new end would be SIGBUS.

Publishing makes one file appear under two names for a moment (push/ship.py): a plain part is
hard-linked to its final name and then unlinked, a compressed one's `.ztmp` copy is linked to
the final name while the part is still there, and without hard links the part is renamed to a
`.zdone` mark before the copy is renamed into place. So a part is left out when it is, or its
`.ztmp` is, the same inode as a published file, and a mark when its `.ztmp` is gone. One
directory scan is not a snapshot (a rename can pass it unseen), so the folder is scanned before
and after the parts are opened, until both scans agree.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pushcap import defaults
from pushcap.archive.layout import PART_SUFFIX, SeriesFiles

# As push/compress.py names them (tests/test_archive_written.py holds the two to each other).
COMPRESS_TMP_SUFFIX = ".ztmp"
COMPRESSED_MARK_SUFFIX = ".zdone"
# The smallest part worth reading: a file header and one record header.
_MIN_PART_BYTES = 24 + 16


@dataclass
class _Scan:
    published: dict[str, tuple[int, int]]  # name -> (inode, mtime_ns)
    parts: dict[str, tuple[int, int]]  # part or mark name -> (start_ns, n) for the order
    copies: dict[str, int]  # `.ztmp` name -> inode

    def names(self) -> tuple[frozenset, frozenset, frozenset]:
        return frozenset(self.published), frozenset(self.parts), frozenset(self.copies)


@dataclass
class WrittenFiles:
    """The files to read, in the order the series wrote them (published by when they were
    finished, then parts by their start); parts are `/proc/self/fd/N` paths, valid until
    `close()`."""

    paths: list[Path] = field(default_factory=list)
    parts: list[Path] = field(default_factory=list)  # of them, the parts (still written to)
    notes: list[str] = field(default_factory=list)
    _fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def __enter__(self) -> WrittenFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_written(series: SeriesFiles) -> WrittenFiles:
    """The series' files now, published and not (module docstring); close the result."""
    part_name = re.compile(re.escape(f".{series.prefix.name}.") + r"(\d+)(?:~(\d+))?"
                           + re.escape(PART_SUFFIX)
                           + f"(?:{re.escape(COMPRESSED_MARK_SUFFIX)})?")
    for _ in range(defaults.ARCHIVE_LIST_ATTEMPTS):
        first = _scan(series, part_name)
        fds = _open_parts(series.folder, first)
        if fds is not None and _scan(series, part_name).names() == first.names():
            written = WrittenFiles(_fds=list(fds.values()))
            break
        for fd in (fds or {}).values():
            os.close(fd)
    else:  # a series rolling files nonstop: the last listing, as it is
        first = _scan(series, part_name)
        fds = _open_parts(series.folder, first, missing_ok=True) or {}
        written = WrittenFiles(_fds=list(fds.values()))
        written.notes.append(f"{series.prefix.name}: its files changed at each of "
                             f"{defaults.ARCHIVE_LIST_ATTEMPTS} listings; a file published "
                             "meanwhile may be missing or read twice")
    published_inodes = {inode for inode, _ in first.published.values()}
    by_time = sorted(first.published.items(), key=lambda item: (item[1][1], item[0]))
    written.paths = [series.folder / name for name, _ in by_time]
    for name in sorted(fds, key=lambda n: first.parts[n]):
        if _published(name, fds[name], first, published_inodes):
            continue
        if os.fstat(fds[name]).st_size >= _MIN_PART_BYTES:
            written.parts.append(Path(f"/proc/self/fd/{fds[name]}"))
            written.paths.append(written.parts[-1])
    return written


def _scan(series: SeriesFiles, part_name: re.Pattern) -> _Scan:
    scan = _Scan({}, {}, {})
    try:
        with os.scandir(series.folder) as entries:
            for entry in entries:
                name = entry.name
                if series.owns(name):
                    with contextlib.suppress(FileNotFoundError):
                        if entry.is_file():
                            scan.published[name] = (entry.inode(), entry.stat().st_mtime_ns)
                elif name.endswith(COMPRESS_TMP_SUFFIX):
                    if part_name.fullmatch(name[:-len(COMPRESS_TMP_SUFFIX)]):
                        scan.copies[name] = entry.inode()
                elif (match := part_name.fullmatch(name)) is not None:
                    scan.parts[name] = (int(match.group(1)), int(match.group(2) or 0))
    except FileNotFoundError:
        pass
    return scan


def _open_parts(folder: Path, scan: _Scan, missing_ok: bool = False) -> dict[str, int] | None:
    """A read descriptor of each part and mark; None when one went meanwhile (scan again)."""
    fds: dict[str, int] = {}
    for name in scan.parts:
        try:
            fds[name] = os.open(folder / name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if missing_ok:
                continue
            for fd in fds.values():
                os.close(fd)
            return None
    return fds


def _published(name: str, fd: int, scan: _Scan, published_inodes: set[int]) -> bool:
    """Whether part or mark `name` is also a published file already (module docstring)."""
    if os.fstat(fd).st_ino in published_inodes:
        return True
    part = name.removesuffix(COMPRESSED_MARK_SUFFIX)
    copy = scan.copies.get(part + COMPRESS_TMP_SUFFIX)
    if name != part and copy is None:  # a mark without its copy: the copy was renamed
        return True
    return copy is not None and copy in published_inodes
