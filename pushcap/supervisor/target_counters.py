"""A push target's running totals, which a reload must not reset.

A reload that changes a target replaces its consumer (the old settings finish their file on a
thread of their own, the new ones go on). Status and Prometheus counters are per target, so the
figures of every consumer a target has had are added up: the finished ones (`RetiredCounts`),
the ones still closing and the live ones.
"""

from __future__ import annotations

import threading
from collections import Counter

from pushcap.capture.consumer import Consumer

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Any

# What only grows over a target's life; the rest of a status entry (pending files, the current
# file, the last error) describes the newest consumer alone.
COUNTERS = ("packets", "bytes", "files", "spool_errors", "uploads_ok", "uploads_failed",
            "dropped_files", "name_conflicts", "errors", "records_sent", "send_failures",
            "lost_packets")


def consumer_status(consumer: Consumer) -> dict:
    """One consumer's own status figures, its error count and whether it is failing.
    `upload_failing` (rclone targets) stays beside `failing`: the status page tells a target
    retrying its uploads from one that cannot write."""
    figures = dict(consumer.status())
    figures["errors"] = consumer.errors
    figures["failing"] = bool(figures.get("upload_failing", False) or consumer.failing())
    return figures


def counters(consumer: Consumer) -> Counter:
    figures = consumer_status(consumer)
    return Counter({k: figures[k] for k in COUNTERS
                    if isinstance(figures.get(k), int) and not isinstance(figures[k], bool)})


class RetiredCounts:
    """Totals of the consumers a target no longer has, per (interface, Desc), plus the ones
    still closing (their figures still grow: uploads finish)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str], Counter] = {}
        self._closing: dict[int, tuple[str, Any]] = {}

    def closing(self, interface: str, consumer: Any) -> None:
        with self._lock:
            self._closing[id(consumer)] = (interface, consumer)

    def closed(self, interface: str, consumer: Any) -> None:
        figures = counters(consumer)
        with self._lock:
            self._closing.pop(id(consumer), None)
            self._done.setdefault((interface, consumer.target.desc), Counter()).update(figures)

    def totals(self, interface: str, desc: str) -> Counter:
        with self._lock:
            total = Counter(self._done.get((interface, desc), Counter()))
            closing = [c for i, c in self._closing.values()
                       if i == interface and c.target.desc == desc]
        for consumer in closing:
            total.update(counters(consumer))
        return total
