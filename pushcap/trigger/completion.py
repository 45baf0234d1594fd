"""Know when every result a request owes has been published (the SQS listener's delete).

A request yields one result per captured interface, each published from its own worker thread
(or at once, when it is refused for being busy). A queue message must stay on its queue until
all of them are out, so the listener that handed the message in gives a callback, and the
service reports each published result here; the callback runs once, after the last.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pushcap.trigger.message import CaptureRequest

log = logging.getLogger("pushcap.trigger")


class Completions:
    """Per request: how many results are still to come, and whom to tell after the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # keyed by id(); the request is held too, so that id cannot be reused meanwhile
        self._pending: dict[int, tuple[CaptureRequest, list[int], Callable[[], None]]] = {}

    def expect(self, request: CaptureRequest, results: int, done: Callable[[], None]) -> None:
        with self._lock:
            self._pending[id(request)] = (request, [results], done)

    def published(self, request: CaptureRequest) -> None:
        """One of `request`'s results is out; after its last, call its callback."""
        with self._lock:
            entry = self._pending.get(id(request))
            if entry is None or entry[0] is not request:
                return
            entry[1][0] -= 1
            if entry[1][0] > 0:
                return
            del self._pending[id(request)]
        finish(entry[2])


    def settle(self, request: CaptureRequest) -> None:
        """`request` owes no further result (refused after all): call its callback now."""
        with self._lock:
            entry = self._pending.pop(id(request), None)
        if entry is not None and entry[0] is request:
            finish(entry[2])


def finish(done: Callable[[], None] | None) -> None:
    """Run a completion callback; its failure is logged, never the caller's."""
    if done is None:
        return
    try:
        done()
    except Exception:  # noqa: BLE001 - a listener's bookkeeping must not fail a capture
        log.exception("event=trigger_completion_failed")
