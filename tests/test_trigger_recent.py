"""The last trigger results and their latency histogram: in /status, and as Prometheus families."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pushcap.supervisor.metrics import render_metrics
from pushcap.trigger.recent import RecentResults
from pushcap.trigger.results import result_record


def test_newest_first_bounded_and_only_the_fields_shown():
    recent = RecentResults(keep=3)
    for i in range(5):
        recent.add(result_record("n", f"r{i}", "ok", interface="lo", packets=i, latency_s=0.2,
                                 window_start_ns=1, notes=["x"]))
    shown = recent.snapshot()["recent"]
    assert [r["requestid"] for r in shown] == ["r4", "r3", "r2"]
    assert set(shown[0]) == {"time", "requestid", "interface", "status", "packets", "latency_s"}


def test_long_text_is_cut():
    recent = RecentResults()
    recent.add(result_record("n", "x" * 5000, "rejected", field="bpf", error="e" * 5000))
    shown = recent.snapshot()["recent"][0]
    assert len(shown["requestid"]) < 400 and shown["requestid"].endswith("...")
    assert len(shown["error"]) < 400


def test_latency_buckets_are_cumulative_and_rejections_are_not_timed():
    recent = RecentResults(buckets_s=(0.1, 1.0))
    for latency in (0.05, 0.1, 0.5, 7.0):
        recent.add(result_record("n", None, "ok", latency_s=latency))
    recent.add(result_record("n", None, "rejected", error="bad"))
    latency = recent.snapshot()["latency_s"]
    assert latency == {"buckets": [[0.1, 2], [1.0, 3], ["+Inf", 4]], "count": 4,
                       "sum": 7.65}


def test_trigger_families_in_the_metrics():
    recent = RecentResults(buckets_s=(0.5, 5.0))
    recent.add(result_record("n", "a", "ok", latency_s=0.3))
    recent.add(result_record("n", "b", "empty", latency_s=2.0))
    trigger = {"requests": 3, "rejected": 1, "captures": 2, "captures_ok": 1,
               "captures_empty": 1, "captures_in_progress": 0, "redis_connected": True,
               "redis_errors": 2, **recent.snapshot()}
    body, _ = render_metrics({"interfaces": {}, "targets": [], "reloads": 0,
                              "trigger": trigger})
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode())
               for s in family.samples}
    assert samples[("pushcap_trigger_requests_total", ())] == 3
    assert samples[("pushcap_trigger_rejected_total", ())] == 1
    assert samples[("pushcap_trigger_captures_total", (("status", "ok"),))] == 1
    assert samples[("pushcap_trigger_captures_total", (("status", "empty"),))] == 1
    assert samples[("pushcap_trigger_captures_total", (("status", "error"),))] == 0
    assert samples[("pushcap_trigger_redis_connected", ())] == 1
    assert samples[("pushcap_trigger_redis_errors_total", ())] == 2
    assert samples[("pushcap_trigger_latency_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("pushcap_trigger_latency_seconds_bucket", (("le", "5.0"),))] == 2
    assert samples[("pushcap_trigger_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert samples[("pushcap_trigger_latency_seconds_count", ())] == 2
    assert samples[("pushcap_trigger_latency_seconds_sum", ())] == 2.3


def test_no_trigger_families_without_a_trigger_service():
    body, _ = render_metrics({"interfaces": {}, "targets": [], "reloads": 0})
    assert b"pushcap_trigger" not in body
