"""The uploader thread of an rclone series: spooled files to the remote, oldest first, exactly once.

One file at a time, so files arrive in time order. For each queued file:

1. Find its final name: `<dest>` if free, else `<stem>_2<suffix>`, `_3`... (as File mode, nothing
   is overwritten). If an object there already has the file's size and hash, an earlier run
   delivered it and died before deleting the spool copy: the file counts as delivered and is not
   uploaded again (no duplicate at the destination).
2. `rclone copyto` to a hidden temporary object beside the destination
   (`.<final basename>.<enqueue_ns>.pushcap-tmp`; the same name on every attempt, so a retry
   replaces what a killed attempt left), then `rclone moveto` to the final name. This is the
   atomic-upload approach for every backend: the final name appears only by the server-side move
   of a complete object (a rename on SFTP/WebDAV/local, a copy on S3, which creates the object
   whole), so a reader never sees a partial object under the final name.
3. Verify the final object with `rclone lsjson --stat --hash`: same size and, where the backend
   reports one, the same md5/sha1/sha256 as the spool copy. Only then is the spool copy deleted.

A failure keeps the file queued and waits `retry_min_s * 2**(failures-1)` (at most
`retry_max_s`), half of it random jitter, before trying the oldest file again. Nothing here blocks
the series: `deliver()` only renames into the spool and wakes this thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path

from pushcap.push.rclone_remote import (
    Rclone,
    RcloneError,
    RcloneSettings,
    display_path,
    same_content,
)
from pushcap.push.spool import Spool, SpoolEntry

log = logging.getLogger("pushcap.push")

IDLE_POLL_S = 1.0  # an empty spool is looked at again this often even without a wake-up
TMP_SUFFIX = ".pushcap-tmp"


def backoff_s(failures: int, settings: RcloneSettings) -> float:
    """Exponential backoff with equal jitter: spreads retries of many series after an outage."""
    delay = min(settings.retry_max_s, settings.retry_min_s * 2 ** max(0, failures - 1))
    return delay / 2 + random.uniform(0, delay / 2)


class Uploader:
    """Sends one series' spool to `remote_spec` (the `remote:` part of the target's Path)."""

    def __init__(self, spool: Spool, runner: Rclone, remote_spec: str, suffix: str,
                 label: str) -> None:
        self.spool = spool
        self.runner = runner
        self.remote_spec = remote_spec
        self.suffix = suffix
        self.label = label
        self.uploads_ok = 0
        self.uploads_failed = 0
        self.already_present = 0
        self.bytes_uploaded = 0
        self.upload_seconds = 0.0
        self.last_error = ""
        self.last_error_ns = 0
        self.last_upload = ""
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread (idempotent); it first resumes what a previous run left queued."""
        with self._start_lock:
            if self._thread is not None:
                return
            self.spool.remove_leftovers()
            pending = self.spool.pending()
            if pending:
                log.info("event=upload_resume %s files_pending=%d bytes_pending=%d", self.label,
                         len(pending), sum(e.size for e in pending))
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"upload-{self.label}")
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self, timeout_s: float) -> None:
        """Upload what is queued until the spool is empty, an upload fails, or `timeout_s`
        passes; then kill the upload in flight. What is not delivered stays spooled for the
        next start."""
        self._closing.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(timeout_s)
        if thread.is_alive():
            self.runner.kill()
            thread.join(10.0)
        pending = self.spool.pending()
        if pending:
            log.warning("event=upload_stop %s files_pending=%d bytes_pending=%d (kept in %s for "
                        "the next start)", self.label, len(pending), sum(e.size for e in pending),
                        self.spool.directory)

    def stats(self) -> dict:
        stats = self.spool.stats()
        stats.update(
            uploads_ok=self.uploads_ok,
            uploads_failed=self.uploads_failed,
            already_present=self.already_present,
            bytes_uploaded=self.bytes_uploaded,
            upload_mb_per_s=round(self.bytes_uploaded / 1e6 / self.upload_seconds, 1)
            if self.upload_seconds else 0.0,
            last_upload=self.last_upload,
            last_error=self.last_error,
            last_error_age_s=round((time.time_ns() - self.last_error_ns) / 1e9, 1)
            if self.last_error_ns else None,
        )
        return stats

    # --- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while True:
            entry = self.spool.oldest()
            if entry is None:
                if self._closing.is_set():
                    return
                self._wake.wait(IDLE_POLL_S)
                self._wake.clear()
                continue
            if not self.spool.begin(entry):
                continue  # dropped by the byte limit meanwhile
            delivered = False
            try:
                self._deliver(entry)
                delivered = True
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one file
                failures += 1
                self._failed(entry, exc, failures)
            finally:
                self.spool.end(entry, delivered)
            if delivered:
                failures = 0
            elif self._closing.is_set():
                return  # shutting down and the remote fails: leave the rest spooled
            else:
                self._closing.wait(backoff_s(failures, self.runner.settings))

    def _failed(self, entry: SpoolEntry, exc: Exception, failures: int) -> None:
        self.uploads_failed += 1
        self.last_error = str(exc) if isinstance(exc, RcloneError) else \
            f"{type(exc).__name__}: {exc}"
        self.last_error_ns = time.time_ns()
        log.warning("event=upload_failed %s file=%s failures=%d error=%r", self.label,
                    entry.dest, failures, self.last_error)

    def _deliver(self, entry: SpoolEntry) -> None:
        started = time.monotonic()
        hashes: dict[str, str] = {}
        final, present = self._final_name(entry, hashes)
        shown = display_path(final)
        if present:
            self.already_present += 1
            log.info("event=upload_already_present %s file=%s bytes=%d", self.label, shown,
                     entry.size)
            return
        folder, slash, base = final[len(self.remote_spec):].rpartition("/")
        tmp = f"{self.remote_spec}{folder}{slash}.{base}.{entry.enqueue_ns}{TMP_SUFFIX}"
        self.runner.copyto(entry.path, tmp)
        self.runner.moveto(tmp, final)
        uploaded = self.runner.stat(final)
        if uploaded is None or not same_content(entry.path, uploaded, hashes):
            self.runner.deletefile(final)  # ours and wrong: never leave it under the final name
            raise RcloneError(f"verification of {shown} failed: size or hash differs from the "
                              "spool copy")
        seconds = time.monotonic() - started
        self.uploads_ok += 1
        self.bytes_uploaded += entry.size
        self.upload_seconds += seconds
        self.last_upload = shown
        log.info("event=upload_done %s file=%s bytes=%d seconds=%.2f queued_s=%.1f", self.label,
                 shown, entry.size, seconds, entry.age_s)

    def _final_name(self, entry: SpoolEntry, hashes: dict[str, str]) -> tuple[str, bool]:
        """(free or identical final path, whether an identical object is already there)."""
        dest = entry.dest
        stem = dest[:-len(self.suffix)] if self.suffix and dest.endswith(self.suffix) else dest
        suffix = dest[len(stem):]
        n = 1
        while True:
            candidate = self.remote_spec + (dest if n == 1 else f"{stem}_{n}{suffix}")
            existing = self.runner.stat(candidate)
            if existing is None:
                return candidate, False
            if same_content(Path(entry.path), existing, hashes):
                return candidate, True
            n += 1
