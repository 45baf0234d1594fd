"""Publish each capture's outcome: PUBLISH on `<channel>:results` and XADD to a capped stream.

Pub/sub reaches whoever listens now (`pushcap trigger` waiting for its answer); the stream keeps
the last N outcomes of the whole fleet for collectors that were not listening. Publishing must
never take the capture path down: a Redis outage costs the result (logged), nothing else.

With `[redis] listen = false` (requests come from SQS only) there is no Redis to publish on:
each result is then logged as one line (`event=trigger_result`), which is where pcapdaemon's
outcomes went for every request (it published none).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from pushcap import defaults
from pushcap.config.pcapdaemon import RedisSettings

log = logging.getLogger("pushcap.trigger.results")


def result_record(node: str, request_id: str | None, status: str, **fields) -> dict:
    """A result in its published shape; None fields are left out so consumers see what applies.

    status: "ok" (delivered), "empty" (no packet matched: nothing uploaded), "error" (capture or
    delivery failed), "rejected" (the message was invalid: `field` names the culprit).
    """
    record = {"node": node, "requestid": request_id, "status": status,
              "time": round(time.time(), 3)}
    record.update({k: v for k, v in fields.items() if v is not None})
    return record


class ResultPublisher:
    """One Redis client shared by the worker threads (redis-py's pool is thread-safe)."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None

    def _redis(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                retry = Retry(ExponentialBackoff(cap=2.0, base=0.1),
                              defaults.RESULTS_PUBLISH_RETRIES)
                self._client = redis.Redis(
                    **self.settings.client_kwargs(), socket_timeout=5.0, retry=retry,
                    retry_on_error=[redis.ConnectionError, redis.TimeoutError])
            return self._client

    def publish(self, record: dict) -> bool:
        """True when the result reached Redis (both the channel and the stream), or, without a
        Redis (`listen = false`), the log."""
        payload = json.dumps(record, separators=(",", ":"), sort_keys=True)
        if not self.settings.listen:
            log.info("event=trigger_result result=%s", payload)
            return True
        try:
            client = self._redis()
            client.publish(self.settings.results_channel, payload)
            client.xadd(self.settings.results_stream, {"result": payload},
                        maxlen=self.settings.stream_max_len, approximate=True)
            return True
        except redis.RedisError as exc:
            log.error("event=result_publish_failed redis=%s requestid=%s error=%r",
                      self.settings.describe(), record.get("requestid"), str(exc))
            return False

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
