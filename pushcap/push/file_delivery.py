"""One spooled file to the remote: under a free name, atomically, exactly once.

For each file the uploader takes from the spool:

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
   reports one, the same md5/sha1/sha256 as the spool copy. Only then is the spool copy deleted
   (by the uploader, once `FileDelivery.deliver` returned).
   An object that fails the check is not known to be ours (rclone's existence check and move
   are two steps, so a writer that did not check could have replaced ours, or moved its own
   in just before ours): it is left alone, and the file is uploaded again under the next free
   name. On a backend without hashes a same-size object passes; the names keep apart files of
   different sizes.
"""

from __future__ import annotations

import logging
import time

from pushcap import defaults
from pushcap.push.rclone_remote import Rclone, RcloneError, display_path, same_content
from pushcap.push.spool import Spool
from pushcap.push.spool_folder import SpoolEntry
from pushcap.push.upload_stats import UploadStats

log = logging.getLogger("pushcap.push")

TMP_SUFFIX = ".pushcap-tmp"
OURS, TAKEN, REPLACED = "ours", "taken", "replaced"  # what one move did (FileDelivery._move)


def tmp_name(dest_base: str, enqueue_ns: int) -> str:
    """The hidden temporary object's name: the destination's basename cut (at a character) so
    the name fits the 255 bytes most backends allow, plus the entry's number to keep it unique
    (also between hosts and targets writing one folder). From the destination, not the final
    name: one name for every final name tried, so none is left behind when a name is lost."""
    base = dest_base.encode()[:defaults.UPLOAD_TMP_BASE_BYTES].decode("utf-8", "ignore")
    return f".{base}.{enqueue_ns}{TMP_SUFFIX}"


class FileDelivery:
    """Delivers spooled files of one series to `remote_spec`; raises when a file is not up."""

    def __init__(self, spool: Spool, runner: Rclone, remote_spec: str, suffix: str,
                 label: str, counters: UploadStats) -> None:
        self.spool = spool
        self.runner = runner
        self.remote_spec = remote_spec
        self.suffix = suffix
        self.label = label
        self.counters = counters

    def deliver(self, entry: SpoolEntry) -> None:
        """Returns once `entry` is verified at the remote (uploaded now or by an earlier run)."""
        started = time.monotonic()
        hashes: dict[str, str] = {}
        folder, slash, base = entry.dest.rpartition("/")
        tmp = f"{self.remote_spec}{folder}{slash}{tmp_name(base, entry.enqueue_ns)}"
        rel, present = self._recorded(entry, hashes)
        if present:
            self.runner.deletefile(tmp)  # a move on S3 is copy+delete: a crash between leaves it
            self.counters.already_present += 1
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
        self.counters.delivered(shown, entry.size, seconds)
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
        self.counters.name_conflicts += 1
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
