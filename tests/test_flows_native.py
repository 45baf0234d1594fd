"""The flows target's C path (csrc/flowcount.c) against its numpy path, record for record.

Both paths are built from the same config in one process (`numpy_only` picks numpy) and fed
the same batches; every record each sends (fields, values and order) and every packet counter
must be equal. The numpy path is itself held to dpkt by tests/integration/test_flows.py. The
inputs: every real capture in tests/data/, each also cut to short snap lengths (the decoder's
bounds checks), and a generated trace (VLAN tags, tunnels, IPv6, fragments), with a filter
under Decap, a flow cap and Datadog ranges, in batches that straddle intervals.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from oracle import PCAPS_DIR

from pushcap.capture.batch import Batch
from pushcap.capture.source import open_file_source
from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
from pushcap.flows.export import DatadogRanges
from pushcap.flows.native_table import NativeFlowTable, native_flows
from pushcap.flows.resolve import NO_DNS
from pushcap.flows.target import FlowTarget

pytestmark = pytest.mark.skipif(native_flows() is None, reason="the C library is not built")

S = 1_000_000_000
CAPTURES = sorted(p for p in PCAPS_DIR.iterdir() if p.suffix in (".pcap", ".pcapng"))
SNAPS = (1, 4, 14, 18, 20, 24, 34, 38, 42, 54, 58, 62, 66, 74, 78)
DATADOG = DatadogRanges({"agents": ["10.0.0.0/8", "2001:db8::/32"],
                         "logs": ["192.168.0.0/16", "172.16.0.0/12", "fe80::/10"]})


def config(interval_s: float, bpf: str | None = None, decap: bool = False) -> TargetConfig:
    return TargetConfig(index=1, desc="flows-native", mode=PushMode.FLOWS,
                        path="udp://127.0.0.1:9", split=SplitRule(SplitKind.TIME, S),
                        naming=NamingRule("--filename-epoch-sec"), filter_bpf=bpf,
                        interval_s=interval_s, decap=decap)


def batches_of(path: Path, batch_packets: int) -> tuple[list[Batch], int, int]:
    source = open_file_source(path, batch_packets=batch_packets)
    batches = [b for b in source.batches() if b.linktype == source.linktype]
    return batches, source.linktype, source.snaplen


def cut(batch: Batch, snap: int) -> Batch:
    """The batch as a capture at snap length `snap` would hold it (the bytes stay, unread)."""
    return Batch(batch.records, batch.offsets, batch.ts_ns, batch.caplen.clip(max=snap),
                 batch.wirelen, batch.linktype, batch.snaplen)


def run(batches: list[Batch], linktype: int, snaplen: int, target_config: TargetConfig,
        numpy_only: bool, monkeypatch, **kwargs) -> tuple[list[list[dict]], dict]:
    """Every interval's records as sent, and the target's counters."""
    target = FlowTarget(target_config, "test0", linktype, snaplen, NO_DNS,
                        numpy_only=numpy_only, **kwargs)
    assert isinstance(target.table, NativeFlowTable) is not numpy_only
    sent: list[list[dict]] = []
    monkeypatch.setattr(target.exporter, "send", lambda records: sent.append(list(records)))
    for batch in batches:
        target.consume(batch)
    target.close(now_ns=None)
    stats = dataclasses.asdict(target.stats)
    stats.pop("flows_overflowed")  # distinct flows turned away: counted per merge, not exact
    return sent, stats


def assert_same(batches, linktype, snaplen, target_config, monkeypatch, **kwargs) -> dict:
    c_records, c_stats = run(batches, linktype, snaplen, target_config, False, monkeypatch,
                             **kwargs)
    np_records, np_stats = run(batches, linktype, snaplen, target_config, True, monkeypatch,
                               **kwargs)
    assert c_stats == np_stats
    assert c_records == np_records
    return c_stats


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_real_captures_give_the_same_records(path, monkeypatch):
    batches, linktype, snaplen = batches_of(path, 64)
    stats = assert_same(batches, linktype, snaplen, config(0.5), monkeypatch,
                        exclude_own_traffic=False, datadog=DATADOG)
    assert stats["packets"] + stats["non_ip_packets"] == sum(len(b) for b in batches)
    assert_same(batches, linktype, snaplen, config(3600.0, "tcp or udp port 53", decap=True),
                monkeypatch, max_flows=3)


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_real_captures_cut_short_give_the_same_records(path, monkeypatch):
    batches, linktype, snaplen = batches_of(path, 4096)
    for snap in SNAPS:
        assert_same([cut(b, snap) for b in batches], linktype, snaplen, config(60.0),
                    monkeypatch, exclude_own_traffic=False)


@pytest.mark.parametrize(("batch_packets", "interval_s", "bpf", "decap", "max_flows"), [
    (8192, 0.05, None, False, 100_000),
    (1000, 0.013, None, False, 50),
    (300, 0.2, "tcp", True, 100_000),
    (4096, 1.0, "not udp", True, 200),
])
def test_generated_trace_gives_the_same_records(gen_trace, monkeypatch, batch_packets,
                                                 interval_s, bpf, decap, max_flows):
    batches, linktype, snaplen = batches_of(gen_trace(20_000, seed=11), batch_packets)
    stats = assert_same(batches, linktype, snaplen, config(interval_s, bpf, decap), monkeypatch,
                        max_flows=max_flows, datadog=DATADOG)
    assert stats["intervals"] >= 1 and stats["packets"] > 0


@pytest.mark.parametrize("numpy_only", [False, True])
def test_a_closed_flows_target_is_freed_without_the_cycle_collector(monkeypatch, numpy_only):
    """A reload lets its old flows target go, and the daemon's start-up objects are frozen out
    of the cycle collector's way: a target in a reference cycle (its sender holding its bound
    `note_error`) kept its table, up to MAX_FLOWS rows, until a full collection."""
    import gc
    import weakref

    batches, linktype, snaplen = batches_of(CAPTURES[0], 64)
    target = FlowTarget(config(1.0), "test0", linktype, snaplen, NO_DNS, numpy_only=numpy_only)
    monkeypatch.setattr(target.exporter, "send", lambda records: None)
    target.consume(batches[0])
    target.close(now_ns=None)
    gone = weakref.ref(target)
    gc.disable()
    try:
        monkeypatch.undo()  # the patched method held the exporter, not the target: drop it too
        del target
        assert gone() is None
    finally:
        gc.enable()
