"""A fault of pushcap's own in a capture thread does not end the capture (issue 19 found one:
a record arena's bookkeeping raised ValueError, the capture thread died, its ring never closed
and the daemon's stop hung for 30 s)."""

from __future__ import annotations

import logging
import threading

from test_ring import make_batch

from pushcap.capture.capture_thread import CaptureStats, capture_until_stopped
from pushcap.capture.ring import Ring


class FakeSource:
    """What capture_until_stopped uses of a LiveSource: `fail` raises inside batches()."""

    leftovers_read = 0

    def __init__(self, fail: bool, stop: threading.Event) -> None:
        self.fail, self.stop, self.closed = fail, stop, False

    def batches(self):
        yield make_batch(1.0 if self.fail else 2.0, 3)
        if self.fail:
            raise ValueError("a bug in pushcap")
        self.stop.wait(30)

    def hurry(self) -> None:
        pass

    def stats(self) -> tuple[int, int, int]:
        return 0, 0, 0

    def unread(self) -> int | None:
        return None

    def close(self) -> None:
        self.closed = True


def test_an_unexpected_error_is_logged_and_the_capture_goes_on(caplog) -> None:
    stop = threading.Event()
    first = FakeSource(True, stop)
    reopened: list[FakeSource] = []
    ring = Ring("fake0", 1, 65535, max_seconds=60, max_bytes=1 << 24)
    cursor = ring.cursor()

    def reopen() -> FakeSource:
        reopened.append(FakeSource(False, stop))
        return reopened[-1]

    thread = threading.Thread(target=capture_until_stopped, daemon=True,
                              args=("fake0", first, ring, CaptureStats(), reopen, stop))
    with caplog.at_level(logging.ERROR, logger="pushcap.engine"):
        thread.start()
        got = cursor.read(timeout_s=10)  # the batch before the failure
        got += cursor.read(timeout_s=10)  # the reopened source's (after a 1 s backoff)
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert [int(b.ts_ns[0]) for b in got] == [10**9, 2 * 10**9]
    assert first.closed and len(reopened) == 1
    assert "event=capture_failed interface=fake0 error=\"ValueError('a bug in pushcap')\"" \
        in caplog.text
    assert cursor.read(timeout_s=0) == [] and cursor.closed  # the ring was closed at the end


def test_the_ring_is_closed_even_when_the_recovery_itself_fails() -> None:
    stop = threading.Event()
    first = FakeSource(True, stop)
    first.close = None  # calling it raises TypeError inside the recovery
    ring = Ring("fake1", 1, 65535, max_seconds=60, max_bytes=1 << 24)
    cursor = ring.cursor()
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run(errors, first, ring, stop), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and errors
    cursor.read(timeout_s=0)
    assert cursor.closed


def _run(errors: list, source, ring: Ring, stop: threading.Event) -> None:
    try:
        capture_until_stopped("fake1", source, ring, CaptureStats(), lambda: None, stop)
    except BaseException as exc:  # noqa: BLE001 - the test looks at it
        errors.append(exc)
