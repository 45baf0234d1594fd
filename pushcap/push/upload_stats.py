"""What an uploader did, for status and metrics: its counters and its newest error.

Written by the uploader's thread only and read by status without a lock (each figure is one
attribute, so a reader sees each one whole, if not all of them from one moment).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pushcap.capture.consumer import utc_text


@dataclass
class UploadStats:
    uploads_ok: int = 0
    uploads_failed: int = 0
    spool_errors: int = 0  # the spool itself failed (listing, deleting): uploads wait
    already_present: int = 0
    name_conflicts: int = 0  # chosen names another writer took or held (see file_delivery.py)
    bytes_uploaded: int = 0
    upload_seconds: float = 0.0
    last_error: str = ""
    last_error_ns: int = 0
    last_upload: str = ""
    attempt_failed: bool = False  # the newest step failed (an upload or the spool)

    def delivered(self, shown: str, size: int, seconds: float) -> None:
        """A file is up and verified under `shown` (its remote name, for display)."""
        self.uploads_ok += 1
        self.bytes_uploaded += size
        self.upload_seconds += seconds
        self.last_upload = shown

    def error(self, error: str) -> None:
        """The newest failure, already scrubbed of secrets (the caller counted it)."""
        self.last_error = error
        self.last_error_ns = time.time_ns()

    def as_dict(self) -> dict:
        """The uploader's part of a series' stats (see `RcloneShipper.stats` for the whole)."""
        return dict(
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
