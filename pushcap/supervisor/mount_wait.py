"""Whether a lane must wait for its target's share: a folder below a declared mount point that
is not mounted is never written (the packets wait in the ring meanwhile)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pushcap import defaults
from pushcap.config.desc_names import log_value
from pushcap.push.mount_guard import MountGuard
from pushcap.supervisor.handover import TargetSlots

log = logging.getLogger("pushcap.engine")


class ShareNotMounted(Exception):
    """A target's folder lies below a declared mount point that is not mounted."""


class MountWait:
    """The mount guards of one lane's output folders, and the log of its waits."""

    def __init__(self, interface: str, desc: str, slots: TargetSlots,
                 guard: Callable[[str], MountGuard] | None) -> None:
        """`guard` makes the mount guard of an output folder (None: nothing is guarded)."""
        self.interface = interface
        self.desc = desc
        self.slots = slots
        self._guard = guard
        self._guards: dict[str, MountGuard] = {}
        self._waiting: str | None = None  # why the lane does not read (a share not mounted)
        self._last_wait_log_s = -1e9

    def waiting(self) -> str | None:
        """Why this target must not write now (its share is not mounted), or None; counted
        as a failure of the target while it lasts, logged when it starts, every
        ERROR_LOG_INTERVAL_S while it lasts, and when it ends."""
        if self._guard is None:
            return None
        reason = None
        for slot in self.slots.slots:
            output = slot.consumer.output()
            if output is None:
                continue
            if output not in self._guards:
                self._guards[output] = self._guard(output)
            reason = self._guards[output].check()
            if reason is not None:
                break
        now = time.monotonic()
        if reason is not None:
            for slot in self.slots.slots:
                slot.consumer.note_error(ShareNotMounted(reason))
            if self._waiting is None or now - self._last_wait_log_s >= \
                    defaults.ERROR_LOG_INTERVAL_S:
                self._last_wait_log_s = now
                log.error("event=target_waiting target=%s interface=%s reason=%r",
                          log_value(self.desc), self.interface, reason)
        elif self._waiting is not None:
            log.warning("event=target_resumed target=%s interface=%s", log_value(self.desc),
                        self.interface)
        self._waiting = reason
        return reason
