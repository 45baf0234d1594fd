"""The engine's threads (capture, lanes), joined by one deadline at the stop.

A reload during the stop may still start a lane, so the stop looks again for live threads until
none is left or the deadline passes. The list is read under the engine's lock, the one a reload
holds while it starts lanes (engine.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class EngineThreads:
    """Every thread the engine started, to be joined at its stop."""

    def __init__(self, lock: threading.Lock) -> None:
        """`lock`: the engine's; held by a reload while it starts threads here."""
        self._lock = lock
        self._threads: list[threading.Thread] = []

    def spawn(self, name: str, func: Callable, *args) -> None:
        """Start `func(*args)` on a daemon thread called `name`."""
        thread = threading.Thread(target=func, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join_until(self, deadline: float) -> bool:
        """Join every thread, those started meanwhile too, until `deadline` (time.monotonic());
        True when none is left alive."""
        while True:  # a reload during the stop may still add a lane
            with self._lock:
                threads = [t for t in self._threads if t.is_alive()]
            if not threads or time.monotonic() >= deadline:
                return not threads
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
