"""Flow records on the wire as tcpdump-aggregator sends them (issue 18, item 5).

The receiver is Logstash's `udp` input with a `json` filter (flows_harness.logstash_event): one
JSON parse per datagram, and every datagram must parse into one record with the aggregator's
fields. That holds by default, for `pushcap flows --read` and for a `Mode = "flows"` target in
`pushcap replay`; `--pack` / `Pack = true` put several JSON lines in a datagram instead, which that
pipeline cannot read. A flows target's `DatadogRanges` (Datadog's own ip-ranges.json format) is
read at load, and a broken one is one error line naming the target.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import dpkt
import pytest
from engine_harness import S, batch_of
from flows_harness import AGGREGATOR_FIELDS, Collector, json_lines, logstash_event
from oracle import read_pcap
from waiting import wait_until

from pushcap.capture.ring import Ring
from pushcap.config.model import (
    DaemonConfig,
    InterfaceConfig,
    NamingRule,
    PushMode,
    RingConfig,
    SplitKind,
    SplitRule,
    TargetConfig,
)
from pushcap.supervisor.engine import LiveEngine

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def pushcap(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pushcap", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def check(lua: Path) -> subprocess.CompletedProcess:
    return pushcap("check", "--lua", str(lua), "--config", str(REPO / "etc" / "pcapdaemon.toml"),
                   cwd=lua.parent)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pushcap:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def summary_of(proc: subprocess.CompletedProcess, prefix: str) -> dict[str, int]:
    line = next(x for x in proc.stdout.splitlines() if x.strip().startswith(prefix))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def flows_lua(path: Path, *targets: str) -> Path:
    path.write_text("return { Target = {\n" + ",\n".join(targets) + "\n} }\n")
    return path


def as_multiset(records: list[dict]) -> Counter:
    return Counter(json.dumps(r, sort_keys=True) for r in records)


# --- `pushcap flows --read` ------------------------------------------------------------------
def test_command_sends_one_record_per_datagram_and_packs_on_request(gen_trace):
    path = gen_trace(40_000, seed=7, rate_pps=10_000.0)  # 4 s: thousands of records
    runs = {}
    for option in ((), ("--pack",)):
        collector = Collector()
        try:
            proc = pushcap("flows", "--read", str(path), collector.url, "--interval", "1",
                           "--no-dns", "--include-own-traffic", *option)
            assert proc.returncode == 0, proc.stderr
            summary = summary_of(proc, "read ")
            parse = json_lines if option else (lambda d: [logstash_event(d)])
            wait_until(lambda s=summary, c=collector: len(c.datagrams) >= s["datagrams"], 10,
                       "every datagram at the collector")
            runs[option] = (summary, list(collector.datagrams),
                            [r for d in collector.datagrams for r in parse(d)])
        finally:
            collector.close()
    summary, datagrams, records = runs[()]
    assert summary["send_failures"] == 0 and summary["records_sent"] > 1000
    assert len(datagrams) == summary["datagrams"] == summary["records_sent"] == len(records)
    assert datagrams == [json.dumps(r).encode() for r in records]  # the aggregator's bytes
    assert all(list(r)[:len(AGGREGATOR_FIELDS)] == list(AGGREGATOR_FIELDS) for r in records)
    assert sum(r["count"] for r in records) == summary["packets"]

    packed_summary, packed, packed_records = runs[("--pack",)]
    assert packed_summary["records_sent"] == summary["records_sent"]
    assert packed_summary["datagrams"] == len(packed) < len(datagrams) // 3
    assert all(len(d) <= 1400 for d in packed)
    assert as_multiset(packed_records) == as_multiset(records)
    with pytest.raises(AssertionError, match="_jsonparsefailure"):  # why it is not the default
        for d in packed:
            logstash_event(d)


@pytest.mark.parametrize(("args", "says"), [
    (("--datadog-ranges", "no-such-ip-ranges.json"),
     "--datadog-ranges no-such-ip-ranges.json: cannot be read (No such file or directory)"),
    (("--max-datagram-bytes", "65508"), "--max-datagram-bytes 65508: must be 1 to 65507"),
])
def test_command_refuses_bad_options_in_one_line(args, says):
    proc = pushcap("flows", "--read", str(REPO / "tests" / "data" / "tls-sll2.pcap"), *args)
    assert proc.returncode == 1
    assert says in one_error_line(proc)


# --- Mode = "flows" targets in `pushcap replay` ----------------------------------------------
def test_replay_flows_target_one_record_per_datagram_or_packed(tmp_path, gen_trace, collector):
    """The same target and collector, without and with Pack (the same port: the same own traffic
    left out, so the same records)."""
    path = gen_trace(40_000, seed=7, rate_pps=10_000.0)
    target = f'{{ Desc = "fl", Mode = "flows", Path = "{collector.url}", Interval = 1'
    runs = {}
    for pack in ("", ", Pack = true"):
        lua = flows_lua(tmp_path / "push.lua", target + pack + " }")
        checked = check(lua)
        assert checked.returncode == 0, checked.stderr
        assert f"{collector.url} every 1 s{', packed' if pack else ' '}" in checked.stdout
        proc = pushcap("replay", str(path), "--lua", str(lua), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        summary = summary_of(proc, "fl: ")
        wait_until(lambda s=summary: len(collector.datagrams) >= s["datagrams"], 10,
                   "every datagram at the collector")
        runs[pack] = (summary, collector.packed_records() if pack else collector.records(),
                      len(collector.datagrams))
        collector.datagrams.clear()
    (one, records, datagrams), (many, packed, packed_datagrams) = runs[""], runs[", Pack = true"]
    # Logstash's reading: every datagram one record
    assert len(records) == datagrams == one["datagrams"] == one["records_sent"] > 1000
    assert sum(r["count"] for r in records) == one["packets"]
    assert many["records_sent"] == one["records_sent"]
    assert packed_datagrams == many["datagrams"] < one["datagrams"] // 3
    assert as_multiset(packed) == as_multiset(records)


def ip_addresses(path: Path) -> tuple[str, str, str]:
    """Three addresses of the capture: an IPv4 destination, an IPv4 source and an IPv6 one."""
    dst4, src4, v6 = set(), set(), set()
    for _, _, _, data in read_pcap(path).packets:
        net = dpkt.ethernet.Ethernet(data).data
        if isinstance(net, dpkt.ip.IP):
            dst4.add(str(ipaddress.ip_address(net.dst)))
            src4.add(str(ipaddress.ip_address(net.src)))
        elif isinstance(net, dpkt.ip6.IP6):
            v6.add(str(ipaddress.ip_address(net.src)))
    dst = sorted(dst4)[0]
    return dst, sorted(src4 - {dst})[0], sorted(v6)[0]


def test_replay_flows_target_with_datadog_ranges(tmp_path, gen_trace, collector):
    path = gen_trace(3_000, seed=2)
    dst4, src4, v6 = ip_addresses(path)
    logs = ipaddress.ip_network(f"{dst4}/24", strict=False)
    v6_net = ipaddress.ip_network(f"{v6}/120", strict=False)
    ranges = {  # Datadog's format: metadata, then services with prefix lists
        "version": 67, "modified": "2024-01-10-00-00-00",
        "agents": {"prefixes_ipv4": [f"{src4}/32"], "prefixes_ipv6": [str(v6_net)]},
        "logs": {"prefixes_ipv4": [str(logs)], "prefixes_ipv6": []},
        "synthetics": {"prefixes_ipv4": ["198.51.100.7/32"],
                       "prefixes_ipv4_by_location": {"aws:eu-west-1": ["198.51.100.7/32"]},
                       "prefixes_ipv6": [], "prefixes_ipv6_by_location": {}},
    }
    (tmp_path / "ip-ranges.json").write_text(json.dumps(ranges, indent=4))
    lua = flows_lua(tmp_path / "push.lua",
                    f'{{ Desc = "dd", Mode = "flows", Path = "{collector.url}", Interval = 60, '
                    'DatadogRanges = "ip-ranges.json" }')
    checked = check(lua)
    assert checked.returncode == 0, checked.stderr
    assert "Datadog ranges ip-ranges.json (4 prefixes)" in checked.stdout
    proc = pushcap("replay", str(path), "--lua", str(lua), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sent = summary_of(proc, "dd: ")["records_sent"]
    records = collector.wait_for(lambda r: len(r) >= sent, 10)
    assert len(records) == sent > 0

    def service(ip: str) -> str | None:
        addr = ipaddress.ip_address(ip)
        if addr.version == 6:
            return "agents" if addr in v6_net else None
        return "agents" if ip == src4 else "logs" if addr in logs else None

    seen = Counter()
    for r in records:
        target, source = service(r["target_IP"]), service(r["source_IP"])
        want = (target, "outgoing") if target else (source, "incoming") if source else \
            ("none", "none")
        assert (r["datadog_service"], r["packet_flow"]) == want, r
        seen[want] += 1
    assert seen[("logs", "outgoing")] and seen[("agents", "incoming")] and seen[("none", "none")]


@pytest.mark.parametrize(("content", "says"), [
    (None, "cannot be read (No such file or directory)"),
    ("{not json", "is not JSON (Expecting property name enclosed in double quotes"),
    ('{"logs": {"prefixes_ipv4": ["10.0.0.0/40"]}}',
     'logs.prefixes_ipv4 holds "10.0.0.0/40", which is not an IP prefix'),
])
def test_a_bad_ranges_file_is_one_line_naming_the_target(tmp_path, content, says):
    if content is not None:
        (tmp_path / "ip-ranges.json").write_text(content)
    lua = flows_lua(tmp_path / "push.lua",
                    '{ Desc = "first", Mode = "flows", Path = "udp://127.0.0.1:9" }',
                    '{ Desc = "dd-flows", Mode = "flows", Path = "udp://127.0.0.1:10",\n'
                    '  DatadogRanges = "ip-ranges.json" }')
    replay = pushcap("replay", str(REPO / "tests" / "data" / "tls-sll2.pcap"), "--lua", str(lua),
                     cwd=tmp_path)
    for proc in (check(lua), replay):
        assert proc.returncode == 1, proc.stdout
        line = one_error_line(proc)
        assert 'push.lua:4: target 2 "dd-flows": DatadogRanges "ip-ranges.json": ' in line
        assert says in line, line


# --- sending is off the packet path ----------------------------------------------------------
def test_a_long_send_holds_up_neither_capture_nor_the_other_targets(tmp_path, collector):
    """A flows target sends an interval's datagrams on its own lane: while that send is held,
    the ring takes every batch (capture never waits) and a File target beside it reads them all;
    then every record reaches the collector, one per datagram."""
    out = tmp_path / "out"
    config = DaemonConfig(str(tmp_path / "d.toml"), "n", (InterfaceConfig("eth0"),),
                          RingConfig(60, 1 << 30, 8192, 100), status_port=0)
    file_target = TargetConfig(1, "file", PushMode.FILE, str(out / "file"),
                               SplitRule(SplitKind.TIME, S), NamingRule("--filename-epoch-nsec"))
    flows_target = TargetConfig(2, "flows", PushMode.FLOWS, collector.url,
                                SplitRule(SplitKind.TIME, S), NamingRule("--filename-epoch-sec"),
                                interval_s=1.0)
    engine = LiveEngine(config, (file_target, flows_target))
    ring = Ring("eth0", 1, 262144, 60, 1 << 30)
    engine.attach("eth0", ring)
    lanes = {lane.slots.slots[0].consumer.target.desc: lane for lane in engine.lanes("eth0")}
    series, flows = (lanes[d].slots.slots[0].consumer for d in ("file", "flows"))
    release, sending = threading.Event(), threading.Event()
    real_send = flows.exporter.send

    def held_send(records) -> None:
        records = list(records)
        sending.set()
        assert release.wait(30), "the test never let the send go"
        real_send(records)

    flows.exporter.send = held_send
    threads = [threading.Thread(target=lane.run, daemon=True) for lane in lanes.values()]
    for thread in threads:
        thread.start()
    base = 1_700_000_000 * S
    flows_per_batch = 2_000
    ring.append(batch_of([base + i for i in range(flows_per_batch)], [60] * flows_per_batch,
                         list(range(1, flows_per_batch + 1))))
    later = [batch_of([base + S * (1 + k)], [60], [1]) for k in range(20)]
    ring.append(later[0])  # a packet of the next interval: the first one is sent
    wait_until(sending.is_set, 10, "the flows target sending its first interval")
    for batch in later[1:]:
        ring.append(batch)  # the capture side: never waits for a reader
    total = flows_per_batch + len(later)
    wait_until(lambda: series.stats.packets == total, 10, "the File target read every batch")
    assert not release.is_set() and flows.stats.records_sent == 0  # still held in its send
    release.set()
    ring.close()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    records = collector.wait_for(lambda r: sum(x["count"] for x in r) >= total, 10)
    assert sum(r["count"] for r in records) == total
    assert len(records) == len(collector.datagrams) == flows.stats.records_sent >= flows_per_batch
