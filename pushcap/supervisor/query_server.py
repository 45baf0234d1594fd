"""The daemon's side of `pushcap query`: `POST /query` on the status endpoint (Stenographer's way).

The daemon keeps the parsed indexes of its indexed File targets' files in memory
(archive/index_cache.py, bounded by defaults.QUERY_INDEX_CACHE_BYTES): a thread loads them as
files are published and drops those retention deleted, and a query loads what it finds
missing. A query is then the standalone one (archive/query.py, the same answer) with its
indexes from memory, its records written from where they lie (mapped, the pages kept mapped
between queries) straight to the socket as frames (query_wire.py).

What a request may name is bounded (query_request.py: a target of the daemon's own Lua file,
or a folder inside one of its File targets' folders); anything else is declined, and the client
reads the archive itself, with its user's own permissions. At most QUERY_CONCURRENT queries run
at once; another is declined too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from pushcap import defaults
from pushcap.supervisor import query_wire as wire
from pushcap.supervisor.peer_uid import may_query
from pushcap.supervisor.query_request import Refused, TargetFiles, read_request

log = logging.getLogger("pushcap.supervisor.query")

QUERY_CONCURRENT = 2


class QueryService:
    """Queries of the engine's targets' archives; a daemon service (start, stop, stats)."""

    def __init__(self, engine, lua_path: Path | None,
                 max_bytes: int = defaults.QUERY_INDEX_CACHE_BYTES) -> None:
        self._files = TargetFiles(engine, lua_path)
        self._max_bytes = max_bytes
        self._cache = None  # made at the first indexed target: numpy and pyarrow come with it
        self._cache_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(QUERY_CONCURRENT)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.served = 0
        self.declined = 0

    # --- the service ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._keep_warm, name="query-index-cache",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def stats(self) -> dict:
        figures = {"served": self.served, "declined": self.declined}
        if self._cache is not None:
            figures.update({f"index_cache_{k}": v for k, v in self._cache.stats().items()})
        return figures

    def cache(self):
        with self._cache_lock:
            if self._cache is None:
                from pushcap.archive.index_cache import IndexCache

                self._cache = IndexCache(self._max_bytes)
            return self._cache

    def _keep_warm(self) -> None:
        """Drop the indexes of deleted files every QUERY_CACHE_CHECK_INTERVAL_S; load those of
        the indexed targets' files (newest first, while they fit) at start and every
        RETENTION_CHECK_INTERVAL_S (a listing and two `stat`s a file)."""
        next_warm = 0.0
        while not self._stop.is_set():
            try:
                if self._cache is not None:
                    self._cache.sweep()
                if time.monotonic() >= next_warm:
                    next_warm = time.monotonic() + defaults.RETENTION_CHECK_INTERVAL_S
                    self._warm_once()
            except Exception as exc:  # noqa: BLE001 - the cache is an aid; queries still work
                log.warning("event=query_cache_error error=%r", str(exc))
            self._stop.wait(defaults.QUERY_CACHE_CHECK_INTERVAL_S)

    def _warm_once(self) -> None:
        files = self._files.indexed()
        if not files:
            return
        cache = self.cache()
        dated = []
        for path in files:
            try:
                dated.append((path.stat().st_mtime_ns, path))
            except FileNotFoundError:
                continue
        for _, path in sorted(dated, reverse=True):
            if self._stop.is_set() or not cache.warm(path):
                break

    # --- a request ----------------------------------------------------------------------------
    def handle(self, handler) -> None:
        """Answer `POST /query` on the HTTP server's thread for this connection."""
        handler.send_response(200)
        handler.send_header("Content-Type", wire.CONTENT_TYPE)
        handler.end_headers()
        out = handler.wfile
        allowed, why = may_query(handler.client_address, handler.connection.getsockname())
        if not allowed:
            self.declined += 1
            log.info("event=query_declined client=%s reason=\"%s\"", handler.client_address[0],
                     why)
            out.write(wire.frame(wire.DECLINED, why.encode()))
            return
        if not self._slots.acquire(blocking=False):
            self.declined += 1
            out.write(wire.frame(wire.DECLINED, b"the daemon is busy with other queries"))
            return
        try:
            self._answer(handler, out)
        except (BrokenPipeError, ConnectionResetError):
            log.info("event=query_abandoned client=%s", handler.client_address[0])
        finally:
            self._slots.release()

    def _answer(self, handler, out) -> None:
        try:
            request = read_request(handler)
            files = self._files.named(request)
        except Refused as exc:
            self.declined += 1
            out.write(wire.frame(wire.DECLINED, str(exc).encode()))
            return
        from pushcap.archive.query import ArchiveQuery, QueryError
        from pushcap.capture.batch import pcap_file_header

        started = time.perf_counter()

        def note(text: str) -> None:
            out.write(wire.frame(wire.NOTE, text.encode()))

        try:
            query = ArchiveQuery(files, request["start_ns"], request["end_ns"],
                                 request["filter"], note, indexes=self.cache().lookup)
            out.write(wire.frame(wire.DATA, pcap_file_header(query.linktype, query.snaplen,
                                                             query.nano)))
            query.write_to(handler.connection.fileno(),
                           lambda size: out.write(wire.HEADER.pack(wire.DATA, size)))
        except QueryError as exc:
            out.write(wire.frame(wire.ERROR, f"query: {exc}".encode()))
            return
        self.served += 1
        stats = {k: v for k, v in vars(query.stats).items() if k != "notes"}
        out.write(wire.frame(wire.STATS, json.dumps(stats).encode()))
        log.info("event=query_served files=%d packets=%d seconds=%.3f", stats["files"],
                 stats["packets"], time.perf_counter() - started)
