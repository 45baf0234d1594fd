"""The trigger service's counters and its captures in flight, kept under one lock.

`stats()` reads both for `pushcap status` while listener and worker threads change them, so
they share one lock. The futures are also what `stop()` waits for: a capture is tracked from
its submission until its future is done, whatever ended it.
"""

from __future__ import annotations

import concurrent.futures
import threading


class Ledger:
    """Counts by name (requests, rejected, captures, captures_<status>) and running futures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: set[concurrent.futures.Future] = set()
        self.counts: dict[str, int] = {"requests": 0, "rejected": 0, "captures": 0}

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def track(self, future: concurrent.futures.Future) -> None:
        """Hold `future` until it is done (its callback may run at once, so after the lock)."""
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: concurrent.futures.Future) -> None:
        with self._lock:
            self._futures.discard(future)

    def in_flight(self) -> set[concurrent.futures.Future]:
        """A copy of the futures not yet done, to wait on without holding the lock."""
        with self._lock:
            return set(self._futures)

    def running(self) -> int:
        with self._lock:
            return len(self._futures)
