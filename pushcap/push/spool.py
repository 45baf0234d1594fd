"""The local spool of an rclone series: finished files waiting for upload, oldest first.

One folder per series (`<spool_dir>/<Desc>/<series>.queue/`); how its files are named, and the
notes beside them, is spool_folder.py's. This module is the queue's policy: entry numbers,
the file in flight, the byte limit, and the lock between the series and the uploader.

The byte limit bounds the queue: when the queue exceeds `max_bytes`, the oldest files are
deleted *loudly* (a warning per file and counters), never the newest (the file just closed) and
never the one the uploader is sending.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from pushcap.push.spool_folder import NOTE_FINAL, SpoolEntry, SpoolFolder

log = logging.getLogger("pushcap.push")


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
        self._folder = SpoolFolder(directory, label)
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
            self._folder.remove_leftovers()

    def add(self, src: Path, dest: str) -> SpoolEntry:
        """Move a finished, fsynced file into the queue (a rename on the same file system)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            now = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now
            entry = self._folder.move_in(src, now, dest)
            self._enforce_limit()
            return entry

    def record_final(self, entry: SpoolEntry, final: str) -> None:
        """Remember (durably) the remote name, below the remote root, that `entry` is about to
        be moved to; called by the uploader before the move."""
        if self.recorded_final(entry) != final:
            self._folder.write_note(entry.enqueue_ns, NOTE_FINAL, final)

    def recorded_final(self, entry: SpoolEntry) -> str | None:
        """The remote name recorded for `entry` by an earlier attempt or run, if any."""
        return self._folder.read_note(entry.enqueue_ns, NOTE_FINAL)

    def pending(self) -> list[SpoolEntry]:
        """Queued files, oldest first."""
        entries = self._folder.entries()
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
                self._folder.delete(entry)
            self._enforce_limit()

    def _enforce_limit(self) -> None:
        """Over `max_bytes`: drop the oldest files until under it, but never the newest (the
        file the series just closed, the one that must not be lost to older ones) nor the one
        in flight. Called with the lock held."""
        entries = self._folder.entries()
        total = sum(e.size for e in entries)
        protected = {self._in_flight, entries[-1].path if entries else None}
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.path in protected or not self._folder.delete(entry):
                continue
            self.dropped_files += 1
            self.dropped_bytes += entry.size
            log.warning("event=spool_drop %s file=%s bytes=%d age_s=%.1f reason=spool_full "
                        "queued_bytes=%d max_bytes=%d dropped_files=%d (never uploaded: the "
                        "oldest queued file goes first; the newest and the one being uploaded "
                        "are kept)", self.label, entry.dest, entry.size, entry.age_s, total,
                        self.max_bytes, self.dropped_files)
            total -= entry.size

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
