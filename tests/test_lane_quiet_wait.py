"""How long a lane's read waits before it ticks its consumers (TargetLane._read_wait_s): until
the soonest moment a tick can act (a time-split file's or a flow interval's end), never longer
than PUSH_QUIET_POLL_S (issue 19: lanes woke five times a second for nothing)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from engine_harness import S, batch_of, engine_with
from oracle import read_pcap

from pushcap import defaults
from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
from pushcap.supervisor.target_lane import TICK_SLACK_S, TargetLane

NOW = 1_700_000_000 * S


class Consumer:
    """Says when it needs a tick (None: not before another batch)."""

    def __init__(self, due: int | None) -> None:
        self.next_tick_ns = lambda: due


def lane_with(*consumers) -> TargetLane:
    lane = TargetLane.__new__(TargetLane)
    lane.slots = SimpleNamespace(slots=[SimpleNamespace(consumer=c) for c in consumers])
    return lane


def test_nothing_due_waits_long() -> None:
    assert lane_with(Consumer(None), Consumer(None))._read_wait_s(NOW) \
        == defaults.PUSH_QUIET_POLL_S
    assert lane_with()._read_wait_s(NOW) == defaults.PUSH_QUIET_POLL_S  # a removed target
    assert lane_with(Consumer(NOW + 3600 * S))._read_wait_s(NOW) == defaults.PUSH_QUIET_POLL_S


def test_the_soonest_due_tick_sets_the_wait() -> None:
    wait_s = lane_with(Consumer(None), Consumer(NOW + S // 2), Consumer(NOW + S))\
        ._read_wait_s(NOW)
    assert wait_s == pytest.approx(0.5 + TICK_SLACK_S)


def test_an_overdue_tick_is_tried_again_at_the_usual_pace() -> None:
    """Overdue: the last tick did not act (its file could not be closed); it is tried again
    every PUSH_POLL_S, never in a tight loop."""
    assert lane_with(Consumer(None), Consumer(NOW - 1))._read_wait_s(NOW) \
        == defaults.PUSH_POLL_S
    assert defaults.PUSH_QUIET_POLL_S > defaults.PUSH_POLL_S


def test_a_flows_target_needs_a_tick_only_at_its_open_interval_end() -> None:
    from pushcap.flows.target import FlowTarget

    assert FlowTarget.next_tick_ns(SimpleNamespace(_open=None)) is None
    interval = SimpleNamespace(_open=17, interval_ns=10 * S)
    assert FlowTarget.next_tick_ns(interval) == 180 * S + int(defaults.FLOW_GRACE_S * S)


@pytest.mark.parametrize("split, ticks_at_most", [("time", 3), ("bytes", 2)])
def test_a_quiet_link_lane_wakes_when_its_file_is_due_not_every_poll(tmp_path, split,
                                                                     ticks_at_most) -> None:
    """A lane of a real engine with one packet in its ring and nothing after it: a time-split
    file (1 s windows) is closed by a tick at its window's end plus the grace, with a handful
    of wake-ups (it took one every PUSH_POLL_S, ~10 here); a byte-split file's lane has nothing
    a tick can do and waits PUSH_QUIET_POLL_S."""
    out = tmp_path / "out"
    rule = SplitRule(SplitKind.TIME, S) if split == "time" else SplitRule(SplitKind.BYTE, 10**9)
    config = TargetConfig(1, "t", PushMode.FILE, str(out / "t"), rule,
                          NamingRule("--filename-epoch-nsec"), None)
    engine = engine_with(tmp_path, config)
    ring = engine.rings["eth0"]
    [lane] = engine.lanes("eth0")
    [consumer] = engine.consumers["eth0"]
    ticks = []
    tick = consumer.tick
    consumer.tick = lambda now_ns: (ticks.append(now_ns), tick(now_ns))
    ring.append(batch_of([time.time_ns()], [100]))
    runner = threading.Thread(target=lane.run)
    runner.start()
    try:
        if split == "time":
            deadline = time.monotonic() + 20
            while not list(out.glob("t_*.pcap")) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(list(out.glob("t_*.pcap"))) == 1, "the quiet window's file was not closed"
        else:
            deadline = time.monotonic() + 20
            while len(ticks) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(ticks) >= 2, "the lane never ticked"
            gap_s = (ticks[1] - ticks[0]) / S
            assert gap_s >= defaults.PUSH_QUIET_POLL_S * 0.9, gap_s
        assert len(ticks) <= ticks_at_most, ticks
    finally:
        ring.close()
        runner.join(30)
    assert not runner.is_alive()
    [published] = out.glob("t_*.pcap")
    assert len(read_pcap(published).packets) == 1
