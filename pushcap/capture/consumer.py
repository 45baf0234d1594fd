"""How a consumer (a pcap series, a flows target) counts its failed steps.

A failure never stops the other targets: it is counted and kept for `pushcap status` and
/metrics (`errors`, `last_error`). A series counts from two threads (the push thread's writes,
the finisher's publishing), so the count is taken under a lock.
"""

from __future__ import annotations

import threading
import time

from pushcap import defaults


class CountsFailures:
    """Mixin: `errors`, `last_error`, `note_error()` and `failing()`."""

    errors: int = 0
    last_error: str = ""
    last_error_monotonic_s: float | None = None

    def note_error(self, exc: BaseException) -> int:
        """Count a failure; return the count so far."""
        lock = self.__dict__.setdefault("_failures_lock", threading.Lock())  # atomic
        with lock:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_error_monotonic_s = time.monotonic()
            return self.errors

    def failing(self, window_s: float = defaults.FAILING_WINDOW_S) -> bool:
        """True while the last failure is recent. A write or finish failure recurs with every
        batch or file while its cause lasts (a full disk, a gone NFS share), so a quiet window
        means the cause has passed; `pushcap status` exits 1 while any target is failing."""
        at = self.last_error_monotonic_s
        return at is not None and time.monotonic() - at < window_s
