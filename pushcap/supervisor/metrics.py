"""Prometheus exposition of the status snapshot (prometheus-client), built at scrape time."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from pushcap.supervisor.trigger_metrics import trigger_families

INTERFACE_METRICS = [  # (status key, metric name, kind, help)
    ("packets_captured", "pushcap_interface_packets_captured", "counter",
     "Packets captured into the ring"),
    ("kernel_drops", "pushcap_interface_kernel_drops", "counter", "Packets the kernel dropped"),
    ("if_drops", "pushcap_interface_if_drops", "counter", "Packets the interface dropped"),
    ("push_missed_packets", "pushcap_interface_push_missed_packets", "counter",
     "Packets evicted from the ring before a push target read them, added over the targets"),
    ("lost_at_failure", "pushcap_interface_lost_at_failure", "counter",
     "Packets libpcap held when the interface failed that could not be read any more"),
    ("capturing", "pushcap_interface_capturing", "gauge",
     "1 while the interface is captured, 0 while it is down and being reopened"),
    ("reopens", "pushcap_interface_reopens", "counter",
     "Times the interface was captured again after it failed"),
    ("ring_bytes", "pushcap_ring_bytes", "gauge", "Bytes held in the ring"),
    ("ring_seconds", "pushcap_ring_seconds", "gauge", "Seconds of traffic held in the ring"),
]
TARGET_METRICS = [
    ("packets", "pushcap_target_packets", "counter", "Packets selected by the target"),
    ("bytes", "pushcap_target_bytes", "counter", "Bytes written by the target"),
    ("files", "pushcap_target_files", "counter", "Files finished by the target"),
    ("files_pending", "pushcap_target_pending_files", "gauge", "Files waiting for upload"),
    ("bytes_pending", "pushcap_target_pending_bytes", "gauge", "Bytes waiting for upload"),
    ("oldest_pending_age_s", "pushcap_target_oldest_pending_age_seconds", "gauge",
     "Age of the oldest file waiting for upload (0 with none)"),
    ("spool_errors", "pushcap_target_spool_errors", "counter",
     "Failed reads or deletes of the upload spool (uploads wait)"),
    ("uploads_ok", "pushcap_target_uploads_ok", "counter", "Files uploaded"),
    ("uploads_failed", "pushcap_target_uploads_failed", "counter", "Failed upload attempts"),
    ("dropped_files", "pushcap_target_dropped_files", "counter", "Spooled files dropped"),
    ("name_conflicts", "pushcap_target_name_conflicts", "counter",
     "Uploads moved to the next free name: another writer had taken the chosen one"),
    ("errors", "pushcap_target_errors", "counter", "Failed steps of the target (write, upload)"),
    ("lost_packets", "pushcap_target_lost_packets", "counter",
     "Packets the target lost: missed in the ring, or selected but not written"),
    ("missed_packets", "pushcap_target_missed_packets", "counter",
     "Packets evicted from the ring before the target read them (it fell behind)"),
    ("retention_deleted_files", "pushcap_target_retention_deleted_files", "counter",
     "Published files deleted by the target's Keep limits"),
    ("retention_deleted_bytes", "pushcap_target_retention_deleted_bytes", "counter",
     "Bytes (files and their indexes) deleted by the target's Keep limits"),
    ("archive_files", "pushcap_target_archive_files", "gauge",
     "Published files of the target on disk (Keep or Index targets)"),
    ("archive_bytes", "pushcap_target_archive_bytes", "gauge",
     "Bytes of the target's published files and their indexes on disk"),
    ("archive_span_s", "pushcap_target_archive_span_seconds", "gauge",
     "Span of packet history the target's files on disk hold"),
    ("indexed_files", "pushcap_target_indexed_files", "counter", "Index files written"),
    ("index_errors", "pushcap_target_index_errors", "counter", "Index files that failed"),
    ("records_sent", "pushcap_flows_records_sent", "counter", "Flow records exported"),
    ("send_failures", "pushcap_flows_send_failures", "counter", "Flow datagrams not sent"),
]


class _SnapshotCollector:
    def __init__(self, status: dict) -> None:
        self.status = status

    def collect(self):
        for key, name, kind, help_text in INTERFACE_METRICS:
            family = _family(kind, name, help_text, ["interface"])
            for iface, values in self.status["interfaces"].items():
                family.add_metric([iface], float(values.get(key, 0)))
            yield family
        for key, name, kind, help_text in TARGET_METRICS:
            family = _family(kind, name, help_text, ["target", "interface", "mode"])
            for t in self.status["targets"]:
                if isinstance(t.get(key), int | float):
                    family.add_metric([t["desc"], t["interface"], t["mode"]], float(t[key]))
            yield family
        yield from trigger_families(self.status.get("trigger") or {})
        yield GaugeMetricFamily("pushcap_reloads", "Config reloads applied",
                                value=float(self.status["reloads"]))


def _family(kind: str, name: str, help_text: str, labels: list[str]):
    if kind == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


def render_metrics(status: dict) -> tuple[bytes, str]:
    registry = CollectorRegistry()
    registry.register(_SnapshotCollector(status))
    return generate_latest(registry), CONTENT_TYPE_LATEST
