"""A flows target changed by a reload in the middle of an interval: the interval in progress is
still one record per flow, with every packet of it, sent once at its end."""

from __future__ import annotations

import pytest
from engine_harness import S, batch_of, engine_with

from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig

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
