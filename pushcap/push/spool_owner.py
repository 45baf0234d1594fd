"""One uploader per spool folder in this process.

A reload's predecessor on the same folder normally ended in its close(), but one busy past the
kill (see `Uploader.close`) is still sending: two uploaders would send one queue at once and
race on its notes, so a successor waits for the folder's lock, held until a thread ends.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from pushcap import defaults

log = logging.getLogger("pushcap.push")

# The one uploader of each spool folder in this process (see claim_spool).
_spool_owners: dict[Path, threading.Lock] = {}
_spool_owners_lock = threading.Lock()


def _spool_owner(directory: Path) -> threading.Lock:
    with _spool_owners_lock:  # abspath, not resolve(): no file system access that could fail
        return _spool_owners.setdefault(Path(os.path.abspath(directory)), threading.Lock())


def claim_spool(directory: Path, label: str, closing: threading.Event) -> threading.Lock | None:
    """Become the only uploader of `directory` in this process: its lock, acquired (the
    caller releases it when its thread ends); None if `closing` is set first."""
    owner = _spool_owner(directory)
    if owner.acquire(blocking=False):
        return owner
    log.warning("event=upload_wait %s spool=%s (the previous uploader of this spool is "
                "still busy; uploads start when it ends)", label, directory)
    while not owner.acquire(timeout=defaults.UPLOAD_IDLE_POLL_S):
        if closing.is_set():
            return None
    log.info("event=upload_wait_over %s", label)
    return owner
