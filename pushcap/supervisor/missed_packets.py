"""Packets a lane missed (evicted from the ring before it read them), counted against its target
alone: a failure of that target, never of the interface's other targets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pushcap import defaults
from pushcap.capture.ring import Cursor
from pushcap.config.desc_names import log_value
from pushcap.supervisor.handover import TargetSlots

log = logging.getLogger("pushcap.engine")


class RingOverrun(Exception):
    """A target read the ring too slowly: packets were evicted before it read them."""


class MissedPackets:
    """What one lane's cursor missed: counted, noted on its consumers, and logged."""

    def __init__(self, interface: str, desc: str, slots: TargetSlots, cursor: Cursor | None,
                 count_missed: Callable[[str, int], None]) -> None:
        """`count_missed(desc, packets)` adds to the engine's figures (status, metrics)."""
        self.interface = interface
        self.desc = desc
        self.slots = slots
        self.cursor = cursor
        self._count_missed = count_missed
        self._missed_seen = 0
        self._unlogged_missed = 0
        self._last_missed_log_s = -1e9

    def note(self) -> None:
        """Count packets evicted before this lane read them against its target: a failure of
        this target (status, exit code of `pushcap status`), logged with its Desc at most every
        ERROR_LOG_INTERVAL_S with the packets missed since the last line."""
        missed = self.cursor.missed_packets - self._missed_seen
        if missed <= 0:
            return
        self._missed_seen += missed
        self._unlogged_missed += missed
        self._count_missed(self.desc, missed)
        error = RingOverrun(f"fell behind the ring: {missed} packets evicted before this target "
                            "read them")
        for slot in self.slots.slots:
            slot.consumer.note_error(error)
        now = time.monotonic()
        if now - self._last_missed_log_s >= defaults.ERROR_LOG_INTERVAL_S:
            self._last_missed_log_s = now
            log.warning("event=push_behind target=%s interface=%s missed_packets=%d "
                        "missed_total=%d", log_value(self.desc), self.interface,
                        self._unlogged_missed, self._missed_seen)
            self._unlogged_missed = 0
