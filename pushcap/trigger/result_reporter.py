"""Every result the trigger service owes, out: counted, kept for /status, published.

A message gets one result per capture (ok, empty or error) or, refused, one "rejected" result.
Each goes to `recent` (the last results, for /status) and the publisher (results.py), and is
reported to `completions`, so a queue message is deleted only after its last result is out
(completion.py). What a capture's result says is built here from its outcome and delivery, so
every path that ends a capture answers in the same shape.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from pushcap.trigger.completion import Completions
from pushcap.trigger.delivery import Delivery
from pushcap.trigger.job import CaptureOutcome
from pushcap.trigger.message import Capture, CaptureRequest, request_id_of
from pushcap.trigger.recent import RecentResults
from pushcap.trigger.results import ResultPublisher, result_record

log = logging.getLogger("pushcap.trigger")


class ResultReporter:
    """Publishes results for one node; `count` is the service's counter (ledger.py)."""

    def __init__(self, node_name: str, publisher: ResultPublisher, recent: RecentResults,
                 completions: Completions, count: Callable[[str], None]) -> None:
        self.node_name = node_name
        self.publisher = publisher
        self.recent = recent
        self.completions = completions
        self._count = count

    def rejected(self, data: bytes | str, field: str, error: str,
                 request: CaptureRequest | None = None) -> None:
        """Publish a refusal; `request`: one refused after parsing, which owes nothing more."""
        log.warning("event=trigger_rejected field=%s error=%r", field, error)
        self._count("rejected")
        try:
            request_id = request_id_of(data)
        except Exception:  # noqa: BLE001 - the id is a courtesy; the rejection must go out
            request_id = None
        self.publish(result_record(self.node_name, request_id, "rejected",
                                   field=field, error=error))
        if request is not None:
            self.completions.settle(request)

    def capture(self, request: CaptureRequest, capture: Capture, status: str,
                notes: list[str] | None = None, **fields) -> None:
        """Publish one capture's result; the request's notes come first, then the capture's."""
        self._count("captures")
        self._count(f"captures_{status}")
        all_notes = [*request.notes, *(notes or ())]
        self.publish(result_record(
            self.node_name, request.request_id, status, interface=capture.interface,
            alias=capture.alias, alertid=request.alertid, customer=request.customer,
            latency_s=round((time.time_ns() - request.received_ns) / 1e9, 3),
            notes=all_notes or None, **fields))
        self.completions.published(request)

    def publish(self, record: dict) -> None:
        self.recent.add(record)
        self.publisher.publish(record)


def outcome_fields(outcome: CaptureOutcome) -> dict:
    """What every capture's result says of its outcome, delivered or not."""
    return dict(packets=outcome.packets, bytes=outcome.nbytes, reason=outcome.reason,
                snap=outcome.snap, missed_packets=outcome.missed_packets or None,
                window_start_ns=outcome.window_start_ns,
                window_end_ns=outcome.window_end_ns, before_s=outcome.before_s,
                notes=outcome.notes)


def delivery_fields(delivery: Delivery) -> tuple[str, dict]:
    """The status of a delivered capture ("error" when any destination failed) and what its
    result says of the delivery; fields that do not apply are None and left out."""
    error = delivery.upload_error or delivery.s3_error or delivery.local_error
    return ("error" if error else "ok"), dict(
        # absolute: a result is read by programs that do not share the daemon's folder
        path=os.path.abspath(delivery.path) if delivery.path else None,
        fallback=delivery.fallback or None,
        cloudshark_id=delivery.cloudshark_id, cloudshark_url=delivery.cloudshark_url,
        s3_url=delivery.s3_url, s3_attempts=delivery.s3_attempts or None, error=error,
        exceptions=list(delivery.upload_exceptions) or None,
        attempts=delivery.attempts or None)
