"""Spool folders no rclone target owns: files a removed or renamed target left waiting.

A reload that drops an rclone target stops its uploader and keeps what it had not uploaded
(`event=upload_stop ... kept`): only a target with the same Desc takes the folder up again.
The daemon says each such folder with files in it once, at start and after each reload, so
files never wait unseen (before, a restart without the target said nothing at all).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pushcap.push.spool_folder import SpoolFolder

log = logging.getLogger("pushcap.push")


def orphaned_queues(spool_dir: Path, owned: set[str]) -> list[tuple[Path, int, int]]:
    """(queue folder, files, bytes) of each `<spool_dir>/<name>/<series>.queue/` holding
    files, for every <name> not in `owned` (the Descs' file names of the rclone targets)."""
    try:
        folders = sorted(p for p in spool_dir.iterdir() if p.is_dir() and p.name not in owned)
    except OSError:  # no spool yet, or not readable: the targets' own uploaders say so
        return []
    found = []
    for folder in folders:
        for queue in sorted(folder.glob("*.queue")):
            try:
                entries = SpoolFolder(queue, folder.name).entries()
            except OSError:
                continue
            if entries:
                found.append((queue, len(entries), sum(e.size for e in entries)))
    return found


def say_orphaned_queues(spool_dir: Path, owned: set[str], said: set[Path]) -> None:
    """One warning per orphaned queue not said before (`said` is kept by the caller)."""
    for queue, files, nbytes in orphaned_queues(spool_dir, owned):
        if queue in said:
            continue
        said.add(queue)
        log.warning("event=spool_orphaned folder=%s files_pending=%d bytes_pending=%d (no "
                    "rclone target with this Desc: load one again to upload them, or move "
                    "them by hand)", queue, files, nbytes)
