"""The Redis pub/sub listener: one thread, subscribed to the request channel, that never dies.

Redis going away (restart, network, failover) is normal: the thread logs it, waits with an
exponential backoff and subscribes again, and capture and push carry on untouched meanwhile.
`connected` turns false as soon as the connection drops: the client's own retries (redis-py
retries a dropped connection 3 times with backoff before raising, which kept `redis_connected`
true for seconds after Redis died) are off, since this loop is the one that retries. Each
message is handed to `on_message` with the time it arrived, which is "the moment of the request"
for the capture; the handler must return quickly (it validates and queues, it does not capture).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pushcap import defaults
from pushcap.config.pcapdaemon import RedisSettings

log = logging.getLogger("pushcap.trigger.listener")


MessageHandler = Callable[[bytes, int], None]


class Listener:
    """Subscribes to `settings.channel` and calls `on_message(data, received_ns)` per message."""

    def __init__(self, settings: RedisSettings, on_message: MessageHandler) -> None:
        self.settings = settings
        self.on_message = on_message
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()  # set while subscribed (tests and status wait on it)
        self.reconnects = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trigger-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        backoff_s = defaults.REDIS_BACKOFF_FIRST_S
        while not self._stop.is_set():
            client = pubsub = None
            try:
                client = redis.Redis(**self.settings.client_kwargs(), socket_timeout=None,
                                     health_check_interval=defaults.REDIS_HEALTH_CHECK_S,
                                     retry=Retry(NoBackoff(), 0))
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.settings.channel)
                log.info("event=trigger_subscribed redis=%s", self.settings.describe())
                self.connected.set()
                backoff_s = defaults.REDIS_BACKOFF_FIRST_S
                self._receive(pubsub)
            except (redis.RedisError, OSError) as exc:  # outage, auth or ACL refusal alike
                self._lost(exc, backoff_s)
            finally:
                self.connected.clear()
                for resource in (pubsub, client):
                    try:
                        if resource is not None:
                            resource.close()
                    except (redis.RedisError, OSError):
                        pass
            if self._stop.wait(backoff_s):
                break
            backoff_s = min(backoff_s * 2, defaults.REDIS_BACKOFF_MAX_S)

    def _lost(self, exc: Exception, backoff_s: float) -> None:
        if self.connected.is_set() or self.reconnects == 0:
            level = logging.WARNING
        else:
            level = logging.DEBUG  # still down: one warning per outage is enough
        self.reconnects += 1
        log.log(level, "event=trigger_redis_error redis=%s error=%r retry_in_s=%g",
                self.settings.describe(), f"{type(exc).__name__}: {exc}", backoff_s)

    def _receive(self, pubsub) -> None:
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=defaults.LISTENER_POLL_S)
            if message is None or message.get("type") != "message":
                continue
            received_ns = time.time_ns()
            try:
                self.on_message(message["data"], received_ns)
            except Exception:  # noqa: BLE001 - a handler bug must not end the subscription
                log.exception("event=trigger_handler_failed")
