"""The engine's capture side: one live source per interface, its ring, its capture thread's body.

Every interface is opened with the `[ring]` settings and reopened with the same settings when
its capture thread has to (capture/capture_thread.py); one stop event and each source's `stop()`
end every capture thread, so the lanes can drain their rings (engine.py owns those threads).
"""

from __future__ import annotations

import logging
import threading

from pushcap.capture.capture_thread import CaptureStats, capture_until_stopped, update_capture_stats
from pushcap.capture.live import LiveSource
from pushcap.capture.ring import Ring
from pushcap.config.model import RingConfig

log = logging.getLogger("pushcap.engine")


class LiveCaptures:
    """The live sources of an engine and their capture figures (`stats`: shared with the
    engine, which also counts there what its lanes missed)."""

    def __init__(self, ring_cfg: RingConfig) -> None:
        self.ring_cfg = ring_cfg
        self.sources: dict[str, LiveSource] = {}
        self.stats: dict[str, CaptureStats] = {}
        self.stopped = threading.Event()

    def open(self, name: str) -> LiveSource:
        """Interface `name`'s source (at start, and again when its capture thread reopens it)."""
        ring_cfg = self.ring_cfg
        source = LiveSource(name, ring_cfg.batch_packets, ring_cfg.poll_timeout_ms,
                            buffer_bytes=ring_cfg.kernel_buffer_bytes)
        self.sources[name] = source
        return source

    def ring(self, name: str, source: LiveSource) -> Ring:
        """A ring for `source`'s packets, bounded as `[ring]` says."""
        return Ring(name, source.linktype, source.snaplen, self.ring_cfg.max_seconds,
                    self.ring_cfg.max_bytes)

    def run(self, name: str, source: LiveSource, ring: Ring) -> None:
        """The capture thread of interface `name`: until `stop()`."""
        capture_until_stopped(name, source, ring, self.stats[name],
                              lambda: self.open(name), self.stopped)

    def log_start(self, name: str, source: LiveSource, targets: int) -> None:
        ring_cfg = self.ring_cfg
        log.info("event=capture_start interface=%s linktype=%d targets=%d ring_max_s=%g "
                 "ring_max_bytes=%d kernel_buffer_bytes=%d", name, source.linktype,
                 targets, ring_cfg.max_seconds, ring_cfg.max_bytes,
                 ring_cfg.kernel_buffer_bytes)

    def refresh_stats(self) -> None:
        for name, source in self.sources.items():
            update_capture_stats(name, source, self.stats[name])

    def stop(self) -> None:
        """End every capture thread: the event for the loops, `stop()` for a blocked read."""
        self.stopped.set()
        for source in self.sources.values():
            source.stop()
