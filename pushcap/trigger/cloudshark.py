"""Upload a pcap held in memory to CloudShark (`POST /api/v1/<token>/upload`).

CloudShark answers 200 with `{"id", "filename"}`, or 4xx/5xx with `{"status", "exceptions"}`.
A 5xx or a connection error is worth another try (with backoff); a 4xx is not (the token or the
file is wrong and will stay wrong). The token is part of the URL, so neither the URL nor an
exception text that may quote it is ever logged unredacted.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import requests

from pushcap import defaults
from pushcap.config.pcapdaemon import CloudSharkSettings

log = logging.getLogger("pushcap.trigger.cloudshark")


class UploadError(Exception):
    """The upload did not succeed; `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None,
                 exceptions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.exceptions = exceptions


@dataclass(frozen=True)
class UploadResult:
    capture_id: str
    filename: str
    url: str
    attempts: int


def additional_tags(customer: str | None, alertid: int | None, tags: tuple[str, ...],
                    alias: str | None, node: str, interface: str, snap: int) -> str:
    """CloudShark tags as pcapdaemon builds them, leaving out the parts a request lacks."""
    parts = []
    if customer:
        parts.append(f"customer:{customer}")
    if alertid:  # 0 is pcapdaemon's "no alert id": left out, as pcapdaemon leaves it
        parts.append(f"alertid:{alertid}")
    parts.extend(tags)
    if alias:
        parts.append(f"alias:{alias}")
    parts += [f"node:{node}", f"interface:{interface}", f"snaplength:{snap}"]
    return ",".join(parts)


class CloudSharkClient:
    """Thread-safe uploader; one instance serves every capture of the service."""

    def __init__(self, settings: CloudSharkSettings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.verify = self.settings.ca_file or self.settings.verify_tls
        return session

    def redact(self, text: str) -> str:
        token = self.settings.token
        return text.replace(token, "***") if token else text

    def upload(self, data: bytes, filename: str, tags: str) -> UploadResult:
        """Upload with retries; UploadError once no further attempt is worth making."""
        settings = self.settings
        backoff_s = settings.retry_backoff_s
        attempts = settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(data, filename, tags, attempt)
            except UploadError as exc:
                retryable = exc.status is None or exc.status >= 500
                log.warning("event=cloudshark_error host=%s filename=%s attempt=%d/%d status=%s "
                            "error=%r exceptions=%s", settings.host, filename, attempt, attempts,
                            exc.status, str(exc), list(exc.exceptions))
                if not retryable or attempt == attempts:
                    raise
                if self.stop.wait(min(backoff_s, defaults.CS_MAX_BACKOFF_S)):
                    raise
                backoff_s *= 2
        raise AssertionError("unreachable")

    def _attempt(self, data: bytes, filename: str, tags: str, attempt: int) -> UploadResult:
        settings = self.settings
        files = {"file": (filename, data, "application/vnd.tcpdump.pcap")}
        form = {"additional_tags": tags, "filename": filename}
        try:
            answer = self._session().post(settings.upload_url(), files=files, data=form,
                                          timeout=settings.timeout_s)
        except requests.RequestException as exc:
            raise UploadError(self.redact(f"{type(exc).__name__}: {exc}")) from None
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if answer.status_code == 200 and isinstance(body.get("id"), str | int):
            capture_id = str(body["id"])
            return UploadResult(capture_id, str(body.get("filename", filename)),
                                settings.capture_url(capture_id), attempt)
        exceptions = body.get("exceptions") or []
        if not isinstance(exceptions, list):
            exceptions = [str(exceptions)]
        problem = "answer without an id" if answer.status_code == 200 else "upload refused"
        raise UploadError(self.redact(f"HTTP {answer.status_code}: {problem}"),
                          answer.status_code if answer.status_code != 200 else 502,
                          tuple(self.redact(str(e))[:500] for e in exceptions[:10]))

