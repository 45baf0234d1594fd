"""The local spool of an rclone series: finished files waiting for upload, oldest first.

One folder per series (`<spool_dir>/<Desc>/<series>.queue/`). A spooled file's name carries all
the uploader needs, so the folder alone is the queue and survives restarts without an index:

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

The byte limit bounds the queue: when the queue exceeds `max_bytes`, the oldest files are
deleted *loudly* (a warning per file and counters), never the newest (the file just closed) and
never the one the uploader is sending.
"""

from __future__ import annotations

import logging
import os
import re
import threading
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


class Spool:
    """The queue folder of one series; thread safe (the series adds, the uploader takes)."""

    def __init__(self, directory: Path, max_bytes: int, label: str) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.label = label
        self.dropped_files = 0
        self.dropped_bytes = 0
        self._lock = threading.Lock()
        self._last_ns = 0
        self._in_flight: Path | None = None
        self._noted_dests: dict[int, str] = {}  # read once: a note never changes
        self._unreadable: set[int] = set()  # entries without their dest note, reported once
        self.pending()  # continue numbering after what a previous run left queued

    def remove_leftovers(self) -> None:
        """Delete move-ins cut by a crash (their source still exists and is delivered again)
        and notes without their entry (a crash between writing a note and moving its file in,
        or between deleting an entry and its notes).
        Only the uploader calls this, at the first start of its series in this process: not
        `pushcap check`, which builds shippers beside a running daemon, and not at a reload,
        where a predecessor on this folder may still be writing (`Uploader.start`). A hidden
        folder (`.snapshot` of a NAS) is nobody's move-in and is left alone."""
        if not self.directory.is_dir():
            return
        with self._lock:
            for stale in self.directory.glob(f"{TMP_PREFIX}*"):
                if not stale.is_dir():
                    stale.unlink(missing_ok=True)
            names = [p.name for p in self.directory.iterdir()]
            queued = {parsed[0] for parsed in map(parse_entry_name, names) if parsed}
            for name in names:
                note = _NOTE_NAME.match(name)
                if note and int(note[1]) not in queued:
                    (self.directory / name).unlink(missing_ok=True)

    def add(self, src: Path, dest: str) -> SpoolEntry:
        """Move a finished, fsynced file into the queue (a rename on the same file system)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            now = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now
            path = self.directory / entry_name(now, dest)
            size = src.stat().st_size
            if parse_entry_name(path.name)[1] is None:  # the name cannot hold dest
                self._write_note(now, NOTE_DEST, dest)
                self._noted_dests[now] = dest
            try:
                os.rename(src, path)
            except OSError:  # another file system (spool_dir moved): copy, fsync, then rename
                tmp = self.directory / f"{TMP_PREFIX}{path.name}"
                _copy_fsynced(src, tmp)
                os.rename(tmp, path)
                src.unlink()
            _fsync_dir(self.directory)
            entry = SpoolEntry(path, now, dest, size)
            self._enforce_limit()
            return entry

    def record_final(self, entry: SpoolEntry, final: str) -> None:
        """Remember (durably) the remote name, below the remote root, that `entry` is about to
        be moved to; called by the uploader before the move."""
        if self.recorded_final(entry) != final:
            self._write_note(entry.enqueue_ns, NOTE_FINAL, final)

    def recorded_final(self, entry: SpoolEntry) -> str | None:
        """The remote name recorded for `entry` by an earlier attempt or run, if any."""
        return self._read_note(entry.enqueue_ns, NOTE_FINAL)

    def pending(self) -> list[SpoolEntry]:
        """Queued files, oldest first."""
        entries = self._list()
        with self._lock:
            if entries:  # a restarted process continues after the newest queued file
                self._last_ns = max(self._last_ns, entries[-1].enqueue_ns)
        return entries

    def oldest(self) -> SpoolEntry | None:
        entries = self.pending()
        return entries[0] if entries else None

    def begin(self, entry: SpoolEntry) -> bool:
        """Mark `entry` as being uploaded (protected from the byte limit); False if it is gone."""
        with self._lock:
            if not entry.path.exists():
                return False
            self._in_flight = entry.path
            return True

    def end(self, entry: SpoolEntry, delivered: bool) -> None:
        """Upload of `entry` is over: delete it if it was delivered, else keep it queued."""
        with self._lock:
            self._in_flight = None
            if delivered:
                self._delete(entry)
            self._enforce_limit()

    def _enforce_limit(self) -> None:
        """Over `max_bytes`: drop the oldest files until under it, but never the newest (the
        file the series just closed, the one that must not be lost to older ones) nor the one
        in flight. Called with the lock held."""
        entries = self._list()
        total = sum(e.size for e in entries)
        protected = {self._in_flight, entries[-1].path if entries else None}
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.path in protected or not self._delete(entry):
                continue
            self.dropped_files += 1
            self.dropped_bytes += entry.size
            log.warning("event=spool_drop %s file=%s bytes=%d age_s=%.1f reason=spool_full "
                        "queued_bytes=%d max_bytes=%d dropped_files=%d (never uploaded: the "
                        "oldest queued file goes first; the newest and the one being uploaded "
                        "are kept)", self.label, entry.dest, entry.size, entry.age_s, total,
                        self.max_bytes, self.dropped_files)
            total -= entry.size

    def _delete(self, entry: SpoolEntry) -> bool:
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

    def _list(self) -> list[SpoolEntry]:
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
        dest = self._noted_dests.get(ns) or self._read_note(ns, NOTE_DEST)
        if dest is not None:
            self._noted_dests[ns] = dest
        elif path.exists() and ns not in self._unreadable:
            self._unreadable.add(ns)
            log.error("event=spool_unreadable %s file=%s error=%r (left in place, not uploaded)",
                      self.label, path, f"its destination note {ns:020d}.{NOTE_DEST} is missing")
        return dest

    def _note_path(self, ns: int, kind: str) -> Path:
        return self.directory / f"{ns:020d}.{kind}"

    def _read_note(self, ns: int, kind: str) -> str | None:
        try:
            return self._note_path(ns, kind).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _write_note(self, ns: int, kind: str, text: str) -> None:
        """Replace a note atomically and durably (hidden temporary, fsync, rename, fsync dir)."""
        path = self._note_path(ns, kind)
        tmp = self.directory / f"{TMP_PREFIX}{path.name}"
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        _fsync_dir(self.directory)

    def stats(self) -> dict:
        """Queue figures; the pending ones None while the folder cannot be listed (status must
        still answer, and the uploader's `last_error` says why)."""
        dropped = {"dropped_files": self.dropped_files, "dropped_bytes": self.dropped_bytes}
        try:
            entries = self.pending()
        except OSError:
            return {"files_pending": None, "bytes_pending": None, "oldest_pending_age_s": None,
                    **dropped}
        return {
            "files_pending": len(entries),
            "bytes_pending": sum(e.size for e in entries),
            "oldest_pending_age_s": round(entries[0].age_s, 3) if entries else 0.0,
            **dropped,
        }


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
