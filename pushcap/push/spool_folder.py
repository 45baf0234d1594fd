"""The files of one spool folder: what the queue of an rclone series is on disk.

A spooled file's name carries all the uploader needs, so the folder alone is the queue and
survives restarts without an index:

    <enqueue_ns:020d>-<percent-encoded destination path below the remote root>

The number orders the queue (strictly increasing within a process, and time-based across
restarts); the destination is relative to the target's remote (`b/p/all_<name>.pcap`), so the
remote's connection string (which may hold keys) is never written to disk. A file enters the
queue by `rename` from the same file system after it was fsynced, so the queue holds only whole
files.

A name is at most `SPOOL_NAME_MAX_BYTES` (defaults.py) long (file systems refuse names over 255
bytes, and a deep Path encodes to far more). A destination too long for the name goes into a
*note*, a small file named by the entry's number, and the name keeps only the readable end of the
destination:

    <enqueue_ns:020d>+<end of the percent-encoded destination>     note: <enqueue_ns:020d>.dest

The other note, `<enqueue_ns:020d>.final`, is the uploader's: the remote name it chose for the
file, written before the object is moved to that name. Only under that name can a later run find
the file "already delivered" (a same-size object elsewhere may be another file, on a backend
without hashes). A note is written (fsynced) before its entry needs it, deleted after its entry.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from pushcap import defaults

log = logging.getLogger("pushcap.push")

TMP_PREFIX = "."  # files still being moved in are hidden and never listed
NOTE_DEST = "dest"  # the destination of an entry whose name could not hold it
NOTE_FINAL = "final"  # the remote name the uploader chose (see the module docstring)
NOTES = (NOTE_DEST, NOTE_FINAL)
_SEQ_DIGITS = 20  # the enqueue_ns every entry and note name starts with
_NOTE_NAME = re.compile(rf"^(\d{{{_SEQ_DIGITS}}})\.({'|'.join(NOTES)})$")


@dataclass(frozen=True)
class SpoolEntry:
    """A whole file waiting in the queue."""

    path: Path
    enqueue_ns: int
    dest: str  # destination below the remote root
    size: int

    @property
    def age_s(self) -> float:
        return max(0.0, (time.time_ns() - self.enqueue_ns) / 1e9)


def entry_name(enqueue_ns: int, dest: str) -> str:
    """`<ns>-<dest>`, or `<ns>+<end of dest>` (the dest in a note) when that would be too long."""
    quoted = quote(dest, safe="")
    name = f"{enqueue_ns:020d}-{quoted}"
    if len(name) <= defaults.SPOOL_NAME_MAX_BYTES:
        return name
    cut = len(quoted) - (defaults.SPOOL_NAME_MAX_BYTES - _SEQ_DIGITS - 1)
    for back in (1, 2):  # do not start inside a %XX escape
        if quoted[cut - back] == "%":
            cut += 3 - back
            break
    return f"{enqueue_ns:020d}+{quoted[cut:]}"


def parse_entry_name(name: str) -> tuple[int, str | None] | None:
    """(enqueue_ns, destination), the destination None when it is in the entry's note; None
    for a name that is no entry (a note, a hidden move-in, a stranger)."""
    seq, sep, rest = name[:_SEQ_DIGITS], name[_SEQ_DIGITS:][:1], name[_SEQ_DIGITS + 1:]
    if sep not in ("-", "+") or not seq.isdigit() or not seq.isascii() or not rest:
        return None
    return int(seq), unquote(rest) if sep == "-" else None


class SpoolFolder:
    """Entries and notes of one queue folder. Not thread safe on its own: `Spool` calls it
    under its lock, except for the listing of `Spool.pending` (the folder alone is the truth,
    and a dest note never changes, so a listing needs no lock)."""

    def __init__(self, directory: Path, label: str) -> None:
        self.directory = directory
        self.label = label
        self._noted_dests: dict[int, str] = {}  # read once: a note never changes
        self._unreadable: set[int] = set()  # entries without their dest note, reported once

    def remove_leftovers(self) -> None:
        """Delete hidden move-ins (not folders) and notes whose entry is gone."""
        for stale in self.directory.glob(f"{TMP_PREFIX}*"):
            if not stale.is_dir():
                stale.unlink(missing_ok=True)
        names = [p.name for p in self.directory.iterdir()]
        queued = {parsed[0] for parsed in map(parse_entry_name, names) if parsed}
        for name in names:
            note = _NOTE_NAME.match(name)
            if note and int(note[1]) not in queued:
                (self.directory / name).unlink(missing_ok=True)

    def move_in(self, src: Path, enqueue_ns: int, dest: str) -> SpoolEntry:
        """Move a finished, fsynced file in as entry `enqueue_ns`, its dest note (if its name
        cannot hold `dest`) written first, so the entry never exists without it."""
        path = self.directory / entry_name(enqueue_ns, dest)
        size = src.stat().st_size
        if parse_entry_name(path.name)[1] is None:  # the name cannot hold dest
            self.write_note(enqueue_ns, NOTE_DEST, dest)
            self._noted_dests[enqueue_ns] = dest
        try:
            os.rename(src, path)
        except OSError:  # another file system (spool_dir moved): copy, fsync, then rename
            tmp = self.directory / f"{TMP_PREFIX}{path.name}"
            _copy_fsynced(src, tmp)
            os.rename(tmp, path)
            src.unlink()
        _fsync_dir(self.directory)
        return SpoolEntry(path, enqueue_ns, dest, size)

    def delete(self, entry: SpoolEntry) -> bool:
        """Delete the entry, then its notes (a crash between leaves only an orphan note, removed
        at the next start, never an entry without its notes); False if it was gone already."""
        try:
            entry.path.unlink()
            existed = True
        except FileNotFoundError:
            existed = False
        for kind in NOTES:
            self._note_path(entry.enqueue_ns, kind).unlink(missing_ok=True)
        self._noted_dests.pop(entry.enqueue_ns, None)
        return existed

    def entries(self) -> list[SpoolEntry]:
        """Queued files, oldest first (an entry whose dest note is missing is left out)."""
        entries = []
        if not self.directory.is_dir():
            return entries
        for path in self.directory.iterdir():
            parsed = parse_entry_name(path.name)
            if parsed is None:
                continue
            ns, dest = parsed
            dest = dest if dest is not None else self._noted_dest(ns, path)
            if dest is None:
                continue
            try:
                entries.append(SpoolEntry(path, ns, dest, path.stat().st_size))
            except FileNotFoundError:  # uploaded or dropped meanwhile
                continue
        entries.sort(key=lambda e: e.enqueue_ns)
        return entries

    def _noted_dest(self, ns: int, path: Path) -> str | None:
        dest = self._noted_dests.get(ns) or self.read_note(ns, NOTE_DEST)
        if dest is not None:
            self._noted_dests[ns] = dest
        elif path.exists() and ns not in self._unreadable:
            self._unreadable.add(ns)
            log.error("event=spool_unreadable %s file=%s error=%r (left in place, not uploaded)",
                      self.label, path, f"its destination note {ns:020d}.{NOTE_DEST} is missing")
        return dest

    def _note_path(self, ns: int, kind: str) -> Path:
        return self.directory / f"{ns:020d}.{kind}"

    def read_note(self, ns: int, kind: str) -> str | None:
        try:
            return self._note_path(ns, kind).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_note(self, ns: int, kind: str, text: str) -> None:
        """Replace a note atomically and durably (hidden temporary, fsync, rename, fsync dir)."""
        path = self._note_path(ns, kind)
        tmp = self.directory / f"{TMP_PREFIX}{path.name}"
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        _fsync_dir(self.directory)


def _copy_fsynced(src: Path, dst: Path) -> None:
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make a rename into `directory` durable (a power cut must not lose a queued file)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
