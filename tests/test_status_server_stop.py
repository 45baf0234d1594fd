"""The status server stops at once although its idle loop looks at its stop flag only every
SERVE_POLL_S (a short poll woke an idle daemon twice a second, issue 19)."""

from __future__ import annotations

import threading
import time
import urllib.request

from pushcap.supervisor import status
from pushcap.supervisor.status import StatusServer


def serving_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "status-http" and t.is_alive()]


def test_an_idle_server_stops_at_once_and_its_thread_ends() -> None:
    assert status.SERVE_POLL_S >= 30  # the idle loop does not wake the daemon
    before = set(serving_threads())
    server = StatusServer("127.0.0.1", 0, lambda: {"problems": []}, lambda: (True, ""))
    server.start()
    [thread] = set(serving_threads()) - before
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/status"
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.status == 200
        started = time.monotonic()
        server.shutdown()
        took_s = time.monotonic() - started
    finally:
        server.server_close()
    thread.join(5)
    assert not thread.is_alive()
    assert took_s < status.SHUTDOWN_WAIT_S, took_s


def test_stopping_a_server_never_started_or_stopped_twice_returns_at_once() -> None:
    server = StatusServer("127.0.0.1", 0, lambda: {"problems": []}, lambda: (True, ""))
    try:
        started = time.monotonic()
        server.shutdown()  # never started
        server.start()
        server.shutdown()
        server.shutdown()  # twice
        assert time.monotonic() - started < status.SHUTDOWN_WAIT_S
    finally:
        server.server_close()
    assert not [t for t in threading.enumerate() if t.name == "status-http-stop" and t.is_alive()]
