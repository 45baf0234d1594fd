"""Real services for the trigger tests: redis-server, the CloudShark receiver, live capture on lo.

Each fixture starts the real thing, waits until it answers and stops it afterwards. One LiveEngine
on `lo` serves the whole module (starting libpcap is the slow part); each test gets its own Redis
channel and TriggerService so tests cannot see each other's requests.
"""

from __future__ import annotations

import socket
import tomllib

import pytest
from trigger_harness import NODE, TOKEN, Harness, RedisServer, ring_datagrams, send
from waiting import wait_until

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
    # Capturing once a datagram sent now shows up in the ring. The probe port stays bound for
    # the module, so no test's udp_port can be the same and see the probes.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

        def probe_in_ring() -> bool:
            send(port, "probe", 1)
            return bool(ring_datagrams(live.rings["lo"], port))

        wait_until(probe_in_ring, 20, "a probe datagram on lo to reach the ring")
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
