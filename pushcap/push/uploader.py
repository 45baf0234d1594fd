"""The uploader thread of an rclone series: spooled files to the remote, oldest first, exactly once.

One file at a time, so files arrive in time order. For each queued file:

1. Find its final name: `<dest>` if free, else `<stem>_2<suffix>`, `_3`... (as File mode, nothing
   is overwritten), and record it in the spool (`Spool.record_final`) before anything moves
   there. If the *recorded* name already holds an object of the file's size and (where the
   backend has one) hash, an earlier run delivered it and died before deleting the spool copy:
   the file counts as delivered and is not uploaded again (no duplicate at the destination),
   and the hidden temporary object is deleted if still there (on S3 a move is a copy and a
   delete, and the run may have died between them).
   An object under any other name is never taken for ours, however alike: on a backend without
   hashes only the size can be compared, and skipping the upload would delete the only copy.
2. `rclone copyto` to a hidden temporary object beside the destination
   (`.<dest basename>.<enqueue_ns>.pushcap-tmp`, the basename cut to fit a file name; the same
   name on every attempt and for every final name tried, so a retry replaces what a killed
   attempt left), then `rclone moveto --ignore-existing` to the final name. This is the
   atomic-upload approach for every backend: the final name appears only by the server-side
   move of a complete object (a rename on SFTP/WebDAV/local, a copy on S3, which creates the
   object whole), so a reader never sees a partial object under the final name.
3. Other writers share the remote: another host pushing the same Path (epoch-aligned windows give
   the same names), another target whose Path names the same folder. They may take the chosen
   name between our choice and our move, so the move never replaces an object: if the
   temporary object is still there after it, the name was taken and the next free name is
   recorded and tried (`event=upload_name_taken`, counted in `name_conflicts`).
4. Verify the final object with `rclone lsjson --stat --hash`: same size and, where the backend
   reports one, the same md5/sha1/sha256 as the spool copy. Only then is the spool copy deleted.
   An object that fails the check is not known to be ours (rclone's existence check and move
   are two steps, so a writer that did not check could have replaced ours, or moved its own
   in just before ours): it is left alone, and the file is uploaded again under the next free
   name. On a backend without hashes a same-size object passes; the names keep apart files of
   different sizes.

A failure keeps the file queued and waits `retry_min_s * 2**(failures-1)` (at most
`retry_max_s`; the exponent is capped, so an outage of any length cannot overflow it), half of
it random jitter, before trying the oldest file again. A failing spool (listing or deleting
raises: permissions, I/O errors, a damaged folder) is retried the same way, counted in
`spool_errors` and `last_error`: only close() ends the thread. Nothing here blocks the series:
`deliver()` only renames into the spool and wakes this thread.

A spool folder has one uploader at a time in this process: a reload's successor waits for a
predecessor still busy past its close() (see `Uploader._claim`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from pathlib import Path

from pushcap import defaults
from pushcap.capture.consumer import utc_text
from pushcap.config.secrets import scrub
from pushcap.push.rclone_remote import (
    Rclone,
    RcloneError,
    RcloneSettings,
    display_path,
    same_content,
)
from pushcap.push.spool import Spool, SpoolEntry

log = logging.getLogger("pushcap.push")

TMP_SUFFIX = ".pushcap-tmp"
MAX_DOUBLINGS = 64  # retry_min_s * 2**64 is past any retry_max_s; 2.0**1024 would overflow
KILL_JOIN_S = defaults.UPLOAD_KILL_JOIN_S  # a module name, as tests patch it
IDLE, GONE, DELIVERED, FAILED = "idle", "gone", "delivered", "failed"  # what one step did
OURS, TAKEN, REPLACED = "ours", "taken", "replaced"  # what one move did (Uploader._move)

# The one uploader of each spool folder in this process (see Uploader._claim).
_spool_owners: dict[Path, threading.Lock] = {}
_spool_owners_lock = threading.Lock()


def _spool_owner(directory: Path) -> threading.Lock:
    with _spool_owners_lock:  # abspath, not resolve(): no file system access that could fail
        return _spool_owners.setdefault(Path(os.path.abspath(directory)), threading.Lock())


def backoff_s(failures: int, settings: RcloneSettings) -> float:
    """Exponential backoff with equal jitter: spreads retries of many series after an outage.
    The exponent is capped, so a remote down for days (over a thousand failures) keeps the
    thread retrying at `retry_max_s` instead of killing it with an OverflowError."""
    doublings = min(max(0, failures - 1), MAX_DOUBLINGS)
    delay = min(settings.retry_max_s, settings.retry_min_s * 2 ** doublings)
    return delay / 2 + random.uniform(0, delay / 2)


def tmp_name(dest_base: str, enqueue_ns: int) -> str:
    """The hidden temporary object's name: the destination's basename cut (at a character) so
    the name fits the 255 bytes most backends allow, plus the entry's number to keep it unique
    (also between hosts and targets writing one folder). From the destination, not the final
    name: one name for every final name tried, so none is left behind when a name is lost."""
    base = dest_base.encode()[:defaults.UPLOAD_TMP_BASE_BYTES].decode("utf-8", "ignore")
    return f".{base}.{enqueue_ns}{TMP_SUFFIX}"


class Uploader:
    """Sends one series' spool to `remote_spec` (the `remote:` part of the target's Path)."""

    def __init__(self, spool: Spool, runner: Rclone, remote_spec: str, suffix: str,
                 label: str) -> None:
        self.spool = spool
        self.runner = runner
        self.remote_spec = remote_spec
        self.suffix = suffix
        self.label = label
        runner.hide(remote_spec)  # its connection string's keys and headers, out of every error
        self.uploads_ok = 0
        self.uploads_failed = 0
        self.spool_errors = 0  # the spool itself failed (listing, deleting): uploads wait
        self.already_present = 0
        self.name_conflicts = 0  # chosen names another writer took or held (see module doc)
        self.bytes_uploaded = 0
        self.upload_seconds = 0.0
        self.last_error = ""
        self.last_error_ns = 0
        self.last_upload = ""
        self.attempt_failed = False  # the newest step failed (an upload or the spool)
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, clean_stale: bool = True) -> None:
        """Start the thread (idempotent). It takes the spool folder first (`_claim`), then, with
        `clean_stale` (the first start in this process), removes crash leftovers, then resumes
        what a previous run left queued. Never removes leftovers at a reload (clean_stale
        False): there they may be a predecessor's live files, not a crash's."""
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
                        "the next start)", self.label, len(pending), sum(e.size for e in pending),
                        self.spool.directory)

    def stats(self) -> dict:
        stats = self.spool.stats()
        stats.update(
            uploads_ok=self.uploads_ok,
            uploads_failed=self.uploads_failed,
            spool_errors=self.spool_errors,
            already_present=self.already_present,
            name_conflicts=self.name_conflicts,
            bytes_uploaded=self.bytes_uploaded,
            upload_mb_per_s=round(self.bytes_uploaded / 1e6 / self.upload_seconds, 1)
            if self.upload_seconds else 0.0,
            last_upload=self.last_upload,
            last_error=self.last_error,
            last_error_at=utc_text(self.last_error_ns) if self.last_error_ns else None,
            last_error_age_s=round((time.time_ns() - self.last_error_ns) / 1e9, 1)
            if self.last_error_ns else None,
            # the newest attempt failed: files wait in the spool until an upload succeeds
            upload_failing=self.attempt_failed,
        )
        return stats

    # --- the thread --------------------------------------------------------------------------
    def _run(self, clean_stale: bool) -> None:
        """Send the oldest file, again and again. Nothing ends this loop but close(): a failed
        upload or a failing spool (a listing or a delete raising OSError, any bug) is logged,
        counted and retried after a backoff, so files never stay queued until a restart."""
        owner = self._claim()
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
                    self.attempt_failed = outcome == FAILED
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

    def _claim(self) -> threading.Lock | None:
        """Become the only uploader of the spool folder in this process (the folder's lock,
        held until the thread ends); None if closed first. A reload's predecessor on the same
        folder normally ended in its close(), but one busy past the kill (see close) is still
        sending: two uploaders would send one queue at once and race on its notes, so this one
        waits for it to end."""
        owner = _spool_owner(self.spool.directory)
        if owner.acquire(blocking=False):
            return owner
        log.warning("event=upload_wait %s spool=%s (the previous uploader of this spool is "
                    "still busy; uploads start when it ends)", self.label, self.spool.directory)
        while not owner.acquire(timeout=defaults.UPLOAD_IDLE_POLL_S):
            if self._closing.is_set():
                return None
        log.info("event=upload_wait_over %s", self.label)
        return owner

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

    def _scrubbed(self, exc: Exception) -> str:
        text = str(exc) if isinstance(exc, RcloneError) else f"{type(exc).__name__}: {exc}"
        return scrub(text, self.runner.secrets)

    def _failed(self, entry: SpoolEntry, exc: Exception, failures: int) -> None:
        self.uploads_failed += 1
        self.last_error = self._scrubbed(exc)
        self.last_error_ns = time.time_ns()
        log.warning("event=upload_failed %s file=%s failures=%d error=%r", self.label,
                    entry.dest, failures, self.last_error)

    def _spool_failed(self, exc: Exception, failures: int) -> None:
        self.spool_errors += 1
        self.last_error = self._scrubbed(exc)
        self.last_error_ns = time.time_ns()
        log.error("event=upload_spool_error %s spool=%s failures=%d error=%r (queued files "
                  "wait; retried after a backoff)", self.label, self.spool.directory, failures,
                  self.last_error)

    def _deliver(self, entry: SpoolEntry) -> None:
        started = time.monotonic()
        hashes: dict[str, str] = {}
        folder, slash, base = entry.dest.rpartition("/")
        tmp = f"{self.remote_spec}{folder}{slash}{tmp_name(base, entry.enqueue_ns)}"
        rel, present = self._recorded(entry, hashes)
        if present:
            self.runner.deletefile(tmp)  # a move on S3 is copy+delete: a crash between leaves it
            self.already_present += 1
            log.info("event=upload_already_present %s file=%s bytes=%d", self.label,
                     display_path(self.remote_spec + rel), entry.size)
            return
        rel = rel or self._free_name(entry, set())
        self.spool.record_final(entry, rel)  # before the move: the one name a rerun accepts
        self.runner.copyto(entry.path, tmp)
        tried: set[str] = set()
        while (outcome := self._move(entry, tmp, rel, hashes)) != OURS:
            tried.add(rel)
            if len(tried) > defaults.UPLOAD_MAX_NAME_CONFLICTS:
                raise RcloneError(f"{len(tried)} names for "
                                  f"{display_path(self.remote_spec + entry.dest)} were taken by "
                                  "other writers meanwhile; trying again later")
            rel = self._free_name(entry, tried)
            self.spool.record_final(entry, rel)
            if outcome == REPLACED:  # our object left the temporary name: send it again
                self.runner.copyto(entry.path, tmp)
        seconds = time.monotonic() - started
        shown = display_path(self.remote_spec + rel)
        self.uploads_ok += 1
        self.bytes_uploaded += entry.size
        self.upload_seconds += seconds
        self.last_upload = shown
        log.info("event=upload_done %s file=%s bytes=%d seconds=%.2f queued_s=%.1f", self.label,
                 shown, entry.size, seconds, entry.age_s)

    def _move(self, entry: SpoolEntry, tmp: str, rel: str, hashes: dict[str, str]) -> str:
        """Move the temporary object to `rel` without replacing anything: OURS once the object
        there passes the check (only then may the spool copy go); TAKEN (the temporary object
        is still there: the name was taken meanwhile) or REPLACED (moved, but what is there now
        fails the check), with a warning. Either way another writer's file may be at `rel`, and
        it is left alone."""
        final = self.remote_spec + rel
        self.runner.moveto_if_free(tmp, final)
        if self.runner.stat(tmp) is not None:
            outcome, why = TAKEN, "taken after it was chosen; the object there was left alone"
        else:
            uploaded = self.runner.stat(final)
            if uploaded is not None and same_content(entry.path, uploaded, hashes):
                return OURS
            outcome, why = REPLACED, ("after the move the object there is not this file "
                                      "(size or hash differs: another writer's, or a damaged "
                                      "transfer); left alone")
        self.name_conflicts += 1
        log.warning("event=upload_name_taken %s file=%s spool_file=%s (%s; another host or "
                    "target writes the same name; this file goes under the next free name)",
                    self.label, display_path(final), entry.path, why)
        return outcome

    def _recorded(self, entry: SpoolEntry, hashes: dict[str, str]) -> tuple[str | None, bool]:
        """(the name to use, whether the file is there already) from the name recorded before
        an earlier move: (None, False) when there is none, or when another object holds it.

        Already there only under the recorded name (see the module docstring); a recorded name
        still free is used again (the move never happened, or the object was removed)."""
        recorded = self.spool.recorded_final(entry)
        if recorded is None:
            return None, False
        existing = self.runner.stat(self.remote_spec + recorded)
        if existing is None:
            return recorded, False
        return (recorded, True) if same_content(entry.path, existing, hashes) else (None, False)

    def _free_name(self, entry: SpoolEntry, skip: set[str]) -> str:
        """The first of `<dest>`, `<stem>_2<suffix>`... that holds no object and is not in
        `skip` (names lost to other writers) nor the recorded name (an object not ours is
        there, or `_recorded` would have used it)."""
        skip = skip | {self.spool.recorded_final(entry)}
        dest = entry.dest
        stem = dest[:-len(self.suffix)] if self.suffix and dest.endswith(self.suffix) else dest
        suffix = dest[len(stem):]
        n = 1
        while True:
            candidate = dest if n == 1 else f"{stem}_{n}{suffix}"
            if candidate not in skip and self.runner.stat(self.remote_spec + candidate) is None:
                return candidate
            n += 1
