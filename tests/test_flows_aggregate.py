"""The per-interval flow table against a plain Python count, and the export helpers."""

from __future__ import annotations

import ipaddress
import json
from collections import Counter

import numpy as np
import pytest

from pushcap.flows.aggregate import FlowTable, group, pack_keys, unpack_keys
from pushcap.flows.decode import Decoded
from pushcap.flows.export import (
    DatadogRanges,
    FlowExportError,
    datagrams,
    format_time,
    parse_destination,
)


def decoded(rng: np.random.Generator, n: int, flows: np.ndarray) -> tuple[Decoded, np.ndarray]:
    """A Decoded batch whose packets pick rows of `flows` ((k, 6) ints); returns the picks."""
    pick = rng.integers(0, len(flows), n)
    f = flows[pick]
    src = np.zeros((n, 16), np.uint8)
    dst = np.zeros((n, 16), np.uint8)
    src[:, 15] = f[:, 2] & 0xFF
    src[:, 0] = f[:, 2] >> 8
    dst[:, 3] = f[:, 3] & 0xFF
    d = Decoded(f[:, 0].astype(np.uint8), src, dst, f[:, 1].astype(np.uint8),
                f[:, 4].astype(np.uint16), f[:, 5].astype(np.uint16),
                rng.integers(0, 1500, n).astype(np.int64))
    return d, pick


def flow_space(rng: np.random.Generator, k: int) -> np.ndarray:
    cols = [rng.choice([4, 6], k), rng.choice([1, 6, 17], k), rng.integers(0, 65536, k),
            rng.integers(0, 256, k), rng.integers(0, 65536, k), rng.integers(0, 65536, k)]
    return np.unique(np.stack(cols, axis=1), axis=0)


def python_count(batches) -> tuple[Counter, Counter, list]:
    count, length, order = Counter(), Counter(), []
    for d, _ in batches:
        keys = pack_keys(d, np.arange(len(d)))
        for row, size in zip(keys, d.length.tolist(), strict=True):
            key = row.tobytes()
            if key not in count:
                order.append(key)
            count[key] += 1
            length[key] += size
    return count, length, order


@pytest.mark.parametrize("compact_rows", [None, 50])
def test_table_matches_python_count_in_first_seen_order(compact_rows):
    rng = np.random.default_rng(4)
    space = flow_space(rng, 3000)
    batches = [decoded(rng, 2000, space) for _ in range(12)]
    table = FlowTable(compact_rows=compact_rows)
    for d, _ in batches:
        table.add(d, np.arange(len(d)))
    flows = table.take()
    count, length, order = python_count(batches)
    assert [k.tobytes() for k in flows.keys] == order
    assert flows.count.tolist() == [count[k] for k in order]
    assert flows.length.tolist() == [length[k] for k in order]
    assert table.overflow.flows == 0 and not table
    assert len(table.take()) == 0, "take() starts a new interval"


def test_cap_keeps_first_seen_flows_and_counts_the_rest():
    rng = np.random.default_rng(5)
    space = flow_space(rng, 200)
    batches = [decoded(rng, 300, space) for _ in range(10)]
    table = FlowTable(max_flows=20, compact_rows=40)
    for d, _ in batches:
        table.add(d, np.arange(len(d)))
    flows = table.take()
    count, length, order = python_count(batches)
    assert [k.tobytes() for k in flows.keys] == order[:20]
    assert flows.count.tolist() == [count[k] for k in order[:20]]
    assert table.overflow.packets == sum(count[k] for k in order[20:])
    assert table.overflow.bytes == sum(length[k] for k in order[20:])
    assert table.overflow.flows >= len(order) - 20


def test_group_is_exact_for_keys_that_differ_in_any_byte():
    base = np.zeros((1, 40), np.uint8)
    variants = [base.copy()]
    for byte in [0, 1, 2, 5, 8, 15, 23, 24, 39]:
        v = base.copy()
        v[0, byte] = 1
        variants.append(v)
    keys = np.concatenate(variants * 3)
    first, inverse = group(keys)
    assert len(first) == len(variants)
    assert (keys[first[inverse]] == keys).all()


def test_pack_and_unpack_keys_round_trip():
    rng = np.random.default_rng(6)
    d, _ = decoded(rng, 50, flow_space(rng, 10))
    fields = unpack_keys(pack_keys(d, np.arange(50)))
    for name in ("family", "proto", "sport", "dport", "src", "dst"):
        assert (fields[name] == getattr(d, name)).all(), name


def test_datagrams_pack_lines_under_the_limit():
    lines = [(json.dumps({"n": i, "pad": "x" * (i % 50)}) + "\n").encode() for i in range(200)]
    out = list(datagrams(lines, 300))
    assert all(len(p) <= 300 for p, _ in out)
    assert b"".join(p for p, _ in out) == b"".join(lines)
    assert sum(n for _, n in out) == 200 and len(out) < 200


def test_time_format_is_the_seeds():
    assert format_time(1_473_377_260_090_202_999) == "2016-09-08 23:27:40.090202"
    assert format_time(1_473_377_260 * 10**9) == "2016-09-08 23:27:40.000000"


def test_destinations():
    assert parse_destination("udp://127.0.0.1:10518") == ("127.0.0.1", 10518)
    assert parse_destination("udp://[::1]:5141") == ("::1", 5141)
    assert parse_destination("udp://collector") == ("collector", 10518)
    for bad in ("tcp://h:1", "udp://:1", "udp://h:99999", "127.0.0.1:10518"):
        with pytest.raises(FlowExportError):
            parse_destination(bad)


@pytest.mark.parametrize("bad", ["a\nb", "udp://h:1\n2", "udp://[::1\n"])
def test_a_destination_holding_a_newline_is_named_in_one_line(bad):
    """Found by tests/fuzz/test_fuzz_cli.py: `pushcap flows 'a<newline>b' -r F` printed the
    destination raw, an error of two lines; and urlsplit drops a newline, so `udp://h:1<newline>2`
    was port 12."""
    with pytest.raises(FlowExportError) as info:
        parse_destination(bad)
    assert "\n" not in str(info.value) and bad.replace("\n", "\\n") in str(info.value)


def test_datadog_ranges_any_cidr_longest_prefix_wins():
    ranges = DatadogRanges({"agents": ["10.0.0.0/8", "2001:db8::/32"],
                            "logs": ["10.1.2.0/24", "2001:db8:1::/48", "192.0.2.7/32"]})
    assert ranges.service("10.9.9.9") == "agents"
    assert ranges.service("10.1.2.200") == "logs"
    assert ranges.service("192.0.2.7") == "logs" and ranges.service("192.0.2.8") is None
    assert ranges.service("2001:db8:1::5") == "logs"
    assert ranges.service("2001:db8:2::5") == "agents"
    assert ranges.service("2001:db9::1") is None
    for ip in ("10.1.2.3", "2001:db8:1::5"):  # the answer agrees with ipaddress membership
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(
            "10.1.2.0/24" if "." in ip else "2001:db8:1::/48")
    record = {"source_IP": "10.200.0.1", "target_IP": "8.8.8.8"}
    ranges.annotate(record)
    assert (record["datadog_service"], record["packet_flow"]) == ("agents", "incoming")
