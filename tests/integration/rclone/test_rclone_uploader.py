"""The uploader thread against a real remote: it outlives a failing spool, and a reload's successor
never shares a spool folder with a predecessor that is still busy."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from test_rclone_delivery import OURS, THEIRS, queue
from test_rclone_push import make_target, settings, wait_until

from pushcap.push import uploader
from pushcap.push.ship import make_shipper

pytestmark = pytest.mark.integration


def events(caplog, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"event={event} " in r.getMessage()]


def test_uploader_outlives_a_failing_spool(tmp_path, webdav_remote, caplog):
    """Listing the spool fails (here a symlink loop named like an entry: ELOOP, as EIO or a
    wrong permission would): the thread logs and counts it, backs off, keeps trying, and
    uploads again once the cause is gone. It used to die, leaving files queued until a restart."""
    shipper = make_shipper(make_target("sick", "pcdav:push/all"), Path("push/all"),
                           settings(tmp_path))
    queue(shipper, tmp_path, OURS, "100")
    with caplog.at_level(logging.INFO, logger="pushcap.push"):
        shipper.start()
        try:
            wait_until(lambda: "all_100.pcap" in webdav_remote.files("push"), 20, "a first upload")
            loop = shipper.spool.directory / "00000000000000000001-push%2Floop.pcap"
            os.symlink(loop.name, loop)
            wait_until(lambda: len(events(caplog, "upload_spool_error")) >= 2, 20,
                       "the thread to try the spool again")
            stats = shipper.stats()  # status still answers, with the reason
            assert stats["spool_errors"] >= 2 and stats["files_pending"] is None
            assert "Too many levels of symbolic links" in stats["last_error"]
            loop.unlink()
            queue(shipper, tmp_path, THEIRS, "200")
            wait_until(lambda: shipper.stats()["files_pending"] == 0, 20, "the spool to empty")
        finally:
            shipper.close(timeout_s=10)
    assert webdav_remote.files("push") == {"all_100.pcap": OURS, "all_200.pcap": THEIRS}
    assert shipper.stats()["uploads_ok"] == 2 and shipper.stats()["uploads_failed"] == 0
    first = events(caplog, "upload_spool_error")[0]
    assert "target=sick series=all" in first and "failures=1 " in first
    assert "Too many levels of symbolic links" in first


def test_reload_successor_waits_for_a_predecessor_busy_past_its_close(tmp_path, webdav_remote,
                                                                      monkeypatch, caplog):
    """The engine starts a reload's successor once the predecessor's close() returned. That
    close gives up on a thread busy outside rclone past the kill (hashing a large file, a hung
    disk; here held on purpose); the successor on the same spool folder must then neither
    upload beside it nor delete what may be its live files, and takes over when it ends."""
    monkeypatch.setattr(uploader, "KILL_JOIN_S", 0.2)
    target, prefix, rclone = make_target("rl", "pcdav:push/all"), Path("push/all"), \
        settings(tmp_path)
    old = make_shipper(target, prefix, rclone)
    queue(old, tmp_path, OURS, "100")
    busy, release = threading.Event(), threading.Event()
    recorded_final = old.spool.recorded_final

    def held(entry):
        busy.set()
        release.wait(30)
        return recorded_final(entry)

    monkeypatch.setattr(old.spool, "recorded_final", held)  # this instance only
    with caplog.at_level(logging.INFO, logger="pushcap.push"):
        old.start()
        assert busy.wait(10)
        old.close(timeout_s=0.2)
        old_thread = old.uploader._thread
        assert old_thread.is_alive() and events(caplog, "upload_stop_late")
        live = old.spool.directory / ".00000000000000000001.final"  # as a note being written
        live.write_text("push/all_1.pcap")
        new = make_shipper(target, prefix, rclone)
        new.start(clean_stale=False)  # as the engine starts a successor
        try:
            release.wait(1.5)  # time enough for an upload, were it not waiting
            assert webdav_remote.files("push") == {} and new.stats()["uploads_ok"] == 0
            assert events(caplog, "upload_wait")
            release.set()
            old_thread.join(10)
            wait_until(lambda: new.stats()["files_pending"] == 0, 20, "the successor's upload")
        finally:
            release.set()
            new.close(timeout_s=10)
    assert webdav_remote.files("push") == {"all_100.pcap": OURS}
    assert new.stats()["uploads_ok"] == 1 and old.stats()["uploads_ok"] == 0
    assert live.exists()  # a reload removes no leftovers: they may be a predecessor's
