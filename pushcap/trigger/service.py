"""The trigger service: listener in, bounded pool of capture jobs, delivery and results out.

It only reads the rings the capture engine fills, so it can start after `LiveEngine.start()` and
stop before `LiveEngine.stop()` without either side waiting on the other. Concurrency and memory
are bounded by configuration: at most `max_concurrent` captures run, `max_queued` more wait, each
holds at most `max_bytes` of pcap; a request beyond that is refused with a result saying so.

Requests come from Redis (listener.py) and, with `[sqs]`, an SQS queue (sqs_listener.py, whose
messages are deleted once their results are out: completion.py); captures go to CloudShark, S3
(s3_upload.py) and/or a folder (delivery.py); an interface [[interface]] does not list is
opened for its capture alone (on_demand.py).

Every message gets an answer: a request this node cannot serve is published as "rejected" with
the field at fault, whatever made validation fail, and the listener goes on with the next one.
A request's `bpf` is compiled off the listener, under a time and size budget
(request_filter.py): a filter libpcap would take minutes on is refused and delays no other one.
What was adjusted on the way (an interface skipped, a lookback capped) is logged and carried in
each result's `notes`, so a publisher never mistakes a partial capture for the one it asked for.

The service is the intake and the bounded pool; a worker's capture, from ring to result, is
capture_runner.py's, publishing results is result_reporter.py's, and the counters and captures
in flight that `stats()` and `stop()` read are ledger.py's.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Mapping

from pushcap import defaults
from pushcap.capture.bpf import BpfFilter
from pushcap.capture.ring import Ring
from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.trigger.archive_seam import ArchiveSources
from pushcap.trigger.capture_runner import CaptureRunner
from pushcap.trigger.cloudshark import CloudSharkClient
from pushcap.trigger.completion import Completions, finish
from pushcap.trigger.delivery import Deliverer
from pushcap.trigger.job import ring_latency_s
from pushcap.trigger.ledger import Ledger
from pushcap.trigger.listener import Listener
from pushcap.trigger.message import (
    Capture,
    CaptureRequest,
    TriggerError,
    describe_request,
    parse_request,
)
from pushcap.trigger.on_demand import host_interfaces
from pushcap.trigger.recent import RecentResults
from pushcap.trigger.request_filter import Filters, RequestFilters
from pushcap.trigger.result_reporter import ResultReporter
from pushcap.trigger.results import ResultPublisher
from pushcap.trigger.s3_upload import S3Uploader
from pushcap.trigger.sqs_listener import SqsListener

log = logging.getLogger("pushcap.trigger")


class TriggerService:
    """Serves pcapdaemon-style capture requests from the given rings."""

    def __init__(self, settings: TriggerSettings, rings: Mapping[str, Ring],
                 interfaces: tuple[InterfaceConfig, ...],
                 poll_timeout_ms: float = defaults.POLL_TIMEOUT_MS,
                 archives: ArchiveSources | None = None) -> None:
        """`poll_timeout_ms` must be the engine's `[ring] poll_timeout_ms`: it bounds how late
        a packet reaches the rings, so how long a capture window is read on after its end.
        `archives`: an interface's indexed File targets, whose files serve the part of a
        window older than the ring (job.py); None: the ring alone, lookbacks capped to it."""
        self.settings = settings
        self.rings = rings
        self.interfaces = interfaces
        self.archives = archives
        self.late_s = ring_latency_s(poll_timeout_ms)
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(settings.max_concurrent + settings.max_queued)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            settings.max_concurrent, thread_name_prefix="trigger-job")
        self._ledger = Ledger()  # counters and captures in flight
        self.publisher = ResultPublisher(settings.redis)
        self.recent = RecentResults()  # the last results and their latency, for /status
        self.filters = RequestFilters(rings, settings.max_queued)  # off the listener's thread
        client = CloudSharkClient(settings.cloudshark, self._stop)
        self.deliverer = Deliverer(settings, client if settings.cloudshark.upload else None,
                                   S3Uploader(settings.s3, self._stop) if settings.s3.upload
                                   else None)
        self.listener = Listener(settings.redis, self.handle_message)
        self.sqs = SqsListener(settings.sqs, self.handle_message) if settings.sqs.listen \
            else None
        self._completions = Completions()  # when an SQS message's results are all out
        self.results = ResultReporter(settings.node_name, self.publisher, self.recent,
                                      self._completions, self._ledger.count)
        self.runner = CaptureRunner(rings, archives, self._stop, self.late_s, self.deliverer,
                                    self.results)

    def start(self) -> None:
        cs = self.settings.cloudshark
        log.info("event=trigger_start node=%s redis=%s upload=%s cloudshark=%s writelocal=%s "
                 "max_concurrent=%d", self.settings.node_name,
                 self.settings.redis.describe() if self.settings.redis.listen else "off",
                 cs.upload, cs.base_url if cs.upload else "-", self.settings.write_local,
                 self.settings.max_concurrent)
        if self.settings.redis.listen:
            self.listener.start()
        if self.settings.s3.upload:
            log.info("event=trigger_s3 destination=%s", self.settings.s3.describe())
        if self.sqs is not None:
            self.sqs.start()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop listening; running captures end now and deliver what they have. True if clean."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        clean = self.listener.stop(max(0.0, deadline - time.monotonic()))
        if self.sqs is not None:
            clean = self.sqs.stop(max(0.0, deadline - time.monotonic())) and clean
        self.filters.stop()
        pending = self._ledger.in_flight()
        _, not_done = concurrent.futures.wait(pending, max(0.0, deadline - time.monotonic()))
        if self.sqs is not None:
            self.sqs.release_in_flight()  # what did not finish goes back on the queue now
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.publisher.close()
        log.info("event=trigger_stopped unfinished=%d", len(not_done))
        return clean and not not_done

    def stats(self) -> dict:
        """Counters for `pushcap status` (the daemon calls this for its snapshot)."""
        running = self._ledger.running()
        return {**self._ledger.counts, "captures_in_progress": running,
                "redis_connected": self.listener.connected.is_set(),
                "redis_errors": self.listener.reconnects, **self.recent.snapshot(),
                **(self.sqs.stats() if self.sqs is not None else {})}

    def handle_message(self, data: bytes | str, received_ns: int,
                       on_results: Callable[[], None] | None = None) -> bool:
        """Validate and queue one message (called by a listener; tests may call it directly).
        `on_results` is called once every result the message owes is published (the SQS
        listener then deletes it); returns False when none is owed (another node's message)."""
        settings = self.settings
        self._ledger.count("requests")
        if settings.log_requests:
            log.info("event=trigger_message data=%r", _clip(data))
        try:
            request = parse_request(data, settings, self.interfaces, received_ns=received_ns,
                                    host_interfaces=host_interfaces if settings.on_demand
                                    else None)
        except TriggerError as exc:
            self.results.rejected(data, exc.field, str(exc))
            finish(on_results)
            return True
        except Exception as exc:  # noqa: BLE001 - a validator bug still owes the publisher an answer
            log.exception("event=trigger_validation_failed")
            self.results.rejected(data, "message", f"message: could not be validated "
                                  f"({type(exc).__name__}: {exc})"[:300])
            finish(on_results)
            return True
        if request is None:
            log.debug("event=trigger_not_for_us node=%s", settings.node_name)
            return False
        if request.log_request and not settings.log_requests:
            log.info("event=trigger_message data=%r", _clip(data))
        if on_results is not None:
            self._completions.expect(request, len(request.captures), on_results)
        if request.bpf is None:
            self._accept(request, {})
        elif not self.filters.submit(request, lambda filters: self._accept(request, filters),
                                     lambda exc: self.results.rejected(data, exc.field, str(exc),
                                                                       request)):
            self.results.rejected(data, "bpf", f"bpf: not compiled: busy, "
                                  f"{self.settings.max_queued} requests' filters are waiting "
                                  "to compile; try again", request)
        return True

    def _accept(self, request: CaptureRequest, filters: Filters) -> None:
        """Queue a request's captures, with its compiled filters (on the listener's thread
        without a `bpf`, else on request_filter's)."""
        log.info("event=trigger_accepted %s", describe_request(request))
        for note in request.notes:
            log.warning("event=trigger_note requestid=%s note=%r", request.request_id, note)
        for capture in request.captures:
            self._submit(request, capture, filters.get(capture.interface))

    def _submit(self, request: CaptureRequest, capture: Capture,
                bpf: BpfFilter | None = None) -> None:
        if self._stop.is_set() or not self._slots.acquire(blocking=False):
            busy = "stopping" if self._stop.is_set() else (
                f"busy: {self.settings.max_concurrent} captures running and "
                f"{self.settings.max_queued} waiting")
            log.warning("event=trigger_refused requestid=%s interface=%s reason=%r",
                        request.request_id, capture.interface, busy)
            self.results.capture(request, capture, "error", error=busy)
            return
        self._ledger.track(self._pool.submit(self._run, request, capture, bpf))

    def _run(self, request: CaptureRequest, capture: Capture, bpf: BpfFilter | None) -> None:
        try:
            self.runner.run(request, capture, bpf)
        finally:
            self._slots.release()


def _clip(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[:defaults.LOGGED_MESSAGE_CHARS]
