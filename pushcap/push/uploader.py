"""The uploader thread of an rclone series: spooled files to the remote, oldest first, exactly once.

One file at a time, so files arrive in time order. How one file goes up (a free final name
recorded first, a hidden temporary object, a move that never replaces, a verify before the
spool copy goes) is file_delivery.py's; this module is the thread around it.

A failure keeps the file queued and waits `retry_min_s * 2**(failures-1)` (at most
`retry_max_s`; the exponent is capped, so an outage of any length cannot overflow it), half of
it random jitter, before trying the oldest file again. A failing spool (listing or deleting
raises: permissions, I/O errors, a damaged folder) is retried the same way, counted in
`spool_errors` and `last_error`: only close() ends the thread. Nothing here blocks the series:
`deliver()` only renames into the spool and wakes this thread.

A spool folder has one uploader at a time in this process: a reload's successor waits for a
predecessor still busy past its close() (see spool_owner.py).
"""

from __future__ import annotations

import logging
import random
import threading

from pushcap import defaults
from pushcap.config.secrets import scrub
from pushcap.push.file_delivery import FileDelivery
from pushcap.push.rclone_remote import Rclone, RcloneError, RcloneSettings
from pushcap.push.spool import Spool
from pushcap.push.spool_folder import SpoolEntry
from pushcap.push.spool_owner import claim_spool
from pushcap.push.upload_stats import UploadStats

log = logging.getLogger("pushcap.push")

MAX_DOUBLINGS = 64  # retry_min_s * 2**64 is past any retry_max_s; 2.0**1024 would overflow
KILL_JOIN_S = defaults.UPLOAD_KILL_JOIN_S  # a module name, as tests patch it
IDLE, GONE, DELIVERED, FAILED = "idle", "gone", "delivered", "failed"  # what one step did


def backoff_s(failures: int, settings: RcloneSettings) -> float:
    """Exponential backoff with equal jitter: spreads retries of many series after an outage.
    The exponent is capped, so a remote down for days (over a thousand failures) keeps the
    thread retrying at `retry_max_s` instead of killing it with an OverflowError."""
    doublings = min(max(0, failures - 1), MAX_DOUBLINGS)
    delay = min(settings.retry_max_s, settings.retry_min_s * 2 ** doublings)
    return delay / 2 + random.uniform(0, delay / 2)


class Uploader:
    """Sends one series' spool to `remote_spec` (the `remote:` part of the target's Path)."""

    def __init__(self, spool: Spool, runner: Rclone, remote_spec: str, suffix: str,
                 label: str) -> None:
        self.spool = spool
        self.runner = runner
        self.remote_spec = remote_spec
        self.label = label
        runner.hide(remote_spec)  # its connection string's keys and headers, out of every error
        self.counters = UploadStats()
        self.delivery = FileDelivery(spool, runner, remote_spec, suffix, label, self.counters)
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, clean_stale: bool = True) -> None:
        """Start the thread (idempotent). It takes the spool folder first (`claim_spool`), then,
        with `clean_stale` (the first start in this process), removes crash leftovers, then
        resumes what a previous run left queued. Never removes leftovers at a reload
        (clean_stale False): there they may be a predecessor's live files, not a crash's."""
        with self._start_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, args=(clean_stale,), daemon=True,
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
            thread.join(KILL_JOIN_S)
        if thread.is_alive():  # busy outside rclone (hashing a large file, a hung disk)
            log.warning("event=upload_stop_late %s (still busy %g s after its upload was killed; "
                        "a successor on %s waits until it ends)", self.label, KILL_JOIN_S,
                        self.spool.directory)
        try:
            pending = self.spool.pending()
        except OSError as exc:
            log.warning("event=upload_stop %s error=%r (cannot list %s)", self.label,
                        self._scrubbed(exc), self.spool.directory)
            return
        if pending:
            log.warning("event=upload_stop %s files_pending=%d bytes_pending=%d (kept in %s for "
                        "the next start of a target with this Desc)", self.label, len(pending),
                        sum(e.size for e in pending), self.spool.directory)

    def stats(self) -> dict:
        stats = self.spool.stats()
        stats.update(self.counters.as_dict())
        return stats

    # --- the thread --------------------------------------------------------------------------
    def _run(self, clean_stale: bool) -> None:
        """Send the oldest file, again and again. Nothing ends this loop but close(): a failed
        upload or a failing spool (a listing or a delete raising OSError, any bug) is logged,
        counted and retried after a backoff, so files never stay queued until a restart."""
        owner = claim_spool(self.spool.directory, self.label, self._closing)
        if owner is None:
            return
        try:
            failures = 0
            resumed = False
            while True:
                try:
                    if not resumed:
                        resumed = True  # once: a leftover that cannot go must not hold uploads
                        self._resume(clean_stale)
                    outcome = self._send_oldest(failures + 1)
                except Exception as exc:  # noqa: BLE001 - the thread must outlive the spool
                    self._spool_failed(exc, failures + 1)
                    outcome = FAILED
                if outcome != GONE:  # delivered (or already there), idle: healthy again
                    self.counters.attempt_failed = outcome == FAILED
                if outcome == IDLE:
                    if self._closing.is_set():
                        return
                    self._wake.wait(defaults.UPLOAD_IDLE_POLL_S)
                    self._wake.clear()
                elif outcome == DELIVERED:
                    failures = 0
                elif outcome == FAILED:
                    failures += 1
                    if self._closing.is_set():
                        return  # shutting down and failing: leave the rest spooled
                    self._closing.wait(backoff_s(failures, self.runner.settings))
                # GONE (dropped by the byte limit meanwhile): the next file at once
        finally:
            owner.release()

    def _resume(self, clean_stale: bool) -> None:
        if clean_stale:
            self.spool.remove_leftovers()
        pending = self.spool.pending()
        if pending:
            log.info("event=upload_resume %s files_pending=%d bytes_pending=%d", self.label,
                     len(pending), sum(e.size for e in pending))

    def _send_oldest(self, attempt: int) -> str:
        """IDLE, GONE, DELIVERED or FAILED (the upload; spool errors raise)."""
        entry = self.spool.oldest()
        if entry is None:
            return IDLE
        if not self.spool.begin(entry):
            return GONE
        delivered = False
        try:
            self._deliver(entry)
            delivered = True
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any one file
            self._failed(entry, exc, attempt)
        finally:
            self.spool.end(entry, delivered)
        return DELIVERED if delivered else FAILED

    def _deliver(self, entry: SpoolEntry) -> None:
        self.delivery.deliver(entry)

    def _scrubbed(self, exc: Exception) -> str:
        text = str(exc) if isinstance(exc, RcloneError) else f"{type(exc).__name__}: {exc}"
        return scrub(text, self.runner.secrets)

    def _failed(self, entry: SpoolEntry, exc: Exception, failures: int) -> None:
        self.counters.uploads_failed += 1
        self.counters.error(self._scrubbed(exc))
        log.warning("event=upload_failed %s file=%s failures=%d error=%r", self.label,
                    entry.dest, failures, self.counters.last_error)

    def _spool_failed(self, exc: Exception, failures: int) -> None:
        self.counters.spool_errors += 1
        self.counters.error(self._scrubbed(exc))
        log.error("event=upload_spool_error %s spool=%s failures=%d error=%r (queued files "
                  "wait; retried after a backoff)", self.label, self.spool.directory, failures,
                  self.counters.last_error)
