"""A long command's progress line: what it says, how often it is redrawn, how it goes away."""

from __future__ import annotations

import io
import logging

from pushcap.supervisor.progress import ERASE_LINE, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def meter(total_bytes: int = 1_000_024, interval_s: float = 0.25):
    clock = Clock()
    stream = io.StringIO()
    return Progress(stream, total_bytes, start_bytes=24, interval_s=interval_s,
                    clock=clock), stream, clock


def test_the_line_says_packets_bytes_rates_elapsed_and_time_left():
    progress, _, _ = meter()
    line = progress.line(packets=250_000, position=250_024, now=102.0)
    assert line == ("250,000 packets  250.0 kB of 1.0 MB (25%)  125,000 packets/s  125.0 kB/s  "
                    "elapsed 0:02  left ~0:06")


def test_redrawn_at_most_once_per_interval_whatever_the_batches():
    progress, stream, clock = meter()
    for batch in range(1, 101):  # a hundred batches within one interval: the first draws
        clock.now += 0.002
        progress.update(batch * 8192, 24 + batch * 4_000)
    assert stream.getvalue().count(ERASE_LINE) == 1
    clock.now += 0.25
    progress.update(101 * 8192, 24 + 101 * 4_000)
    assert stream.getvalue().count(ERASE_LINE) == 2
    assert "827,392 packets" in stream.getvalue()


def test_finish_erases_the_line_or_keeps_its_final_state():
    progress, stream, clock = meter()
    progress.update(10, 1_000)
    clock.now += 0.1
    progress.update(20, 2_000)  # not drawn: within the interval
    progress.finish()
    assert stream.getvalue().endswith(ERASE_LINE)
    progress, stream, clock = meter()
    progress.update(10, 1_000)
    clock.now += 0.1
    progress.update(20, 2_000)
    progress.finish(keep=True)
    assert stream.getvalue().endswith("20 packets  2.0 kB of 1.0 MB (0%)  200 packets/s  "
                                      "19.8 kB/s  elapsed 0:00  left ~0:51\n")
    assert "10 packets  976 B of 1.0 MB (0%)  elapsed 0:00\r" in stream.getvalue()  # no rate yet


def test_no_estimate_before_anything_was_read_or_without_a_size():
    progress, _, _ = meter(total_bytes=0)
    assert "left" not in progress.line(0, 24, 100.5)
    assert "%" not in progress.line(10, 2_000, 100.5)


def test_a_log_line_during_the_run_gets_a_clean_line():
    progress, stream, _ = meter()
    logger = logging.getLogger("pushcap.test_progress")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        progress.clear_before_logs(logger)
        progress.update(5, 500)
        logger.warning("event=truncated_capture")
        assert stream.getvalue().endswith(ERASE_LINE + "event=truncated_capture\n")
        progress.finish()
        assert handler.filters == []  # nothing left behind on the handler
    finally:
        logger.removeHandler(handler)


def test_hours_and_large_sizes():
    progress, _, _ = meter(total_bytes=40_000_000_024)
    line = progress.line(packets=60_000_000, position=4_000_000_024, now=100.0 + 3725)
    assert "4.0 GB of 40.0 GB (10%)" in line
    assert "elapsed 1:02:05" in line and "left ~9:18:45" in line
