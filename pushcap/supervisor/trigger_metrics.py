"""Prometheus families of the trigger service's part of /status (`status["trigger"]`).

Named and typed one by one rather than derived from the keys: a counter must be a counter for
`rate()` to work in a dashboard, captures are one family labelled by result status (so a
dashboard sums or splits them), and the latency is a histogram, whose buckets /status already
keeps cumulative (`trigger/recent.py`).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

CAPTURE_STATUSES = ("ok", "empty", "error")  # of a capture result ("rejected" is a request's)


def trigger_families(part: dict) -> Iterator:
    """The families of one trigger snapshot; none when the daemon runs no trigger service."""
    if not part:
        return
    yield CounterMetricFamily("pushcap_trigger_requests", "Trigger messages received",
                              value=float(part.get("requests", 0)))
    yield CounterMetricFamily("pushcap_trigger_rejected", "Trigger messages rejected as invalid",
                              value=float(part.get("rejected", 0)))
    captures = CounterMetricFamily("pushcap_trigger_captures",
                                   "Trigger captures finished, by result status",
                                   labels=["status"])
    for status in CAPTURE_STATUSES:
        captures.add_metric([status], float(part.get(f"captures_{status}", 0)))
    yield captures
    yield GaugeMetricFamily("pushcap_trigger_captures_in_progress",
                            "Trigger captures running or queued",
                            value=float(part.get("captures_in_progress", 0)))
    yield GaugeMetricFamily("pushcap_trigger_redis_connected",
                            "1 while the trigger listener is subscribed on Redis",
                            value=float(bool(part.get("redis_connected"))))
    yield CounterMetricFamily("pushcap_trigger_redis_errors",
                              "Times the trigger listener lost Redis and reconnected",
                              value=float(part.get("redis_errors", 0)))
    latency = part.get("latency_s")
    if latency:
        yield HistogramMetricFamily(
            "pushcap_trigger_latency_seconds",
            "From a trigger request's arrival to its result being published (capture included)",
            buckets=[(_bound(b), float(n)) for b, n in latency["buckets"]],
            sum_value=float(latency["sum"]))


def _bound(bound: float | str) -> str:
    return bound if isinstance(bound, str) else repr(float(bound))
