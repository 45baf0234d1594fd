"""Queued uploads that no rclone target owns any more (a reload removed it, a restart went on
without it) are said once, with what they hold, instead of waiting unseen."""

from __future__ import annotations

import logging

from pushcap.push.spool_folder import SpoolFolder
from pushcap.push.spool_orphans import orphaned_queues, say_orphaned_queues


def queue_with(spool_dir, desc_name: str, files: int):
    queue = spool_dir / desc_name / "series.queue"
    queue.mkdir(parents=True)
    folder = SpoolFolder(queue, desc_name)
    for i in range(files):
        src = spool_dir / f"part{desc_name}{i}"
        src.write_bytes(b"x" * (100 + i))
        folder.move_in(src, 1_700_000_000_000_000_000 + i, f"remote:bucket/f{i}.pcap")
    return queue


def test_a_queue_no_target_owns_is_found_with_its_files_and_bytes(tmp_path):
    gone = queue_with(tmp_path, "removed", 3)
    queue_with(tmp_path, "kept", 2)
    (tmp_path / "empty" / "s.queue").mkdir(parents=True)  # nothing waits there: not said
    assert orphaned_queues(tmp_path, {"kept"}) == [(gone, 3, 100 + 101 + 102)]
    assert orphaned_queues(tmp_path, {"kept", "removed"}) == []
    assert orphaned_queues(tmp_path / "no-spool-yet", set()) == []


def test_each_orphaned_queue_is_said_once(tmp_path, caplog):
    queue_with(tmp_path, "removed", 1)
    said: set = set()
    with caplog.at_level(logging.WARNING, logger="pushcap.push"):
        say_orphaned_queues(tmp_path, set(), said)
        say_orphaned_queues(tmp_path, set(), said)  # a second reload: already said
    lines = [r.getMessage() for r in caplog.records if "event=spool_orphaned" in r.getMessage()]
    assert len(lines) == 1 and "files_pending=1 bytes_pending=100" in lines[0], lines
