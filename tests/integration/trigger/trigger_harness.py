"""Helpers for the trigger tests: a restartable redis-server, a TriggerService harness, and the
UDP traffic and oracles the live tests share (what was sent, what a pcap or the ring holds)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import redis
from oracle import read_pcap
from waiting import wait_until

from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import CloudSharkSettings, RedisSettings, TriggerSettings
from pushcap.trigger.service import TriggerService

NODE = "trigger-test-node"
TOKEN = "test-token-123"
UDP_HEADERS = 14 + 20 + 8  # lo is Ethernet-framed: Ethernet + IPv4 + UDP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send(port: int, tag: str, count: int, gap_s: float = 0.0, size: int = 0) -> list[bytes]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payloads = [f"{tag}-{i:05d}-".encode() + b"x" * (size or i % 300) for i in range(count)]
    for payload in payloads:
        sender.sendto(payload, ("127.0.0.1", port))
        if gap_s:
            time.sleep(gap_s)
    sender.close()
    return payloads


def payloads_of(path: str | Path) -> list[bytes]:
    return [data[UDP_HEADERS:] for _, _, _, data in read_pcap(path).packets]


def base(port: int, **fields) -> dict:
    message = {"node": NODE, "interface": ["lo"], "bpf": f"udp and dst port {port}",
               "timeout": 1}
    message.update(fields)
    return message


def ring_payloads(ring, port: int, start_ns: int, end_ns: int) -> tuple[list[bytes], int]:
    """Payloads of UDP datagrams to `port` stamped in [start_ns, end_ns), and how many to that
    port the ring holds stamped at or after end_ns."""
    inside: list[bytes] = []
    after = 0
    for ts, data in ring_datagrams(ring, port):
        if start_ns <= ts < end_ns:
            inside.append(data)
        elif ts >= end_ns:
            after += 1
    return inside, after


def ring_datagrams(ring, port: int) -> list[tuple[int, bytes]]:
    """(timestamp, payload) of every UDP datagram to `port` the ring holds, oldest first."""
    found: list[tuple[int, bytes]] = []
    for batch in ring.snapshot():
        records = np.frombuffer(batch.records, dtype=np.uint8)
        for i in range(len(batch)):
            data = records[batch.offsets[i] + 16: batch.offsets[i] + 16 + batch.caplen[i]]
            if len(data) < UDP_HEADERS or int.from_bytes(data[36:38].tobytes(), "big") != port:
                continue
            found.append((int(batch.ts_ns[i]), data[UDP_HEADERS:].tobytes()))
    return found


class RedisServer:
    """A throw-away redis-server on a free loopback port; restartable on the same port."""

    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.folder = folder
        self.password = password
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        args = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port",
                str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.folder), "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, password=self.password, socket_timeout=1).ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)


class Harness:
    """A TriggerService on its own channel, plus helpers to publish and await results."""

    def __init__(self, server: RedisServer, engine, tmp_path: Path, rings=None,
                 interfaces=None, cloudshark=None, **overrides) -> None:
        self.channel = f"capture-{uuid.uuid4().hex[:8]}"
        self.server = server
        cs = CloudSharkSettings(host="127.0.0.1", scheme="http", port=cloudshark.port,
                                token=TOKEN, upload=True, retry_backoff_s=0.05,
                                timeout_s=5) if cloudshark else CloudSharkSettings()
        values = dict(node_name=NODE, redis=RedisSettings(port=server.port, channel=self.channel,
                                                          password=server.password,
                                                          configured=True),
                      cloudshark=cs, fallback_dir=tmp_path / "fallback", local_dir=tmp_path,
                      default_timeout_s=2.0)
        values.update(overrides)
        self.settings = TriggerSettings(**values)
        self.rings = rings if rings is not None else engine.rings
        self.interfaces = interfaces or (InterfaceConfig("lo", ("local", "both")),)
        # As `pushcap run` must: the engine's poll timeout bounds how late packets reach a ring.
        self.service = TriggerService(self.settings, self.rings, self.interfaces,
                                      poll_timeout_ms=engine.config.ring.poll_timeout_ms)
        self.client = server.client()
        self.results = self.client.pubsub(ignore_subscribe_messages=True)
        self.results.subscribe(self.settings.redis.results_channel)

    def start(self) -> Harness:
        self.service.start()
        assert self.service.listener.connected.wait(10), "listener did not subscribe"
        return self

    def publish(self, message: dict | str) -> float:
        """Publish `message` and return once the service has received it: the moment of the
        request (where a capture's window starts) is then fixed, so whatever the test sends
        next is "after the request". Returns the time it was published."""
        data = message if isinstance(message, str) else json.dumps(message)
        handled = self.service.stats()["requests"]
        sent = time.time()
        receivers = self.client.publish(self.channel, data)
        assert receivers >= 1
        wait_until(lambda: self.service.stats()["requests"] > handled, 15,
                   f"the service to receive {data[:80]!r}")
        return sent

    def wait_results(self, count: int = 1, timeout_s: float = 15.0) -> list[dict]:
        found: list[dict] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            msg = self.results.get_message(timeout=0.2)
            if msg and msg["type"] == "message":
                found.append(json.loads(msg["data"]))
        return found

    def stop(self) -> None:
        self.service.stop(10)
        self.results.close()
        self.client.close()
