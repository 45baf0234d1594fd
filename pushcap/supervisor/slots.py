"""A consumer as the supervisor holds it: the consumer plus the handover state that is the
supervisor's, not the consumer's, and the one way a consumer step is run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pushcap import defaults
from pushcap.capture.consumer import Consumer

log = logging.getLogger("pushcap.engine")


@dataclass(eq=False)
class Slot:
    """One consumer on one interface.

    several:    its target reads several interfaces (with the target, what identifies it
                across a reload: the output prefix depends on it)
    held:       a reload's successor that gets no batch until its predecessor's file boundary
    switching:  a changed target still writing its current file; `successor` (None when it
                could not be built) takes over at the boundary
    """

    consumer: Consumer
    several: bool
    held: bool = False
    switching: bool = False
    successor: Slot | None = None
    last_error_log_s: float = -1e9


def guarded(slot: Slot, step: Callable, *args):
    """Run one consumer step; a failure (disk full, remote error) is logged and counted
    against that target, and never stops the interface's other targets or later batches.
    The log says so at most every ERROR_LOG_INTERVAL_S per consumer (a full disk fails every
    batch)."""
    try:
        return step(*args)
    except Exception as exc:  # noqa: BLE001 - see above
        consumer = slot.consumer
        consumer.note_error(exc)
        now = time.monotonic()
        if now - slot.last_error_log_s >= defaults.ERROR_LOG_INTERVAL_S:
            slot.last_error_log_s = now
            log.error("event=target_error target=%s action=%s errors=%d error=%r",
                      consumer.target.desc_log, step.__name__, consumer.errors,
                      consumer.last_error)
        return None
