"""`redis_connected` in the daemon's status turns false within a second of Redis dying (issue 17,
item 6: it stayed true for ~3.6 s while redis-py retried the dropped connection on its own)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest
import redis
from service_harness import Daemon, free_port, target_lua
from waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

LOSS_SEEN_WITHIN_S = 1.5  # the issue asks for 1 s; the margin is for a loaded 2-core machine


def start_redis(folder, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
                             str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            return redis.Redis(port=port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    wait_until(answers, 10, "redis-server to answer")
    return proc


def test_redis_connected_turns_false_within_a_second_of_redis_dying(tmp_path):
    port = free_port()
    server = start_redis(tmp_path, port)
    try:
        daemon = Daemon(tmp_path, target_lua(tmp_path / "out", free_port(), "seq"),
                        toml_extra=f'[redis]\nport = {port}\nchannel = "loss-test"\n')
        try:
            wait_until(lambda: daemon.status()["trigger"]["redis_connected"], 20,
                       "the daemon to subscribe")
            killed = time.monotonic()
            server.send_signal(signal.SIGKILL)
            wait_until(lambda: not daemon.status()["trigger"]["redis_connected"], 10,
                       "status to say Redis is gone", poll_s=0.005)
            seen_after_s = time.monotonic() - killed
            print(f"redis_connected false {seen_after_s * 1000:.0f} ms after the kill")
            assert seen_after_s < LOSS_SEEN_WITHIN_S, daemon.text()
        finally:
            assert daemon.stop() == 0, daemon.text()
    finally:
        server.kill()
        server.wait(10)
