"""etc/grafana/pushcap-dashboard.json queries only metrics a running daemon really exports.

A dashboard panel over a misspelt or renamed metric shows "No data" forever, which reads as "all
quiet". So every PromQL expression of the dashboard (panels and template variables) is parsed
for the metric names it selects, and each must have samples in the /metrics output of a real
daemon that runs every kind of target (File, rclone, flows) and the trigger service.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_harness import Daemon

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "etc" / "grafana" / "pushcap-dashboard.json"
# PromQL words that look like names but select nothing.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's variables allowed): what is left
    once strings, label matchers, ranges, grouping clauses and function calls are set aside."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers, where $instance and co. live
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges: [5m], [$__rate_interval]
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)\s*(\()?", text):
        word, call = match.groups()
        if not call and word.lower() not in KEYWORDS:
            names.add(word)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expression) for every panel query and template variable query."""
    board = json.loads(DASHBOARD.read_text())
    found = [(f"panel {panel['title']!r}", target["expr"])
             for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) \
                else variable["query"]
            selector = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert selector, f"variable {variable['name']}: {query}"
            found.append((f"variable {variable['name']}", selector.group(1)))
    return found


def test_the_parser_finds_the_metrics_and_only_them():
    assert metric_names('histogram_quantile(0.99, sum by (instance, le) (rate('
                        'pushcap_trigger_latency_seconds_bucket{instance=~"$instance"}'
                        '[$__rate_interval])))') == {"pushcap_trigger_latency_seconds_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / on (x) group_left b + c offset 5m") == \
        {"a_total", "b", "c"}


def test_the_dashboard_is_well_formed():
    board = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
    for where, expr in dashboard_queries():
        names = metric_names(expr)
        assert names and all(n.startswith("pushcap_") for n in names), (where, expr, names)


def exported_samples(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_every_metric_the_dashboard_queries_is_exported(tmp_path, udp_port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        flows_port = collector.getsockname()[1]
        bpf = f"udp and dst port {udp_port}"
        lua = f"""
return {{ Target = {{
  {{ Desc = "file", Mode = "File", Path = "{tmp_path}/out/file", FilterBPF = "{bpf}" }},
  {{ Desc = "remote", Mode = "rclone", Path = ":local:{tmp_path}/remote/all",
     FilterBPF = "{bpf}" }},
  {{ Desc = "flows", Mode = "flows", Path = "udp://127.0.0.1:{flows_port}", Interval = 1,
     FilterBPF = "{bpf}" }},
}} }}
"""
        daemon = Daemon(tmp_path, lua, f'[rclone]\nspool_dir = "{tmp_path}/spool"\n')
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for i in range(20):
                    sender.sendto(b"dash%04d" % i, ("127.0.0.1", udp_port))
            daemon.wait_packets("file", 20, "the traffic")
            exported = exported_samples(daemon.status_port)
        finally:
            assert daemon.stop() == 0
    missing = {(where, name) for where, expr in dashboard_queries()
               for name in metric_names(expr) if name not in exported}
    assert not missing, f"the dashboard queries metrics /metrics does not have: {missing}"
