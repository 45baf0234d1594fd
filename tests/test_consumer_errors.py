"""A consumer's last error says when it happened, and status shows the newest of a target's own
error and its uploads' (issue 17, item 5: "No space left" read as live long after recovery)."""

from __future__ import annotations

import time

from pushcap.capture.consumer import CountsFailures, newest_error, utc_text


class Target(CountsFailures):
    pass


def test_no_error_no_figures():
    assert Target().error_figures() == {}
    assert newest_error({"last_error": "upload failed", "last_error_age_s": 3.0}, Target()) == {}


def test_the_last_error_carries_when_it_happened():
    target = Target()
    before = time.time()
    target.note_error(OSError(28, "No space left on device"))
    figures = target.error_figures()
    assert figures["last_error"] == "OSError: [Errno 28] No space left on device"
    assert 0 <= figures["last_error_age_s"] < 5
    when = time.strptime(figures["last_error_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(time.mktime(when) - time.mktime(time.gmtime(before))) <= 2


def test_the_newer_of_own_and_upload_errors_is_shown():
    target = Target()
    target.note_error(OSError(28, "No space left on device"))
    older_upload = {"last_error": "rclone copyto exit 1", "last_error_age_s": 600.0}
    assert newest_error(older_upload, target)["last_error"].startswith("OSError")
    newer_upload = {"last_error": "rclone copyto exit 1", "last_error_age_s": 0.0}
    assert newest_error(newer_upload, target) == {}  # the upload's stands, with its own age


def test_utc_text():
    assert utc_text(0) == "1970-01-01T00:00:00Z"
    assert utc_text(1_796_562_240_123_456_789) == "2026-12-06T13:04:00Z"
