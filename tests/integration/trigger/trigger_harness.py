"""Helpers for the trigger tests: a restartable redis-server and a TriggerService harness."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import redis

from pushcap.config.model import InterfaceConfig
from pushcap.config.pcapdaemon import CloudSharkSettings, RedisSettings, TriggerSettings
from pushcap.trigger.service import TriggerService

NODE = "trigger-test-node"
TOKEN = "test-token-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        self.service = TriggerService(self.settings, self.rings, self.interfaces)
        self.client = server.client()
        self.results = self.client.pubsub(ignore_subscribe_messages=True)
        self.results.subscribe(self.settings.redis.results_channel)

    def start(self) -> Harness:
        self.service.start()
        assert self.service.listener.connected.wait(10), "listener did not subscribe"
        return self

    def publish(self, message: dict | str) -> float:
        data = message if isinstance(message, str) else json.dumps(message)
        sent = time.time()
        receivers = self.client.publish(self.channel, data)
        assert receivers >= 1
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
