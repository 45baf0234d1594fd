"""Real services for the trigger tests: redis-server, the CloudShark receiver, live capture on lo.

Each fixture starts the real thing, waits until it answers and stops it afterwards. One LiveEngine
on `lo` serves the whole module (starting libpcap is the slow part); each test gets its own Redis
channel and TriggerService so tests cannot see each other's requests.
"""

from __future__ import annotations

import time
import tomllib

import pytest
from trigger_harness import NODE, TOKEN, Harness, RedisServer

from pushcap.config.toml import parse_daemon_config
from pushcap.supervisor.engine import LiveEngine


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def cloudshark(tmp_path):
    from cloudshark_receiver import Receiver

    receiver = Receiver(tmp_path / "cloudshark", TOKEN).start()
    yield receiver
    receiver.stop()


LO_CONFIG = f"""
[general]
node = "{NODE}"
[[interface]]
name = "lo"
alias = ["local", "both"]
[ring]
max_seconds = 30
poll_timeout_ms = 20
"""


@pytest.fixture(scope="module")
def engine():
    config = parse_daemon_config(tomllib.loads(LO_CONFIG), "test.toml")
    live = LiveEngine(config, targets=())
    live.start()
    time.sleep(0.3)
    yield live
    live.stop(10)


@pytest.fixture
def harness(redis_server, engine, tmp_path):
    made: list[Harness] = []

    def make(**kwargs) -> Harness:
        h = Harness(redis_server, engine, tmp_path, **kwargs).start()
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
