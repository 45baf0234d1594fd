"""Keep's limits over a series' published files: the oldest go first, with their index.

The series' files are known from one directory scan at start plus each file the series
publishes afterwards, kept in age order (the file's modification time: when its last packet
was written; the name breaks ties), so a check costs nothing per file kept and retention keeps
up with any rate a disk can write. Only published files are ever here: a file still being
written, compressed or delivered is a hidden temporary that retention never sees.

Limits (config.model.KeepRule): files, bytes (data files plus their indexes), age (now minus a
file's modification time), and free space on the file system (f_bavail over f_blocks, as `df`
shows it). While any is exceeded the oldest file goes: data first, then its index (an index
left by a crash in between is removed at the next start). Each deletion is logged.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pushcap.archive.layout import index_path
from pushcap.config.model import KeepRule

log = logging.getLogger("pushcap.archive")


@dataclass(order=True)
class KeptFile:
    """A published file of the series: its age key, size with its index, time span."""

    mtime_ns: int
    name: str
    path: Path = field(compare=False)
    bytes: int = field(compare=False)
    first_ts: int = field(compare=False)  # its first packet (else its modification time)
    last_ts: int = field(compare=False)  # its last packet (else its modification time)


@dataclass
class RetentionStats:
    deleted_files: int = 0
    deleted_bytes: int = 0
    delete_errors: int = 0


class Retention:
    """The series' kept files and the rule that trims them (one thread uses it: the keeper's)."""

    def __init__(self, rule: KeepRule | None, folder: Path, label: str) -> None:
        self.rule = rule
        self.folder = folder
        self.label = label
        self.stats = RetentionStats()
        self._files: list[KeptFile] = []
        self._by_path: dict[Path, KeptFile] = {}
        self._bytes = 0

    def add(self, kept: KeptFile) -> None:
        if kept.path in self._by_path:
            return
        bisect.insort(self._files, kept)
        self._by_path[kept.path] = kept
        self._bytes += kept.bytes

    def enforce(self, now_ns: int | None = None) -> list[KeptFile]:
        """Delete the oldest files while a limit is exceeded; the files deleted."""
        if self.rule is None:
            return []
        now_ns = time.time_ns() if now_ns is None else now_ns
        deleted = []
        while self._files:
            why = self._exceeded(now_ns)
            if why is None:
                break
            oldest = self._files.pop(0)
            del self._by_path[oldest.path]
            self._bytes -= oldest.bytes
            if self._delete(oldest, why):
                deleted.append(oldest)
        return deleted

    def _exceeded(self, now_ns: int) -> str | None:
        rule = self.rule
        if rule.max_files is not None and len(self._files) > rule.max_files:
            return "keep-files"
        if rule.max_bytes is not None and self._bytes > rule.max_bytes:
            return "keep-bytes"
        if rule.max_age_ns is not None and self._files[0].mtime_ns < now_ns - rule.max_age_ns:
            return "keep-time"
        if rule.min_free_percent is not None and free_percent(self.folder) < \
                rule.min_free_percent:
            return "keep-free"
        return None

    def _delete(self, kept: KeptFile, why: str) -> bool:
        try:
            os.unlink(kept.path)
        except FileNotFoundError:  # removed by someone else: nothing to count
            index_path(kept.path).unlink(missing_ok=True)
            return False
        except OSError as exc:
            self.stats.delete_errors += 1
            log.error("event=retention_delete_failed %s file=%s error=%r", self.label,
                      kept.path, str(exc))
            return False
        try:
            index_path(kept.path).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("event=retention_index_left %s file=%s error=%r", self.label,
                        kept.path, str(exc))
        self.stats.deleted_files += 1
        self.stats.deleted_bytes += kept.bytes
        log.info("event=retention_delete %s file=%s bytes=%d rule=%s", self.label, kept.path,
                 kept.bytes, why)
        return True

    def figures(self) -> dict:
        """Files and bytes kept and the span of history they hold."""
        files = list(self._files)  # the keeper's thread may change the list meanwhile
        oldest = min((f.first_ts for f in files[:8]), default=None)
        newest = max((f.last_ts for f in files[-8:]), default=None)
        return {
            "retention_deleted_files": self.stats.deleted_files,
            "retention_deleted_bytes": self.stats.deleted_bytes,
            "archive_files": len(files),
            "archive_bytes": self._bytes,
            "archive_oldest_ns": oldest,
            "archive_span_s": round((newest - oldest) / 1e9, 3)
            if oldest is not None and newest is not None else 0.0,
        }


def free_percent(folder: Path) -> float:
    """Free space of the file system holding `folder`, in percent, as `df` shows it."""
    info = os.statvfs(folder)
    return 100.0 * info.f_bavail / info.f_blocks if info.f_blocks else 100.0
