"""Closing consumers off the push thread, in the order their outputs need.

A removed or replaced consumer is closed (its file finished, delivered, its uploads done or
spooled) on a thread of its own; a successor is started once its predecessor is closed. Every
consumer writing to one output (the same folder and prefix, or spool) waits for the retirements
registered on it before, so a target's files are delivered in order and never by two series at
once, whatever the reloads.
"""

from __future__ import annotations

import logging
import threading
import time

from pushcap.supervisor.slots import Slot, guarded
from pushcap.supervisor.target_counters import RetiredCounts

log = logging.getLogger("pushcap.engine")


class Retirements:
    """The retirement threads of an engine, and the counters of what they retired."""

    def __init__(self) -> None:
        self.counts = RetiredCounts()  # what replaced or removed consumers counted
        self._latest: dict[str, threading.Thread] = {}  # output -> its latest retirement
        self._lock = threading.Lock()

    def retire(self, interface: str, old: Slot | None, successor: Slot | None,
               wait_for=None) -> None:
        """Close `old`, then start `successor` and let it deliver (either may be None). With
        `wait_for` (a Latch: the other lanes of the interface applying the same reload), the
        registration itself waits for it, off the caller's thread."""
        if old is None and successor is None:
            return
        if wait_for is not None:
            threading.Thread(target=self._retire_after, args=(wait_for, interface, old,
                                                              successor),
                             daemon=True, name="retire-wait").start()
            return
        if old is not None:
            self.counts.closing(interface, old.consumer)
        slots = [s for s in (old, successor) if s is not None]
        with self._lock:
            waits_for = {self._latest.get(s.consumer.output()) for s in slots} - {None}
            thread = threading.Thread(target=self._run, args=(interface, old, successor,
                                                              waits_for),
                                      daemon=True,
                                      name=f"retire-{slots[0].consumer.target.desc_file_name}")
            for slot in slots:
                if slot.consumer.output() is not None:
                    self._latest[slot.consumer.output()] = thread
            thread.start()  # under the lock: nobody can find it in the map unstarted

    def _retire_after(self, wait_for, interface: str, old: Slot | None,
                      successor: Slot | None) -> None:
        wait_for.wait()
        self.retire(interface, old, successor)

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for every retirement started so far (at most timeout_s); True when all ended."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._latest.values())
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def _run(self, interface: str, old: Slot | None, successor: Slot | None,
             waits_for: set[threading.Thread]) -> None:
        try:
            for previous in waits_for:
                previous.join()
            if old is not None:
                guarded(old, old.consumer.close)
                log.info("event=target_stop target=%s interface=%s",
                         old.consumer.target.desc_log, interface)
        finally:
            if old is not None:
                self.counts.closed(interface, old.consumer)
            if successor is not None:
                try:
                    guarded(successor, successor.consumer.start, False)
                finally:
                    successor.consumer.open_delivery()
