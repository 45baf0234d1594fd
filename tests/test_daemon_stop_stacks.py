"""A stop that runs out of time says what every thread still running was doing."""

from __future__ import annotations

import logging
import threading

from pushcap.supervisor.daemon import Daemon


class StuckEngine:
    def stop(self, timeout_s: float) -> bool:
        return False  # a thread did not finish in time


def test_an_unfinished_stop_logs_each_threads_stack(caplog) -> None:
    release = threading.Event()

    def waits_forever_in_a_named_function() -> None:
        release.wait(30)

    stuck = threading.Thread(target=waits_forever_in_a_named_function, name="stuck-lane")
    stuck.start()
    daemon = Daemon.__new__(Daemon)
    daemon.services, daemon.engine, daemon.status_server = {}, StuckEngine(), None
    try:
        with caplog.at_level(logging.ERROR):
            assert daemon.stop(1.0) is False
    finally:
        release.set()
        stuck.join(10)
    lines = [r.getMessage() for r in caplog.records if "event=stop_unfinished" in r.getMessage()]
    stuck_lines = [line for line in lines if "thread=stuck-lane" in line]
    assert len(stuck_lines) == 1 and "waits_forever_in_a_named_function" in stuck_lines[0]
