"""A reader's "hurry up" to a capture thread that is gathering a batch (issue 19).

A live batch gathers packets for up to `defaults.COALESCE_MS` (csrc/livecap.c, live_gather):
cheap for the capture, but the last packets a trigger waits for sit in the batch that long. A
trigger that waits for packets (its window's end has passed, or its packet count is near)
hurries the capture through the ring (`Ring.hurry_with`, `Cursor.read(hurry=True)`): an eventfd
the capture's C loop polls while it gathers, so the batch it holds ends at once. An eventfd,
not a flag: the capture thread sleeps in poll() without the GIL and must be woken by a file
descriptor; the count it keeps also holds a wake-up that comes while no batch is gathering.
"""

from __future__ import annotations

import os
import threading


class Wake:
    """One capture's eventfd. `hurry()` may come from any thread, even while the capture
    closes: the fd is closed under a lock, so a late hurry never writes to a reused fd."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def hurry(self) -> None:
        """End the batch being gathered (or the next one) as soon as it holds packets."""
        with self._lock:
            if self.fd >= 0:
                try:
                    os.eventfd_write(self.fd, 1)
                except BlockingIOError:  # the count is at its maximum: already hurried
                    pass

    def clear(self) -> bool:
        """Take the wake-ups given so far (the pcapy-ng path, which waits in Python); True
        when there were some."""
        with self._lock:
            if self.fd < 0:
                return False
            try:
                return os.eventfd_read(self.fd) > 0
            except BlockingIOError:
                return False

    def close(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
