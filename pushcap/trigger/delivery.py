"""Deliver one finished capture: local folder, CloudShark and/or S3, with a fallback folder.

A capture goes to the fallback folder when writelocal did not keep it and an upload that is on
failed (the other upload may have taken it: the failed one's copy is still kept), or when no
destination is on at all: a capture is never lost.

File names are built only from this node's name, the interface (both from configuration) and a
number, each reduced to a safe character set, and written with O_EXCL under a hidden temporary
name then renamed: nothing from a message can name a path, escape the folder or overwrite a file.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.trigger.cloudshark import CloudSharkClient, UploadError, additional_tags
from pushcap.trigger.job import CaptureOutcome
from pushcap.trigger.message import CaptureRequest
from pushcap.trigger.s3_upload import S3Uploader, S3UploadError

log = logging.getLogger("pushcap.trigger.delivery")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,250}")


class DeliveryError(Exception):
    """Neither CloudShark nor a folder took the capture."""


@dataclass
class Delivery:
    path: str | None = None  # where the file was written (writelocal, or the fallback folder)
    fallback: bool = False
    cloudshark_id: str | None = None
    cloudshark_url: str | None = None
    upload_error: str | None = None
    local_error: str | None = None  # writelocal failed (the capture then goes to the fallback)
    upload_exceptions: tuple[str, ...] = ()
    attempts: int = 0
    s3_url: str | None = None  # the object's URL ([s3])
    s3_error: str | None = None
    s3_attempts: int = 0


def safe_part(text: str) -> str:
    """A name part made of [A-Za-z0-9._-] only, never empty, never starting with a dot."""
    part = _UNSAFE.sub("_", text)[:64].lstrip(".")
    return part or "_"


def capture_filename(node: str, interface: str, when_s: int) -> str:
    """pcapdaemon's `<node>-<iface>-<epoch>.pcap`, from configured values only."""
    return f"{safe_part(node)}-{safe_part(interface)}-{when_s}.pcap"


def write_into(folder: Path, filename: str, data: bytes) -> Path:
    """Write `data` as folder/filename (or `..._2.pcap` if taken); never follows a path out."""
    if not _SAFE_FILENAME.fullmatch(filename):
        raise ValueError(f"unsafe file name {filename!r}")
    folder.mkdir(parents=True, exist_ok=True)
    stem, dot, suffix = filename.rpartition(".")
    tmp = folder / f".{filename}.{os.getpid()}.{time.monotonic_ns()}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for n in range(1, 1000):
            name = filename if n == 1 else f"{stem}_{n}{dot}{suffix}"
            target = folder / name
            try:
                os.link(tmp, target)  # fails if taken: nothing is ever overwritten
            except FileExistsError:
                continue
            return target
        raise OSError(f"{folder}: no free name for {filename}")
    finally:
        tmp.unlink(missing_ok=True)


class Deliverer:
    """Applies the settings' delivery rules to each finished capture."""

    def __init__(self, settings: TriggerSettings, client: CloudSharkClient | None,
                 s3: S3Uploader | None = None) -> None:
        self.settings = settings
        self.client = client
        self.s3 = s3

    def deliver(self, request: CaptureRequest, outcome: CaptureOutcome) -> Delivery:
        settings = self.settings
        filename = capture_filename(settings.node_name, outcome.interface,
                                    request.received_ns // 1_000_000_000)
        data = outcome.pcap
        result = Delivery()
        written_locally = False
        if settings.write_local:
            try:
                result.path = str(write_into(settings.local_dir, filename, data))
                written_locally = True
                log.info("event=trigger_written requestid=%s interface=%s path=%s",
                         request.request_id, outcome.interface, result.path)
            except OSError as exc:
                result.local_error = f"{settings.local_dir}: {exc.strerror or exc}"
                log.error("event=trigger_write_failed requestid=%s interface=%s error=%r",
                          request.request_id, outcome.interface, result.local_error)
        uploaded_ok = False
        tags = additional_tags(request.customer, request.alertid, request.tags,
                               outcome.alias, settings.node_name, outcome.interface, outcome.snap)
        if self.client is not None and settings.cloudshark.upload:
            try:
                uploaded = self.client.upload(data, filename, tags)
            except UploadError as exc:
                result.upload_error = str(exc)
                result.upload_exceptions = exc.exceptions
            else:
                uploaded_ok = True
                result.cloudshark_id = uploaded.capture_id
                result.cloudshark_url = uploaded.url
                result.attempts = uploaded.attempts
                log.info("event=trigger_uploaded requestid=%s interface=%s id=%s url=%s "
                         "attempts=%d", request.request_id, outcome.interface,
                         uploaded.capture_id, uploaded.url, uploaded.attempts)
        s3_ok = self._to_s3(request, outcome, data, filename, tags, result)
        failed = result.upload_error is not None or result.s3_error is not None
        if not written_locally and (failed or not (uploaded_ok or s3_ok)):
            # An upload failed, or none is on: keep the capture rather than lose it.
            result.path = str(write_into(settings.fallback_dir, filename, data))
            result.fallback = True
            log.warning("event=trigger_fallback requestid=%s interface=%s path=%s",
                        request.request_id, outcome.interface, result.path)
        return result

    def _to_s3(self, request: CaptureRequest, outcome: CaptureOutcome, data: bytes,
               filename: str, tags: str, result: Delivery) -> bool:
        if self.s3 is None or not self.settings.s3.upload:
            return False
        try:
            uploaded = self.s3.upload(data, filename, tags)
        except S3UploadError as exc:
            result.s3_error = str(exc)
            log.error("event=trigger_s3_failed requestid=%s interface=%s error=%r",
                      request.request_id, outcome.interface, result.s3_error)
            return False
        result.s3_url, result.s3_attempts = uploaded.url, uploaded.attempts
        log.info("event=trigger_s3_uploaded requestid=%s interface=%s url=%s attempts=%d",
                 request.request_id, outcome.interface, uploaded.url, uploaded.attempts)
        return True
