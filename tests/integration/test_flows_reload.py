"""A flows target changed by a reload in the middle of an interval: the interval in progress is
still one record per flow, with every packet of it, sent once at its end."""

from __future__ import annotations

import logging

import pytest
from engine_harness import S, batch_of, engine_with
from oracle import read_pcap

from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
from pushcap.flows.aggregate import FlowTable
from pushcap.flows.resolve import NO_DNS
from pushcap.flows.target import FlowTarget

pytestmark = pytest.mark.integration


def flows_target(url: str, bpf: str | None, interval_s: float = 1.0) -> TargetConfig:
    return TargetConfig(1, "f", PushMode.FLOWS, url, SplitRule(SplitKind.TIME, S),
                        NamingRule("--filename-epoch-sec"), bpf, interval_s=interval_s)


def counts_by_time(records: list[dict]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in records:
        out.setdefault(r["time"], []).append(r["count"])
    return out


def test_the_interval_in_progress_is_sent_once_by_the_changed_target(tmp_path, collector):
    engine = engine_with(tmp_path, flows_target(collector.url, None))
    base = 1_700_000_000 * S
    engine.push_step("eth0", [batch_of([base + 100, base + 200], [60, 60])], base)
    engine.reload((flows_target(collector.url, "udp"),))  # changed: another FilterBPF
    engine.push_step("eth0", [batch_of([base + 300], [60])], base)
    engine.push_step("eth0", [batch_of([base + S + 5], [60])], base + S)  # the next interval
    engine.close_consumers("eth0")
    records = collector.wait_for(lambda r: sum(x["count"] for x in r) >= 4, 5)
    collector.wait_for(lambda r: False, 0.5)  # a second record for an interval would come now
    by_time = counts_by_time(collector.records())
    assert sorted(by_time.values()) == [[1], [3]], by_time  # one flow: 3 packets, then 1
    assert len(records) >= 2


def test_a_changed_interval_sends_what_the_old_one_counted(tmp_path, collector):
    """Intervals of another length cannot be merged: the old target sends its part, the new
    one the rest; every packet is counted once."""
    engine = engine_with(tmp_path, flows_target(collector.url, None))
    base = 1_700_000_000 * S
    engine.push_step("eth0", [batch_of([base + 100, base + 200], [60, 60])], base)
    engine.reload((flows_target(collector.url, None, interval_s=2.0),))
    engine.push_step("eth0", [batch_of([base + 300], [60])], base)
    engine.close_consumers("eth0")
    records = collector.wait_for(lambda r: sum(x["count"] for x in r) >= 3, 5)
    assert sorted(x["count"] for x in records) == [1, 2]


def test_a_file_target_turned_into_flows_starts_clean(tmp_path, collector):
    """Same Desc, Mode File -> flows: nothing to carry on, and no error counted for trying."""
    file_target = TargetConfig(1, "f", PushMode.FILE, str(tmp_path / "out" / "f"),
                               SplitRule(SplitKind.TIME, S), NamingRule("--filename-epoch-sec"))
    engine = engine_with(tmp_path, file_target)
    base = 1_700_000_000 * S
    engine.push_step("eth0", [batch_of([base + 100], [60])], base)
    engine.reload((flows_target(collector.url, None),))
    engine.push_step("eth0", [batch_of([base + 300, base + 400], [60, 60])], base)
    engine.push_step("eth0", [batch_of([base + S + 1, base + S + 2], [60, 60])], base + S)
    flows = [c for c in engine.consumers["eth0"] if isinstance(c, FlowTarget)]
    assert len(flows) == 1 and flows[0].errors == 0
    engine.close_consumers("eth0")
    records = collector.wait_for(lambda r: sum(x["count"] for x in r) >= 2, 5)
    assert [x["count"] for x in records] == [2]  # the file's window ended at base + S
    files = list((tmp_path / "out").glob("f_*.pcap"))
    assert len(files) == 1 and len(read_pcap(files[0]).packets) == 3


def test_flows_turned_away_in_a_carried_interval_are_still_reported(collector, caplog):
    """Flows over max_flows are counted when the table is merged mid-interval; that interval's
    warning comes when it is sent, by the successor."""
    base = 1_700_000_000 * S
    old = FlowTarget(flows_target(collector.url, None), "eth0", 1, 262144, NO_DNS, max_flows=1)
    old.table = FlowTable(1, compact_rows=2)  # merge (and turn flows away) at once
    for k in range(4):  # the last merge leaves nothing pending: the count is all the mid-interval
        old.consume(batch_of([base + k], [60], sources=[k + 1]))
    assert old.table.overflow.flows > 0
    new = FlowTarget(flows_target(collector.url, "udp"), "eth0", 1, 262144, NO_DNS,
                     max_flows=1)
    new.take_over(old)
    old.close()
    with caplog.at_level(logging.WARNING, logger="pushcap.flows"):
        new.close()
    assert "event=flows_overflow" in caplog.text
