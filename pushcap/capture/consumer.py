"""What every reader of a ring is: the consumer contract, and how a consumer counts failures.

The capture layer defines the contract its readers implement (a port; it knows no concrete
consumer): push series, flow exporters and whatever comes next (an archive) are driven through
exactly these calls by the supervisor, which never probes a consumer for attributes, sets any
on it or calls its private methods. A step that fails is counted against that consumer (a
failure never stops the other targets): `errors`, `last_error`, kept for `pushcap status` and
/metrics. A series counts from two threads (the push thread's writes, the finisher's
publishing), so the count is taken under a lock. The last error stays in the status after its
cause has passed (it is the history an operator looks for), always with when it last happened
(`last_error_at`, `last_error_age_s`): an error that stopped reads as one that stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from pushcap import defaults

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import Protocol

    from pushcap.capture.batch import Batch
    from pushcap.config.model import TargetConfig
else:
    Protocol = object  # a structural type for type checkers; nothing checks it at run time


class Consumer(Protocol):
    """A target's reader of one interface's ring.

    Lifecycle: `start(at_launch)` once (at launch a crash's leftovers are repaired), then
    `consume(batch)` for every batch and `tick(now_ns)` after each read, on the interface's
    push thread; the thread waits for a batch no longer than until `next_tick_ns()` (the push
    clock's time when a tick can next act, None: not before another batch); `end_file()` hands
    an open file to delivery without waiting, `finish()` also waits for delivery, `close()`
    ends the consumer (its delivery too, within a bound).

    Reload handover (the supervisor owns its state): the predecessor's `retire()` says whether
    it keeps writing until its file's natural end; from then on `retired_at` (None until then)
    is where in a batch the successor takes over. The successor's `take_over(predecessor)` runs
    at the reload (a flow exporter carries the open interval on), `continue_after(predecessor)`
    at the boundary (a series opens no window before it). `unretire()` cancels a retirement a
    later reload undid. `hold_delivery()`/`open_delivery()` keep a successor from delivering
    into `output()` (where its files go; None when it writes none) before its predecessor has.
    """

    target: TargetConfig
    interface: str
    errors: int
    last_error: str

    def start(self, at_launch: bool = True) -> None: ...
    def consume(self, batch: Batch) -> None: ...
    def tick(self, now_ns: int) -> None: ...
    def next_tick_ns(self) -> int | None: ...
    def end_file(self) -> None: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...
    def status(self) -> dict: ...
    def output(self) -> str | None: ...
    def retire(self) -> bool: ...
    def unretire(self) -> None: ...
    @property
    def retired_at(self) -> int | None: ...
    def take_over(self, predecessor: Consumer) -> None: ...
    def continue_after(self, predecessor: Consumer) -> None: ...
    def hold_delivery(self) -> None: ...
    def open_delivery(self) -> None: ...
    def note_error(self, exc: BaseException) -> int: ...
    def failing(self, window_s: float = defaults.FAILING_WINDOW_S) -> bool: ...
    def error_figures(self) -> dict: ...


class CountsFailures:
    """Mixin: `errors`, `last_error`, `note_error()`, `failing()` and `error_figures()`."""

    errors: int = 0
    last_error: str = ""
    last_error_monotonic_s: float | None = None
    last_error_ns: int = 0  # wall clock, for the status to say when (0: never)

    def note_error(self, exc: BaseException) -> int:
        """Count a failure; return the count so far."""
        lock = self.__dict__.setdefault("_failures_lock", threading.Lock())  # atomic
        with lock:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_error_monotonic_s = time.monotonic()
            self.last_error_ns = time.time_ns()
            return self.errors

    def failing(self, window_s: float = defaults.FAILING_WINDOW_S) -> bool:
        """True while the last failure is recent. A write or finish failure recurs with every
        batch or file while its cause lasts (a full disk, a gone NFS share), so a quiet window
        means the cause has passed; `pushcap status` exits 1 while any target is failing."""
        at = self.last_error_monotonic_s
        return at is not None and time.monotonic() - at < window_s

    def error_figures(self) -> dict:
        """`last_error` with when it last happened (`last_error_at`, UTC; `last_error_age_s`,
        on the monotonic clock); {} before any error."""
        at = self.last_error_monotonic_s
        if at is None:
            return {}
        return {"last_error": self.last_error, "last_error_at": utc_text(self.last_error_ns),
                "last_error_age_s": round(time.monotonic() - at, 1)}


def utc_text(ns: int) -> str:
    """An epoch time as ISO 8601 UTC to the second (`2026-12-06T12:34:56Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))


def newest_error(figures: Mapping, consumer: Consumer) -> dict:
    """The error figures a status entry shows: the consumer's own (a write, a finish), unless
    its status `figures` already carry a newer one (an rclone target's uploads, with their own
    `last_error_age_s`). {} when the figures' error stands."""
    own = consumer.error_figures()
    theirs = figures.get("last_error_age_s")
    if not own or (figures.get("last_error") and isinstance(theirs, int | float)
                   and theirs <= own["last_error_age_s"]):
        return {}
    return own
