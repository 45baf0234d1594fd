"""The local spool of an rclone series: finished files waiting for upload, oldest first.

One folder per series (`<spool_dir>/<Desc>/<series>.queue/`). A spooled file's name carries all
the uploader needs, so the folder alone is the queue and survives restarts without an index:

    <enqueue_ns:020d>-<percent-encoded destination path below the remote root>

The number orders the queue (strictly increasing within a process, and time-based across
restarts); the destination is relative to the target's remote (`b/p/all_<name>.pcap`), so the
remote's connection string (which may hold keys) is never written to disk. A file enters the
queue by `rename` from the same file system after it was fsynced, so the queue holds only whole
files.

The byte limit bounds the queue: when an added file makes it exceed `max_bytes`, the oldest files
are deleted *loudly* (a warning per file and counters), never the newest (the one just added) and
never the one the uploader is sending.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

log = logging.getLogger("pushcap.push")

TMP_PREFIX = "."  # files still being moved in are hidden and never listed


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
    return f"{enqueue_ns:020d}-{quote(dest, safe='')}"


def parse_entry_name(name: str) -> tuple[int, str] | None:
    seq, sep, dest = name.partition("-")
    if not sep or len(seq) != 20 or not seq.isdigit() or not dest:
        return None
    return int(seq), unquote(dest)


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
        self.pending()  # continue numbering after what a previous run left queued

    def remove_leftovers(self) -> None:
        """Delete move-ins cut by a crash (their source still exists and is delivered again).
        Only the owner of the series calls this, at its start: `pushcap check` builds shippers
        beside a running daemon and must not touch its files."""
        if self.directory.is_dir():
            for stale in self.directory.glob(f"{TMP_PREFIX}*"):
                stale.unlink(missing_ok=True)

    def add(self, src: Path, dest: str) -> SpoolEntry:
        """Move a finished, fsynced file into the queue (a rename on the same file system)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            now = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now
            path = self.directory / entry_name(now, dest)
            size = src.stat().st_size
            try:
                os.rename(src, path)
            except OSError:  # another file system (spool_dir moved): copy, fsync, then rename
                tmp = self.directory / f"{TMP_PREFIX}{path.name}"
                _copy_fsynced(src, tmp)
                os.rename(tmp, path)
                src.unlink()
            _fsync_dir(self.directory)
            entry = SpoolEntry(path, now, dest, size)
            self._enforce_limit(keep=path)
            return entry

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
                entry.path.unlink(missing_ok=True)
            self._enforce_limit(keep=None)

    def _enforce_limit(self, keep: Path | None) -> None:
        entries = self._list()
        total = sum(e.size for e in entries)
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.path in (keep, self._in_flight):
                continue
            try:
                entry.path.unlink()
            except FileNotFoundError:
                continue
            total -= entry.size
            self.dropped_files += 1
            self.dropped_bytes += entry.size
            log.warning("event=spool_drop %s file=%s bytes=%d age_s=%.1f reason=spool_full "
                        "max_bytes=%d dropped_files=%d", self.label, entry.dest, entry.size,
                        entry.age_s, self.max_bytes, self.dropped_files)

    def _list(self) -> list[SpoolEntry]:
        entries = []
        if not self.directory.is_dir():
            return entries
        for path in self.directory.iterdir():
            parsed = parse_entry_name(path.name)
            if parsed is None:
                continue
            try:
                entries.append(SpoolEntry(path, parsed[0], parsed[1], path.stat().st_size))
            except FileNotFoundError:  # uploaded or dropped meanwhile
                continue
        entries.sort(key=lambda e: e.enqueue_ns)
        return entries

    def stats(self) -> dict:
        entries = self.pending()
        return {
            "files_pending": len(entries),
            "bytes_pending": sum(e.size for e in entries),
            "oldest_pending_age_s": round(entries[0].age_s, 3) if entries else 0.0,
            "dropped_files": self.dropped_files,
            "dropped_bytes": self.dropped_bytes,
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
