"""A series' finished files, closed and delivered one at a time on a thread of its own.

fsync, compression and delivery (a rename, or a move into the upload spool) can take long for a
large file or a slow disk; the packet path only queues the file and goes on. Files are finished
in the order they were queued. A reload's successor holds its delivery (`hold()`) until its
predecessor has delivered everything, so two series never deliver into one place at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from pushcap.push.pcapfile import PcapWriter


class Finisher:
    """Runs `finish_one(writer)` for every queued file, off the packet path; `finish_one`
    handles its own errors (the part stays for the next start's repair)."""

    def __init__(self, finish_one: Callable[[PcapWriter], None], thread_name: str) -> None:
        self._finish_one = finish_one
        self._thread_name = thread_name
        self._queue: queue.Queue[PcapWriter | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._delivery_open = threading.Event()
        self._delivery_open.set()

    def put(self, writer: PcapWriter) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name=self._thread_name)
            self._thread.start()
        self._queue.put(writer)

    def join(self) -> None:
        """Wait until every queued file is finished (delivered or failed)."""
        self._queue.join()

    def hold(self) -> None:
        """Finish nothing until open(): a predecessor still delivers to the same place."""
        self._delivery_open.clear()

    def open(self) -> None:
        self._delivery_open.set()

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while True:
            writer = self._queue.get()
            try:
                if writer is None:  # stop(): no more files
                    return
                self._delivery_open.wait()
                self._finish_one(writer)
            finally:
                self._queue.task_done()
