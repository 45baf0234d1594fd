"""One interface's capture thread: libpcap's batches into the ring, for as long as the daemon
runs. A failed handle (the interface went down or away) is closed and the interface reopened with
backoff, so a link that comes back is captured again; meanwhile `CaptureStats.error` says why it
is not (status, metrics). Before a failed handle is closed, what libpcap still holds is read
(LiveSource) and its counters are taken; packets it took in that could not be read are counted
(`lost_at_failure`) and logged, never silently gone."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pushcap import defaults
from pushcap.capture.live import LiveSource
from pushcap.capture.ring import Ring
from pushcap.capture.source import SourceError

log = logging.getLogger("pushcap.engine")

_IFF_UP = 0x1  # <linux/if.h>: the interface is administratively up


@dataclass
class CaptureStats:
    """An interface's capture counters since the daemon started (over every libpcap handle it
    had: a reopened handle counts from 0, so a closed one's last figures are kept in `base`)."""

    received: int = 0
    kernel_drops: int = 0
    if_drops: int = 0
    missed_by_push: int = 0
    lost_at_failure: int = 0  # taken in by a handle that failed, and not readable any more
    error: str | None = None  # why the interface is not being captured right now
    reopens: int = 0
    base: tuple[int, int, int] = (0, 0, 0)


def capture_until_stopped(name: str, source: LiveSource | None, ring: Ring, stats: CaptureStats,
                          open_source: Callable[[], LiveSource], stop: threading.Event) -> None:
    """Capture `name` into `ring` until `stop`; then close the ring (its readers drain it)."""
    try:
        backoff_s = 1.0
        last_stats = time.monotonic()
        while not stop.is_set():
            if source is None:
                try:
                    source = open_source()
                except SourceError as exc:
                    stats.error = str(exc)
                    log.error("event=capture_reopen_failed interface=%s error=%r retry_in_s=%g",
                              name, str(exc), backoff_s)
                    if wait_for_interface(name, backoff_s, stop):
                        break
                    backoff_s = _longer(backoff_s)
                    continue
                stats.error, stats.reopens = None, stats.reopens + 1
                log.warning("event=capture_reopened interface=%s reopens=%d", name, stats.reopens)
            ring.hurry_with(source.hurry)  # a waiting trigger ends the batch being gathered
            try:
                for batch in source.batches():
                    ring.append(batch)
                    if time.monotonic() - last_stats >= defaults.CAPTURE_STATS_INTERVAL_S:
                        last_stats = time.monotonic()
                        update_capture_stats(name, source, stats)
                    backoff_s = 1.0
            except Exception as exc:  # noqa: BLE001 - a capture must outlive any one failure
                stats.error = str(exc)
                if isinstance(exc, SourceError):
                    log.error("event=capture_error interface=%s error=%r retry_in_s=%g "
                              "read_after_error=%d", name, str(exc), backoff_s,
                              source.leftovers_read)
                else:  # a fault of pushcap's: said with its traceback, then captured on anew (a
                    # dead capture thread stopped capturing and left its ring open for good)
                    log.error("event=capture_failed interface=%s error=%r retry_in_s=%g", name,
                              repr(exc), backoff_s, exc_info=True)
                update_capture_stats(name, source, stats)
                count_unread(name, source, stats)
                stats.base = (stats.received, stats.kernel_drops, stats.if_drops)
                ring.hurry_with(None)
                source.close()
                source = None
                if wait_for_interface(name, backoff_s, stop):
                    break
                backoff_s = _longer(backoff_s)
    finally:  # whatever happened, the readers get what the ring holds, then its end
        if source is not None:
            update_capture_stats(name, source, stats)
        ring.hurry_with(None)
        ring.close()


def interface_up(name: str) -> bool:
    """The interface exists and is administratively up (what libpcap needs to open it)."""
    try:
        flags = Path(f"/sys/class/net/{name}/flags").read_text()
        return bool(int(flags, 16) & _IFF_UP)
    except (OSError, ValueError):
        return False


def wait_for_interface(name: str, backoff_s: float, stop: threading.Event,
                       state: Callable[[str], bool] = interface_up) -> bool:
    """Wait out a reopen backoff, but no longer than until the interface comes back: a link
    that returns after a long outage (when the backoff has grown to 30 s) is captured again
    within a poll, not when the backoff ends. Only a change counts: an interface that is up
    but cannot be opened (permissions) still waits the whole backoff. True when `stop` is set."""
    was_up = state(name)
    deadline = time.monotonic() + backoff_s
    while (left := deadline - time.monotonic()) > 0:
        if stop.wait(min(left, defaults.INTERFACE_POLL_S)):
            return True
        if not was_up and state(name):
            log.info("event=interface_back interface=%s", name)
            return False
        was_up = was_up and state(name)
    return stop.is_set()


def _longer(backoff_s: float) -> float:
    return min(backoff_s * 2, defaults.REOPEN_BACKOFF_MAX_S)


def count_unread(name: str, source: LiveSource, stats: CaptureStats) -> None:
    """Count, and log, the packets a failed handle took in but could not hand over."""
    unread = source.unread()
    if unread:
        stats.lost_at_failure += unread
        log.error("event=capture_lost interface=%s packets=%d lost_at_failure=%d (in libpcap's "
                  "buffer when the interface failed, and not readable)", name, unread,
                  stats.lost_at_failure)


def update_capture_stats(name: str, source: LiveSource, stats: CaptureStats) -> None:
    """libpcap's figures for the current handle, on top of the closed handles' (`base`); a
    warning when drops grew."""
    try:
        received, dropped, if_dropped = source.stats()
    except Exception:  # noqa: BLE001 - a closed handle has no stats; nothing to report
        return
    base_received, base_dropped, base_if_dropped = stats.base
    received, dropped = received + base_received, dropped + base_dropped
    if_dropped += base_if_dropped
    grew = dropped + if_dropped > stats.kernel_drops + stats.if_drops
    stats.received, stats.kernel_drops, stats.if_drops = received, dropped, if_dropped
    log.log(logging.WARNING if grew else logging.DEBUG,
            "event=capture_stats interface=%s received=%d kernel_drops=%d if_drops=%d",
            name, received, dropped, if_dropped)
