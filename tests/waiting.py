"""Waiting for an event instead of sleeping and hoping: poll a condition until a deadline.

The deadline only turns a hang into a failure; it is never what a test measures (how fast
something happens belongs in the benchmark, tools/bench.py). Keep it generous.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.02


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str,
               poll_s: float = POLL_S) -> T:
    """Call `predicate` every `poll_s` until it returns something true, and return that.

    Raises AssertionError naming `what` (and the last value seen) when `timeout_s` passes
    first. The predicate is always called once more at the deadline, so a slow poll never
    fails a condition that did come true."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} "
                                 f"(last: {value!r})")
        time.sleep(poll_s)
