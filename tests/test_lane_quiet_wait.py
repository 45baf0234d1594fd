"""How long a lane's read waits before it ticks its consumers (TargetLane._read_wait_s): short
while a tick can act, long on a quiet link where none can (issue 19: lanes woke five times a
second for nothing)."""

from __future__ import annotations

from types import SimpleNamespace

from pushcap import defaults
from pushcap.supervisor.target_lane import TargetLane


class Consumer:
    def __init__(self, open_now: bool | None) -> None:
        self.open_now = open_now
        if open_now is not None:
            self.awaits_tick = lambda: self.open_now


def lane_with(*consumers) -> TargetLane:
    lane = TargetLane.__new__(TargetLane)
    lane.slots = SimpleNamespace(slots=[SimpleNamespace(consumer=c) for c in consumers])
    return lane


def test_nothing_open_waits_long() -> None:
    assert lane_with(Consumer(False), Consumer(False))._read_wait_s() \
        == defaults.PUSH_QUIET_POLL_S
    assert lane_with()._read_wait_s() == defaults.PUSH_QUIET_POLL_S  # a removed target


def test_an_open_file_or_a_consumer_that_cannot_say_is_ticked_often() -> None:
    assert lane_with(Consumer(False), Consumer(True))._read_wait_s() == defaults.PUSH_POLL_S
    assert lane_with(Consumer(None))._read_wait_s() == defaults.PUSH_POLL_S
    assert defaults.PUSH_QUIET_POLL_S > defaults.PUSH_POLL_S


def test_the_real_consumers_say_when_a_tick_can_act() -> None:
    """A File target awaits a tick only with a file open; a flows target only with an interval
    open (their ticks do nothing otherwise)."""
    from pushcap.flows.target import FlowTarget
    from pushcap.push.target import Series

    assert Series.awaits_tick(SimpleNamespace(writer=SimpleNamespace(
        file=SimpleNamespace(is_open=False)))) is False
    assert Series.awaits_tick(SimpleNamespace(writer=SimpleNamespace(
        file=SimpleNamespace(is_open=True)))) is True
    assert FlowTarget.awaits_tick(SimpleNamespace(_open=None)) is False
    assert FlowTarget.awaits_tick(SimpleNamespace(_open=17)) is True
