"""Capture an interface this node does not capture continuously, live, for one request.

pcapdaemon captured any interface of its host, opening it when a request named it. pushcap
captures the `[[interface]]` list always (so requests can reach back in time), and, unless
`[general] ondemand = false`, serves a request naming another interface of the host the way
pcapdaemon did: a libpcap handle opened for that capture alone, feeding a small private ring
that an ordinary CaptureJob reads. There is no lookback (nothing was kept before the handle
opened), and the result's `notes` say so; `before` or a past `start` cannot be served.

The handle is closed as soon as the capture ends, whatever ended it.
"""

from __future__ import annotations

import logging
import threading

from pushcap import defaults
from pushcap.capture.live import LiveSource, capture_devices
from pushcap.capture.ring import Ring
from pushcap.capture.source import SourceError
from pushcap.trigger.job import CaptureJob, CaptureOutcome, ring_latency_s
from pushcap.trigger.message import Capture, CaptureRequest

log = logging.getLogger("pushcap.trigger.on_demand")


def host_interfaces() -> tuple[str, ...]:
    """The devices libpcap can capture on this host (pcapdaemon's FindAllDevs)."""
    return capture_devices() or ()


def on_demand_note(interface: str) -> str:
    return (f"interface {interface!r} is not in [[interface]]: captured live on demand from the "
            "request on, without lookback (`before` and a past `start` cannot be served)")


def capture_on_demand(request: CaptureRequest, capture: Capture,
                      stop: threading.Event) -> CaptureOutcome:
    """Open the interface, run the capture over a private ring, close it. SourceError when the
    interface cannot be opened (gone meanwhile, not up, no permission)."""
    poll_timeout_ms = defaults.POLL_TIMEOUT_MS
    source = LiveSource(capture.interface, poll_timeout_ms=poll_timeout_ms,
                        buffer_bytes=defaults.ON_DEMAND_BUFFER_BYTES)
    ring = Ring(capture.interface, source.linktype, source.snaplen,
                defaults.ON_DEMAND_RING_SECONDS, defaults.ON_DEMAND_RING_BYTES)
    ring.hurry_with(source.hurry)  # the job waits for the batch being gathered: end it
    errors: list[str] = []
    reader = threading.Thread(target=_feed, args=(source, ring, errors),
                              name=f"on-demand-{capture.interface}", daemon=True)
    log.info("event=trigger_on_demand_open requestid=%s interface=%s", request.request_id,
             capture.interface)
    reader.start()
    try:
        outcome = CaptureJob(request, capture.interface, capture.alias, ring, stop,
                             ring_latency_s(poll_timeout_ms)).run()
    finally:
        source.stop()
        reader.join(poll_timeout_ms / 1000 + 5.0)
        source.close()
        ring.close()
    if errors and not outcome.packets:
        raise SourceError(errors[0])
    outcome.notes.insert(0, on_demand_note(capture.interface))
    outcome.notes.extend(f"capture of {capture.interface} failed: {e}" for e in errors)
    return outcome


def _feed(source: LiveSource, ring: Ring, errors: list[str]) -> None:
    try:
        for batch in source.batches():
            ring.append(batch)
    except SourceError as exc:  # the interface went away mid-capture: the job ends "closed"
        errors.append(str(exc))
        log.warning("event=trigger_on_demand_error interface=%s error=%r", source.name, str(exc))
    finally:
        ring.close()
