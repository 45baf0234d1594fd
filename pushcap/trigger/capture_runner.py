"""One accepted capture, run on a worker thread and answered with exactly one result.

The capture comes from its interface's ring (with the archive's files behind it) or, for an
interface [[interface]] does not list, from a handle opened for it alone (on_demand.py). A
capture that found packets is delivered; either way its result is published, and whatever
fails on the way (the interface gone, a delivery bug) is an "error" result naming it, never an
exception out of the worker: the publisher is owed an answer for every capture it asked for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from pushcap.capture.bpf import BpfFilter
from pushcap.capture.ring import Ring
from pushcap.capture.source import SourceError
from pushcap.trigger.archive_seam import ArchiveSources
from pushcap.trigger.delivery import Deliverer
from pushcap.trigger.job import CaptureJob, CaptureOutcome
from pushcap.trigger.message import Capture, CaptureRequest
from pushcap.trigger.on_demand import capture_on_demand
from pushcap.trigger.packet_debug import log_packets
from pushcap.trigger.result_reporter import ResultReporter, delivery_fields, outcome_fields

log = logging.getLogger("pushcap.trigger")


class CaptureRunner:
    """Runs captures for the service; `stop` ends running ones early (they still deliver)."""

    def __init__(self, rings: Mapping[str, Ring], archives: ArchiveSources | None,
                 stop: threading.Event, late_s: float, deliverer: Deliverer,
                 results: ResultReporter) -> None:
        self.rings = rings
        self.archives = archives
        self.stop = stop
        self.late_s = late_s
        self.deliverer = deliverer
        self.results = results

    def run(self, request: CaptureRequest, capture: Capture, bpf: BpfFilter | None) -> None:
        """Capture, deliver and answer; `bpf`: the request's filter compiled for this ring."""
        try:
            ring = self.rings.get(capture.interface)
            if capture.on_demand:  # not in [[interface]]: opened for this capture alone
                outcome = capture_on_demand(request, capture, self.stop)
            elif ring is None:
                raise RuntimeError(f"interface {capture.interface} is configured but not "
                                   "being captured")
            else:
                archive = tuple(self.archives(capture.interface)) if self.archives else ()
                outcome = CaptureJob(request, capture.interface, capture.alias, ring,
                                     self.stop, self.late_s, bpf_filter=bpf,
                                     archive=archive).run()
            self._finish(request, capture, outcome)
        except SourceError as exc:  # the interface cannot be captured (down, gone): one line
            log.error("event=trigger_failed requestid=%s interface=%s error=%r",
                      request.request_id, capture.interface, str(exc))
            self.results.capture(request, capture, "error", error=str(exc), field="interface")
        except Exception as exc:  # noqa: BLE001 - a failed capture is a result, not a crash
            log.exception("event=trigger_failed requestid=%s interface=%s", request.request_id,
                          capture.interface)
            self.results.capture(request, capture, "error", error=f"{type(exc).__name__}: {exc}")

    def _finish(self, request: CaptureRequest, capture: Capture,
                outcome: CaptureOutcome) -> None:
        """Log the capture, deliver it unless empty, and publish its result."""
        stats = outcome_fields(outcome)
        log_outcome(request, capture, outcome)
        if outcome.packets == 0:
            self.results.capture(request, capture, "empty", **stats)
            return
        status, delivered = delivery_fields(self.deliverer.deliver(request, outcome))
        self.results.capture(request, capture, status, **stats, **delivered)


def log_outcome(request: CaptureRequest, capture: Capture, outcome: CaptureOutcome) -> None:
    """The capture's line and its notes (and, with `packetdebug`, its packets), before the
    delivery, so the log says what was captured even when delivering it hangs or fails."""
    log.info("event=trigger_captured requestid=%s interface=%s packets=%d bytes=%d "
             "reason=%s missed_packets=%d", request.request_id, capture.interface,
             outcome.packets, outcome.nbytes, outcome.reason, outcome.missed_packets)
    for note in outcome.notes:
        log.warning("event=trigger_note requestid=%s interface=%s note=%r",
                    request.request_id, capture.interface, note)
    if request.packet_debug:
        log_packets(request, outcome)
