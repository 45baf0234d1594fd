"""A series' archive keeper: indexes its published files and applies Keep, on a thread of its own.

The series tells the keeper each file it publishes (`published`), on the finisher's thread, and
goes on: the index is built from the just-published file (still in the page cache) and Keep's
limits are applied on the keeper's thread, so neither ever touches the packet path or delays
the next file's delivery. Every RETENTION_CHECK_INTERVAL_S without a new file the limits are
checked again (files age; other writers fill the disk).

At a launch (never at a reload or in a replay, where a neighbour's temporaries may be live) the
keeper also repairs what a crash left in the index folder: a hidden index part is removed, an
index whose data file is gone is removed, and every file of the series without a usable index
gets one, oldest first, on the keeper's thread (what it finds on disk: series_scan.py).
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pushcap import defaults
from pushcap.archive.datafile import head
from pushcap.archive.layout import SeriesFiles, index_path
from pushcap.archive.retention import KeptFile, Retention
from pushcap.archive.series_scan import files_oldest_first, repair_index_folder, usable_index
from pushcap.config.model import PushMode, TargetConfig

# numpy (build) is imported when a file is indexed, pyarrow (index_file) when an index is
# read: a replay or a daemon whose targets have no Index never pays for them at start.
if TYPE_CHECKING:
    from pushcap.archive.index_feed import IndexFeed
    from pushcap.archive.index_meta import IndexMeta

log = logging.getLogger("pushcap.archive")

_STOP = object()


class ArchiveKeeper:
    """Index and retention of one series (`prefix`: its `<Path>` or `<Path>_<interface>`)."""

    def __init__(self, target: TargetConfig, prefix: Path, label: str) -> None:
        self.target = target
        self.label = label
        self.files = SeriesFiles(prefix, target.naming, target.file_suffix)
        self.retention = Retention(target.keep, prefix.parent, label)
        self.indexed_files = 0
        self.index_errors = 0
        self.last_index_error: str | None = None
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._feeds: dict[str, IndexFeed] = {}  # finished parts' feeds, until published

    # --- the series' side -------------------------------------------------------------------
    def start(self, at_launch: bool) -> None:
        """Learn the files on disk (and at a launch repair the index folder) on the thread."""
        self._put(("scan", at_launch))

    def new_feed(self, linktype: int) -> IndexFeed | None:
        """A feed for the index of a file the series starts (series thread), or None."""
        if not self.target.indexed:
            return None
        from pushcap.archive.index_feed import new_feed

        return new_feed(linktype)

    def expect(self, part: Path, feed: IndexFeed) -> None:
        """`feed` holds the keys of `part`, finished (series thread): its index is built from
        the feed when the part is published whole (`published(..., part)`)."""
        with self._lock:
            self._feeds[str(part)] = feed
            while len(self._feeds) > defaults.ARCHIVE_PENDING_FEEDS:  # parts never published
                self._feeds.pop(next(iter(self._feeds))).close()

    def published(self, path: Path, part: Path | None = None) -> None:
        """A file of the series was published (any thread; returns at once), from `part`."""
        with self._lock:
            feed = self._feeds.pop(str(part), None) if part is not None else None
        self._put(("file", path, feed))

    def close(self, timeout_s: float = defaults.ARCHIVE_CLOSE_TIMEOUT_S) -> None:
        """Index what was published, apply the limits, end the thread (within `timeout_s`;
        an index still missing then is built at the next start)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout_s)

    def status(self) -> dict:
        figures = self.retention.figures()
        if self.target.indexed:
            figures.update(indexed_files=self.indexed_files, index_errors=self.index_errors)
        return figures

    def _put(self, item) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name=f"archive-{self.target.desc}")
                self._thread.start()
        self._queue.put(item)

    # --- the keeper's thread ----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=defaults.RETENTION_CHECK_INTERVAL_S)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._enforce()
                return
            try:
                if item is not None and item[0] == "scan":
                    self._scan(item[1])
                elif item is not None:
                    self._file(item[1], item[2])
                self._enforce()
            except Exception as exc:  # noqa: BLE001 - the keeper must outlive any one file
                log.error("event=archive_error %s error=%r", self.label, str(exc))

    def _enforce(self) -> None:
        self.retention.enforce()

    def _file(self, path: Path, feed: IndexFeed | None = None) -> None:
        try:
            meta, index_bytes = self._index(path, feed) if self.target.indexed else (None, 0)
        finally:
            if feed is not None:
                feed.close()
        self._keep(path, index_bytes, meta)

    def _keep(self, path: Path, index_bytes: int, meta: IndexMeta | None) -> None:
        try:
            self.retention.add(_kept(path, index_bytes, meta))
        except FileNotFoundError:  # deleted meanwhile (by hand, another keeper)
            pass

    def _index(self, path: Path, feed: IndexFeed | None = None
               ) -> tuple[IndexMeta | None, int]:
        """Build `path`'s index (from `feed` when it holds the whole file): its figures and
        size ((None, 0) when it could not be built)."""
        from pushcap.archive.build import NotIndexable, build_index

        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            meta = build_index(path, feed=feed)
            size = index_path(path).stat().st_size
        except NotIndexable as exc:
            log.warning("event=index_skipped %s file=%s reason=%r", self.label, path, str(exc))
            return None, 0
        except FileNotFoundError:
            return None, 0  # deleted meanwhile
        except Exception as exc:  # noqa: BLE001 - counted, logged; the file is still kept
            self.index_errors += 1
            self.last_index_error = str(exc)
            log.error("event=index_failed %s file=%s error=%r", self.label, path, str(exc))
            return None, 0
        self.indexed_files += 1
        log.debug("event=index_done %s file=%s packets=%d bytes=%d seconds=%.3f cpu_s=%.3f",
                  self.label, path, meta.packets, size, time.perf_counter() - started,
                  time.thread_time() - started_cpu)
        return meta, size

    def _scan(self, at_launch: bool) -> None:
        """The series' files now on disk, and at a launch the index folder's repair."""
        if at_launch:
            repair_index_folder(self.files, self.label)
        for path, size in files_oldest_first(self.files):
            meta, index_bytes = None, 0
            if self.target.indexed:
                meta, index_bytes = usable_index(path, size)
                if meta is None and at_launch:
                    meta, index_bytes = self._index(path)
                    log.info("event=index_rebuilt %s file=%s", self.label, path)
            self._keep(path, index_bytes, meta)


def _kept(path: Path, index_bytes: int, meta: IndexMeta | None) -> KeptFile:
    """A file as retention keeps it: age, size, and the span of its packets (from its index;
    else its first record's timestamp and its modification time)."""
    info = path.stat()
    if meta is not None and meta.packets:
        return KeptFile(info.st_mtime_ns, path.name, path, info.st_size + index_bytes,
                        meta.first_ts, meta.last_ts)
    first = info.st_mtime_ns
    try:
        raw = head(path, 32)
        if len(raw) >= 32:
            magic = struct.unpack_from("<I", raw)[0]
            sec, frac = struct.unpack_from("<II", raw, 24)
            if magic == defaults.PCAP_MAGIC_NS:
                first = sec * 1_000_000_000 + frac
            elif magic == defaults.PCAP_MAGIC_US:
                first = sec * 1_000_000_000 + frac * 1000
    except (OSError, EOFError, ValueError):
        pass
    return KeptFile(info.st_mtime_ns, path.name, path, info.st_size + index_bytes, first,
                    info.st_mtime_ns)


def make_keeper(target: TargetConfig, prefix: Path, label: str) -> ArchiveKeeper | None:
    """The keeper of a File target's series with Keep or Index; None otherwise."""
    if target.mode is not PushMode.FILE or (target.keep is None and not target.indexed):
        return None
    return ArchiveKeeper(target, prefix, label)
