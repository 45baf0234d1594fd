"""The SQS listener: pcapdaemon's `[sqs]`, long-polling a queue for the same requests as Redis.

One thread receives up to `chunksize` messages at a time, waiting up to `waitseconds` for them
(long polling), and hands each body to the trigger service exactly as a Redis message is handed
in. Unlike pcapdaemon, which deleted a message as soon as it had started its captures, a message
is deleted only once every result it owes has been published: until then it stays invisible to
other consumers (its visibility timeout is extended while its capture runs), and a node that
dies meanwhile leaves it to come back on the queue. A message that is refused still gets its
`rejected` result and is deleted (it would be refused again); one addressed to another node is
left alone, to reappear once its visibility timeout lapses (for that node, on a shared queue).
At stop, the messages whose captures did not finish are made visible again at once.

The queue going away (network, credentials) is normal: the thread logs it once per outage, waits
and polls again. boto3 is imported only when an `[sqs]` listener starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pushcap import defaults
from pushcap.config.listener_settings import SqsSettings

log = logging.getLogger("pushcap.trigger.sqs")

# handle_message(data, received_ns, on_results) -> whether on_results will be called
SqsHandler = Callable[[bytes, int, Callable[[], None]], bool]


class SqsListener:
    """Long-polls `settings.url` and calls `on_message(body, received_ns, done)` per message."""

    def __init__(self, settings: SqsSettings, on_message: SqsHandler) -> None:
        self.settings = settings
        self.on_message = on_message
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = None
        self._lock = threading.Lock()
        self._in_flight: dict[str, float] = {}  # receipt handle -> monotonic time last extended
        self.connected = threading.Event()  # set while receives succeed
        self.errors = 0
        self.received = 0
        self.deleted = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trigger-sqs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop polling. A long poll in progress (up to `waitseconds`) is not waited for: what
        it still brings is put back on the queue at once, unhandled (`_run`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(min(timeout_s, defaults.SQS_STOP_JOIN_S))
        return True

    def stats(self) -> dict:
        return {"sqs_connected": self.connected.is_set(), "sqs_errors": self.errors,
                "sqs_received": self.received, "sqs_deleted": self.deleted}

    def _make_client(self):
        import boto3
        from botocore.config import Config

        logging.getLogger("botocore").setLevel(logging.WARNING)  # its debug lines carry headers
        settings = self.settings
        keys = ({"aws_access_key_id": settings.access_id,
                 "aws_secret_access_key": settings.access_key} if settings.access_id else {})
        return boto3.session.Session().client(
            "sqs", region_name=settings.region, endpoint_url=settings.endpoint_url or None,
            config=Config(connect_timeout=5, read_timeout=defaults.SQS_CALL_TIMEOUT_S,
                          retries={"max_attempts": 2}), **keys)

    def _run(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        log.info("event=trigger_sqs_start queue=%s wait_s=%d chunk=%d",
                 self.settings.describe(), self.settings.wait_s, self.settings.chunk)
        while not self._stop.is_set():
            try:
                if self._client is None:
                    self._client = self._make_client()
                messages = self._receive()
            except (BotoCoreError, ClientError, ValueError) as exc:
                self._lost(exc)
                if self._stop.wait(defaults.SQS_ERROR_BACKOFF_S):
                    break
                continue
            if self._stop.is_set():  # arrived while stopping: not ours to start any more
                for message in messages:
                    self._set_visibility(message.get("ReceiptHandle", ""), 0)
                break
            if not self.connected.is_set():
                log.info("event=trigger_sqs_connected queue=%s", self.settings.describe())
                self.connected.set()
            for message in messages:
                self._handle(message)
            self._extend_in_flight()
            if not messages and not self.settings.wait_s:  # short polling: do not spin
                self._stop.wait(defaults.LISTENER_POLL_S)

    def _receive(self) -> list[dict]:
        answer = self._client.receive_message(
            QueueUrl=self.settings.url, MaxNumberOfMessages=self.settings.chunk,
            WaitTimeSeconds=self.settings.wait_s, VisibilityTimeout=defaults.SQS_VISIBILITY_S)
        return answer.get("Messages", [])

    def _lost(self, exc: Exception) -> None:
        level = logging.WARNING if self.connected.is_set() or self.errors == 0 else logging.DEBUG
        self.errors += 1
        self.connected.clear()
        log.log(level, "event=trigger_sqs_error queue=%s error=%r retry_in_s=%g",
                self.settings.describe(), f"{type(exc).__name__}: {exc}"[:400],
                defaults.SQS_ERROR_BACKOFF_S)

    def _handle(self, message: dict) -> None:
        receipt = message.get("ReceiptHandle", "")
        body = message.get("Body", "")
        received_ns = time.time_ns()
        self.received += 1
        with self._lock:
            self._in_flight[receipt] = time.monotonic()
        try:
            owed = self.on_message(body.encode("utf-8", "surrogatepass"), received_ns,
                                   lambda: self._delete(receipt))
        except Exception:  # noqa: BLE001 - a handler bug must not end the listener
            log.exception("event=trigger_handler_failed listener=sqs")
            owed = False
        if not owed:  # another node's: its visibility timeout lapses and it comes back
            with self._lock:
                self._in_flight.pop(receipt, None)
            log.debug("event=trigger_sqs_left message_id=%s", message.get("MessageId"))

    def _delete(self, receipt: str) -> None:
        """Every result of the message is out: take it off the queue (any thread)."""
        from botocore.exceptions import BotoCoreError, ClientError

        with self._lock:
            self._in_flight.pop(receipt, None)
        try:
            self._client.delete_message(QueueUrl=self.settings.url, ReceiptHandle=receipt)
            self.deleted += 1
        except (BotoCoreError, ClientError) as exc:
            log.warning("event=trigger_sqs_delete_failed queue=%s error=%r",
                        self.settings.describe(), f"{type(exc).__name__}: {exc}"[:400])

    def _extend_in_flight(self) -> None:
        """Keep running captures' messages invisible: extend each once half its time passed."""
        now = time.monotonic()
        with self._lock:
            due = [r for r, at in self._in_flight.items()
                   if now - at >= defaults.SQS_VISIBILITY_S / 2]
        for receipt in due:
            self._set_visibility(receipt, defaults.SQS_VISIBILITY_S)
            with self._lock:
                if receipt in self._in_flight:
                    self._in_flight[receipt] = now

    def release_in_flight(self) -> None:
        """After stop, once the captures that could finish did: the messages still unfinished
        go back on the queue now, not after their visibility timeout."""
        with self._lock:
            pending = list(self._in_flight)
            self._in_flight.clear()
        for receipt in pending:
            self._set_visibility(receipt, 0)

    def _set_visibility(self, receipt: str, seconds: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.change_message_visibility(QueueUrl=self.settings.url,
                                                   ReceiptHandle=receipt,
                                                   VisibilityTimeout=seconds)
        except (BotoCoreError, ClientError) as exc:
            log.warning("event=trigger_sqs_visibility_failed queue=%s error=%r",
                        self.settings.describe(), f"{type(exc).__name__}: {exc}"[:400])
