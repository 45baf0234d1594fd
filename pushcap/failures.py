"""How a consumer (a pcap series, a flows target) counts its failed steps.

A failure never stops the other targets: it is counted and kept for `pushcap status` and
/metrics (`errors`, `last_error`). A series counts from two threads (the push thread's writes,
the finisher's publishing), so the count is taken under a lock.
"""

from __future__ import annotations

import threading


class CountsFailures:
    """Mixin: `errors`, `last_error` and `note_error()`."""

    errors: int = 0
    last_error: str = ""

    def note_error(self, exc: BaseException) -> int:
        """Count a failure; return the count so far."""
        lock = self.__dict__.setdefault("_failures_lock", threading.Lock())  # atomic
        with lock:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return self.errors
