"""Flow statistics end to end: real UDP sockets, real captures, a dpkt oracle.

The oracle decodes every packet with dpkt (link layer, VLAN tags, IP, IPv6 extension headers)
and reads the transport fields from dpkt's payload bytes; it shares no code with
pushcap.flows. It assigns packets to intervals by packet time with the documented rule
(intervals aligned to the epoch, a packet earlier than the open interval counts in the open one)
and sums tcpdump's `length` per 5-tuple.
"""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import dpkt
import pytest
from daemon_log import wait_for_log
from flows_harness import NS, Collector, flows_config
from oracle import PCAPS_DIR, read_pcap

from pushcap.capture.source import open_file_source
from pushcap.flows.export import DatadogRanges
from pushcap.flows.resolve import NO_DNS
from pushcap.flows.target import FlowTarget

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ORACLE_TYPES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 51: "AH",
                58: "ICMPv6", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP"}
V6_EXT = {0, 43, 44, 51, 60}


# --- the oracle ------------------------------------------------------------------------------
def oracle_tuple(linktype: int, data: bytes, wirelen: int):
    """(src, sport, dst, dport, type, length) by dpkt, or None for a packet that is not IP."""
    if linktype == 1:
        eth = dpkt.ethernet.Ethernet(data)
        net = eth.data
    elif linktype == 113:
        net = dpkt.sll.SLL(data).data
    elif linktype == 276:
        net = dpkt.sll2.SLL2(data).data
    elif linktype == 101:
        net = dpkt.ip.IP(data) if data[0] >> 4 == 4 else dpkt.ip6.IP6(data)
    else:
        raise AssertionError(f"oracle: linktype {linktype}")
    if isinstance(net, dpkt.ip.IP):
        payload = (net.len or wirelen - (len(data) - len(bytes(net)))) - net.hl * 4
        non_first = net.offset != 0
        src, dst, proto = net.src, net.dst, net.p
        body = bytes(net.data)
    elif isinstance(net, dpkt.ip6.IP6):
        ext = [h for h in net.all_extension_headers]
        payload = net.plen - sum(len(h) for h in ext)
        non_first = any(isinstance(h, dpkt.ip6.IP6FragmentHeader) and h.frag_off for h in ext)
        src, dst, proto = net.src, net.dst, net.p
        body = bytes(net.data)
    else:
        return None
    addr = ipaddress.ip_address
    sport = dport = 0
    length = payload
    if proto in (6, 17) and not non_first:
        sport, dport = struct.unpack("!HH", body[:4])
        if proto == 6:
            length = payload - (body[12] >> 4) * 4
        else:
            length = min(struct.unpack("!H", body[4:6])[0], payload) - 8
    return (str(addr(src)), sport, str(addr(dst)), dport, ORACLE_TYPES.get(proto, str(proto)),
            max(length, 0))


def oracle_flows(path: Path, interval_s: float) -> dict[tuple, list[int]]:
    """{(time, src, sport, dst, dport, type): [count, length]} for a capture file."""
    pcap = read_pcap(path)
    interval_ns = int(interval_s * NS)
    flows: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    open_interval = None
    for ts_ns, _caplen, wirelen, data in pcap.packets:
        t = oracle_tuple(pcap.linktype, data, wirelen)
        if t is None:
            continue
        own = ts_ns // interval_ns
        open_interval = own if open_interval is None else max(open_interval, own)
        end = datetime.fromtimestamp((open_interval + 1) * interval_ns / NS, UTC)
        entry = flows[(end.strftime("%Y-%m-%d %H:%M:%S.%f"), *t[:5])]
        entry[0] += 1
        entry[1] += t[5]
    return dict(flows)


def received_flows(records: list[dict]) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        entry = out[(r["time"], r["source_IP"], r["source_PORT"], r["target_IP"],
                     r["target_PORT"], r["type"])]
        entry[0] += r["count"]
        entry[1] += r["length"]
    return dict(out)


# --- runs ------------------------------------------------------------------------------------
def run_command(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pushcap.cli", "flows", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout_s)


def replay_inprocess(path: Path, url: str, interval_s: float, **kwargs) -> FlowTarget:
    source = open_file_source(path, batch_packets=4096)
    config = flows_config(url, interval_s, pack=kwargs.pop("pack", False))
    target = FlowTarget(config, source.name, source.linktype,
                        source.snaplen, kwargs.pop("resolver", NO_DNS), **kwargs)
    for batch in source.batches():
        target.consume(batch)
    target.close()
    return target


def assert_matches_oracle(collector: Collector, path: Path, interval_s: float,
                          expected_records: int) -> None:
    want = oracle_flows(path, interval_s)
    records = collector.wait_for(lambda r: len(r) >= expected_records, 10)
    got = received_flows(records)
    assert len(records) == expected_records
    assert len(got) == len(records), "a 5-tuple appears twice in one interval"
    missing = {k: v for k, v in want.items() if got.get(k) != v}
    extra = {k: v for k, v in got.items() if k not in want}
    assert not missing and not extra, (list(missing.items())[:5], list(extra.items())[:5])


# --- replay against the oracle ---------------------------------------------------------------
def test_generated_trace_matches_dpkt_per_interval(gen_trace, collector):
    path = gen_trace(40_000, seed=7, rate_pps=10_000.0)  # 4 s: four 1 s intervals
    proc = run_command("--read", str(path), collector.url, "--interval", "1", "--no-dns",
                       "--include-own-traffic")
    assert proc.returncode == 0, proc.stderr
    summary = dict(kv.split("=") for kv in proc.stdout.split(": ", 1)[1].split())
    assert int(summary["send_failures"]) == 0 and int(summary["flows_overflowed"]) == 0
    assert int(summary["intervals"]) >= 4
    assert_matches_oracle(collector, path, 1.0, int(summary["records_sent"]))
    assert int(summary["datagrams"]) == int(summary["records_sent"]) == len(collector.datagrams)
    for d in collector.datagrams:
        assert len(d) <= 1400


@pytest.mark.parametrize("name", ["tls-windows-browsing.pcap", "ultrasurf-vlan.pcap",
                                  "http_ipv6.pcap", "dns_fragmented.pcap", "tls-sll2.pcap",
                                  "kakaotalk-sll.pcap", "dns-ipv6-rawip.pcap",
                                  "vlan-mixed-tagged-untagged.pcap"])
def test_real_capture_matches_dpkt_per_interval(name, collector):
    path = PCAPS_DIR / name
    target = replay_inprocess(path, collector.url, 1.0, exclude_own_traffic=False)
    assert target.stats.send_failures == 0 and target.stats.packets > 0
    assert_matches_oracle(collector, path, 1.0, target.stats.records_sent)


def test_records_have_the_seed_fields_and_types(collector):
    path = PCAPS_DIR / "http_ipv6.pcap"
    replay_inprocess(path, collector.url, 20.0)
    records = collector.wait_for(bool, 5)
    assert records
    seed_keys = ["source_IP", "source_PORT", "target_IP", "target_PORT", "type", "count",
                 "length", "source_HOST", "target_HOST", "time"]
    for r in records:
        assert list(r) == seed_keys
        assert all(isinstance(r[k], int) for k in ("source_PORT", "target_PORT", "count",
                                                    "length"))
        assert r["source_HOST"] == r["source_IP"] and r["target_HOST"] == r["target_IP"]
        datetime.strptime(r["time"], "%Y-%m-%d %H:%M:%S.%f")
    assert any(":" in r["source_IP"] for r in records), "IPv6 traffic must be counted"


def test_flow_cap_counts_what_overflows(gen_trace, collector):
    path = gen_trace(20_000, seed=3, rate_pps=100_000.0)  # 0.2 s: one 1 s interval or two
    target = replay_inprocess(path, collector.url, 1.0, max_flows=25, exclude_own_traffic=False)
    records = collector.wait_for(lambda r: len(r) >= target.stats.records_sent, 5)
    per_interval = Counter(r["time"] for r in records)
    assert per_interval and max(per_interval.values()) == 25
    assert target.stats.flows_overflowed > 0
    want = oracle_flows(path, 1.0)
    counted = sum(r["count"] for r in records)
    assert counted + target.stats.packets_overflowed == sum(v[0] for v in want.values())


def test_datagrams_stay_under_the_limit(gen_trace, collector):
    path = gen_trace(5_000, seed=5)
    target = replay_inprocess(path, collector.url, 60.0, max_datagram_bytes=600,
                              exclude_own_traffic=False, pack=True)
    collector.wait_for(lambda r: len(r) >= target.stats.records_sent, 5, packed=True)
    assert len(collector.datagrams) == target.stats.datagrams > 10
    assert all(len(d) <= 600 for d in collector.datagrams)
    assert sum(d.count(b"\n") for d in collector.datagrams) == target.stats.records_sent
    assert max(d.count(b"\n") for d in collector.datagrams) > 1, "lines must share datagrams"


def test_one_record_per_datagram_by_default(gen_trace, collector):
    """The aggregator's `sendto(json.dumps(record))`: each datagram is one record's JSON and
    nothing more (no newline), so Logstash's udp input + json filter parses every one."""
    path = gen_trace(5_000, seed=5)
    target = replay_inprocess(path, collector.url, 60.0, exclude_own_traffic=False)
    records = collector.wait_for(lambda r: len(r) >= target.stats.records_sent, 5)
    assert len(records) == len(collector.datagrams) == target.stats.datagrams \
        == target.stats.records_sent > 10
    assert [json.dumps(r).encode() for r in records] == collector.datagrams


# --- live on lo ------------------------------------------------------------------------------
def test_live_lo_udp_traffic_arrives_within_one_interval(collector):
    proc = subprocess.Popen([sys.executable, "-m", "pushcap.cli", "flows",
                             "--interface", "lo", collector.url, "--interval", "1", "--no-dns"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_log(proc, "event=started")  # logged once the capture handle is active
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.bind(("127.0.0.1", 0))
        dport, sport = receiver.getsockname()[1], sender.getsockname()[1]
        sizes = [10 + 7 * i for i in range(40)]
        first_sent = time.time()
        for size in sizes:
            sender.sendto(b"x" * size, ("127.0.0.1", dport))
            time.sleep(0.002)  # paced: a short trickle, as a link carries it
        last_sent = time.time()

        def mine(records: list[dict]) -> list[dict]:
            return [r for r in records if r["source_PORT"] == sport]

        records = collector.wait_for(lambda r: sum(x["count"] for x in mine(r)) >= 40, 10)
        got = mine(records)
        assert sum(r["count"] for r in got) == 40, records
        assert sum(r["length"] for r in got) == sum(sizes)
        assert {(r["source_IP"], r["target_IP"], r["target_PORT"], r["type"]) for r in got} == {
            ("127.0.0.1", "127.0.0.1", dport, "UDP")}
        # Each record is stamped with the end of the 1 s interval its packets fell into.
        for r in got:
            end = datetime.strptime(r["time"], "%Y-%m-%d %H:%M:%S.%f").replace(
                tzinfo=UTC).timestamp()
            assert end == int(end) and first_sent < end <= last_sent + 1.0, (r, first_sent)
        assert not [r for r in records if collector.port in (r["source_PORT"], r["target_PORT"])]
        receiver.close()
        sender.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "event=stopped" in err and "send_failures=0" in err


# --- collector down, Datadog ranges, the command's defaults ----------------------------------
def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_collector_down_counts_failures_and_keeps_running(gen_trace):
    path = gen_trace(20_000, seed=11, rate_pps=5_000.0)  # 4 s, several datagrams per interval
    target = replay_inprocess(path, f"udp://127.0.0.1:{closed_port()}", 0.5)
    assert target.stats.intervals >= 8
    assert target.stats.send_failures > 0
    assert target.stats.records_sent < target.stats.flows
    proc = run_command("--read", str(path), f"udp://127.0.0.1:{closed_port()}", "--no-dns",
                       "--interval", "0.5")
    # exit 1, as `pushcap replay` of the same flows target: a backfill must see what it lost
    assert proc.returncode == 1, proc.stderr
    assert "event=flows_send_failed" in proc.stderr and "could not be sent" in proc.stderr
    assert int(proc.stdout.split("send_failures=")[1].split()[0]) > 0


def test_datadog_ranges_mark_service_and_direction(gen_trace, collector, tmp_path):
    path = gen_trace(3_000, seed=2)
    want = oracle_flows(path, 60.0)
    v4 = sorted({k[3] for k in want if "." in k[3]})[0]
    v6 = sorted({k[1] for k in want if ":" in k[1]})[0]
    v4_net = ipaddress.ip_network(f"{v4}/20", strict=False)
    v6_net = ipaddress.ip_network(f"{v6}/120", strict=False)
    ranges = {"version": 1, "modified": "x",
              "logs": {"prefixes_ipv4": [str(v4_net)], "prefixes_ipv6": []},
              "api": {"prefixes_ipv4": ["192.0.2.1/32"], "prefixes_ipv6": [str(v6_net)]}}
    (tmp_path / "ip-ranges.json").write_text(json.dumps(ranges))
    datadog = DatadogRanges.load(tmp_path / "ip-ranges.json")
    target = replay_inprocess(path, collector.url, 60.0, datadog=datadog,
                              exclude_own_traffic=False)
    records = collector.wait_for(lambda r: len(r) >= target.stats.records_sent, 5)
    seen = Counter()
    for r in records:
        def service(ip: str) -> str | None:
            addr = ipaddress.ip_address(ip)
            return ("logs" if addr in v4_net else "api" if addr in v6_net else None)

        tgt, src = service(r["target_IP"]), service(r["source_IP"])
        expect = (tgt, "outgoing") if tgt else (src, "incoming") if src else ("none", "none")
        assert (r["datadog_service"], r["packet_flow"]) == expect, r
        seen[expect] += 1
    assert seen[("logs", "outgoing")] and seen[("logs", "incoming")]
    assert seen[("api", "outgoing")] and seen[("api", "incoming")] and seen[("none", "none")]


def test_command_excludes_its_own_traffic_and_rejects_bad_input(tmp_path):
    proc = run_command("--read", str(PCAPS_DIR / "http_ipv6.pcap"), "tcp://127.0.0.1:1")
    assert proc.returncode == 1 and "udp://HOST:PORT" in proc.stderr
    proc = run_command("--read", str(PCAPS_DIR / "http_ipv6.pcap"), "--bpf", "tcpp")
    assert proc.returncode == 1 and 'FilterBPF "tcpp"' in proc.stderr
    path = PCAPS_DIR / "dns-ipv6-rawip.pcap"  # DNS: excluding port 53 leaves nothing
    proc = run_command("--read", str(path), f"udp://127.0.0.1:{closed_port()}")
    assert "packets=4 " in proc.stdout, proc.stdout
    assert proc.returncode == 1, proc.stderr  # nothing listens there: the records were lost
    proc = run_command("--read", str(path), "udp://127.0.0.1:53", "--no-dns")
    assert proc.returncode == 0 and "packets=0 " in proc.stdout, proc.stdout
