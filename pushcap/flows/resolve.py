"""Reverse DNS for flow records, off the packet path.

`name(ip)` never waits: it answers from the cache, or returns the IP itself and queues a lookup
for a bounded pool of worker threads, so the next interval's records carry the name. This is
the tcpdump-aggregator's behaviour (a background `host` per address, IP until resolved) without
its unbounded thread-per-address and cache.

Bounds: at most `workers` lookups run at once and at most `max_pending` wait; more requests are
skipped (asked again at the next interval). The cache holds at most `max_entries` addresses, the
least recently used going first; names live `ttl_s`, failures `negative_ttl_s`.
A lookup that takes longer than `timeout_s` counts as failed and its answer, if it ever comes,
is ignored (a blocking resolver call cannot be cancelled from Python; the bounded pool is what
keeps stuck lookups from piling up threads).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pushcap import defaults

log = logging.getLogger("pushcap.flows")


Lookup = Callable[[str], str | None]


def system_lookup(ip: str) -> str | None:
    """The host's resolver (PTR through nsswitch, as `host`/`getent` would); None if no name."""
    try:
        name = socket.gethostbyaddr(ip)[0]
    except (OSError, UnicodeError):
        return None
    return name.rstrip(".") or None


@dataclass
class ResolverStats:
    lookups: int = 0
    resolved: int = 0
    failed: int = 0
    timed_out: int = 0
    skipped: int = 0  # the pending queue was full


class Resolver:
    """Cached, bounded, non-blocking reverse DNS. Thread-safe; may be shared by targets."""

    def __init__(self, enabled: bool = True, lookup: Lookup = system_lookup,
                 workers: int = defaults.DNS_WORKER_THREADS,
                 timeout_s: float = defaults.DNS_TIMEOUT_S, ttl_s: float = defaults.DNS_TTL_S,
                 negative_ttl_s: float = defaults.DNS_NEGATIVE_TTL_S,
                 max_entries: int = defaults.DNS_MAX_ENTRIES,
                 max_pending: int = defaults.DNS_MAX_PENDING_LOOKUPS) -> None:
        self.enabled = enabled
        self._lookup = lookup
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self.max_pending = max_pending
        self.stats = ResolverStats()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()  # ip -> (name, expiry)
        self._pending: dict[str, float] = {}  # ip -> deadline (monotonic)
        # Daemon threads rather than a ThreadPoolExecutor: its workers are joined at exit, so
        # one hung lookup would hold up the shutdown of the whole process.
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._workers = workers if enabled else 0
        self._threads: list[threading.Thread] = []
        self._closed = False

    def name(self, ip: str) -> str:
        """The cached name of `ip`, or `ip` itself (and a lookup is queued if none is fresh)."""
        if not self.enabled:
            return ip
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(ip)
            if entry is not None and entry[1] > now:
                self._cache.move_to_end(ip)
                return entry[0]
            deadline = self._pending.get(ip)
            if deadline is not None:
                if now < deadline:
                    return ip
                del self._pending[ip]  # timed out: give up on it, remember the failure
                self.stats.timed_out += 1
                self._store(ip, ip, now + self.negative_ttl_s)
                return ip
            self._expire_pending(now)
            if len(self._pending) >= self.max_pending:
                self.stats.skipped += 1
                return ip
            if self._closed:
                return ip
            self._pending[ip] = now + self.timeout_s
            self.stats.lookups += 1
            if len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name="flows-dns", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._queue.put(ip)
        return ip

    def _work(self) -> None:
        while (ip := self._queue.get()) is not None:
            with self._lock:
                stale = ip not in self._pending  # timed out while queued: not worth asking
            if not stale:
                self._run(ip)

    def _expire_pending(self, now: float) -> None:
        """Lookups past their deadline stop counting against max_pending (lock held).

        `_pending` is in deadline order (every lookup gets the same timeout, from a monotonic
        clock, and a dict keeps insertion order), so only the expired ones at its front are
        looked at: with the queue full, a scan of all of it for every address of an interval's
        records cost ~30 µs an address, seconds of CPU per interval of a busy link."""
        if len(self._pending) < self.max_pending:
            return
        expired = []
        for ip, deadline in self._pending.items():
            if deadline > now:
                break
            expired.append(ip)
        for ip in expired:
            del self._pending[ip]
            self.stats.timed_out += 1
            self._store(ip, ip, now + self.negative_ttl_s)

    def _run(self, ip: str) -> None:
        try:
            name = self._lookup(ip)
        except Exception as exc:  # noqa: BLE001 - a resolver error must not kill the worker
            log.debug("event=dns_error ip=%s error=%r", ip, str(exc))
            name = None
        now = time.monotonic()
        with self._lock:
            deadline = self._pending.pop(ip, None)
            if deadline is None or now > deadline:
                if deadline is not None:
                    self.stats.timed_out += 1
                    self._store(ip, ip, now + self.negative_ttl_s)
                return
            if name:
                self.stats.resolved += 1
                self._store(ip, name, now + self.ttl_s)
            else:
                self.stats.failed += 1
                self._store(ip, ip, now + self.negative_ttl_s)

    def _store(self, ip: str, name: str, expiry: float) -> None:
        self._cache[ip] = (name, expiry)
        self._cache.move_to_end(ip)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def cached(self) -> int:
        with self._lock:
            return len(self._cache)

    def close(self) -> None:
        """Stop taking lookups; running ones finish in the background (they cannot be cut)."""
        with self._lock:
            self._closed = True
            threads = len(self._threads)
        for _ in range(threads):
            self._queue.put(None)


NO_DNS = Resolver(enabled=False)
_default: Resolver | None = None
_default_lock = threading.Lock()


def default_resolver() -> Resolver:
    """One process-wide resolver, so every flows target shares one cache and one pool."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Resolver()
        return _default
