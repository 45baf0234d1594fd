"""A private `redis-server` for a node with no Redis configured, so triggers work out of the box.

Started only when the TOML has no [redis] and no -redisnode flag was given, and nothing answers
on the default address already. It listens on loopback only and persists nothing: it is a local
mailbox for `pushcap trigger`, not a database.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time

from pushcap import defaults
from pushcap.config.pcapdaemon import RedisSettings

log = logging.getLogger("pushcap.trigger.localredis")


def answers(host: str, port: int, timeout_s: float = 0.3) -> bool:
    """True when something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class LocalRedis:
    """A child redis-server process on 127.0.0.1:port; stop() ends it."""

    def __init__(self, port: int, binary: str = "redis-server") -> None:
        self.port = port
        self.binary = binary
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = defaults.LOCAL_REDIS_START_TIMEOUT_S) -> bool:
        path = shutil.which(self.binary)
        if path is None:
            log.warning("event=local_redis_missing binary=%s hint=install redis-server",
                        self.binary)
            return False
        argv = [path, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no",
                "--loglevel", "warning"]
        setpriv = shutil.which("setpriv")
        if setpriv:
            # Dies with the daemon even when the daemon cannot stop it (SIGKILL, OOM killer):
            # an orphan would hold the default port and outlive every later configuration.
            # The signal follows the starting thread, which is the main one (Daemon.run).
            argv = [setpriv, "--pdeathsig", "TERM", *argv]
        self.proc = subprocess.Popen(
            argv, start_new_session=True,  # a Ctrl-C to the daemon's terminal is the daemon's
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log.warning("event=local_redis_exited code=%s", self.proc.returncode)
                return False
            if answers("127.0.0.1", self.port, 0.1):
                log.info("event=local_redis_started port=%d pid=%d", self.port, self.proc.pid)
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        log.info("event=local_redis_stopped port=%d", self.port)


def maybe_start_local_redis(settings: RedisSettings) -> LocalRedis | None:
    """Start a private server when Redis is unconfigured and the default address is silent."""
    if settings.configured or not settings.listen or settings.host not in ("127.0.0.1",
                                                                           "localhost"):
        return None
    if answers("127.0.0.1", settings.port):
        return None
    server = LocalRedis(settings.port)
    return server if server.start() else None


class LocalRedisService:
    """The daemon-service face of maybe_start_local_redis: decides and starts at start()."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.server: LocalRedis | None = None

    def start(self) -> None:
        self.server = maybe_start_local_redis(self.settings)

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.server is not None:
            self.server.stop(timeout_s)
