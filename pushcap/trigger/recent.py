"""What the last triggers returned, and how long they took, for /status and /metrics.

The Redis stream keeps every result for collectors; an operator looking at the daemon itself
(the status page, `pushcap status`) wants the last few without a Redis client, and Prometheus
wants the latency as a histogram. Both are kept here, bounded: a deque of the newest results
(text fields cut short) and a fixed set of bucket counters. Recording is once per result, off the
packet path.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque

from pushcap import defaults

# The fields of a published result the status page shows; the rest stays in the stream.
SHOWN_FIELDS = ("time", "requestid", "interface", "alias", "status", "packets", "bytes",
                "reason", "cloudshark_url", "path", "fallback", "error", "field", "latency_s")


class RecentResults:
    """The newest `keep` results and the latency histogram of every capture result."""

    def __init__(self, keep: int = defaults.TRIGGER_RECENT_RESULTS,
                 buckets_s: tuple[float, ...] = defaults.TRIGGER_LATENCY_BUCKETS_S) -> None:
        self._lock = threading.Lock()
        self._recent: deque[dict] = deque(maxlen=keep)
        self._bounds = tuple(buckets_s)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound (+Inf)
        self._sum_s = 0.0

    def add(self, record: dict) -> None:
        """Keep a published result (as `results.result_record` made it)."""
        shown = {k: _clip(record[k]) for k in SHOWN_FIELDS if record.get(k) is not None}
        latency = record.get("latency_s")
        with self._lock:
            self._recent.appendleft(shown)
            if isinstance(latency, int | float):
                self._counts[bisect.bisect_left(self._bounds, latency)] += 1
                self._sum_s += latency

    def snapshot(self) -> dict:
        """`recent` (newest first) and `latency_s`: cumulative bucket counts as Prometheus
        has them ([upper bound, results at or below it]; the last bound is "+Inf")."""
        with self._lock:
            recent = list(self._recent)
            counts = list(self._counts)
            total_s = self._sum_s
        cumulative, running = [], 0
        for bound, count in zip((*self._bounds, "+Inf"), counts, strict=True):
            running += count
            cumulative.append([bound, running])
        return {"recent": recent,
                "latency_s": {"buckets": cumulative, "count": running,
                              "sum": round(total_s, 3)}}


def _clip(value: object) -> object:
    """Text as it came from a request (requestid) or an error, cut to a size a page can show."""
    if isinstance(value, str) and len(value) > defaults.TRIGGER_RESULT_TEXT_CHARS:
        return value[:defaults.TRIGGER_RESULT_TEXT_CHARS] + "..."
    return value
