"""Parsed indexes kept in memory, for a process that answers many queries (the daemon).

A standalone `pushcap query` reads each index's flow columns and some record row groups from
Parquet (~3.5 ms a file); the daemon reads an index once and keeps its flows and every flow's
record list as compact numpy arrays (6-8 bytes a record), so a query of a file costs the flow
predicate, a gather of the chosen flows' records and the records' own pages.

An entry is valid while its data file and its index are the ones it was read from (size, and the
index's inode, size and mtime): a query checks that with two `stat`s, so a file that retention
deleted, or rewrote, is never answered from memory, and its entry is dropped. Memory is bounded
(`max_bytes`): the least recently used entries go first. Thread-safe: the HTTP server answers
queries on several threads, and a warming thread loads new indexes.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from pushcap.archive.index_file import FLOW_COLUMNS, IndexMeta, IndexReader, IndexUnusable
from pushcap.archive.layout import index_path
from pushcap.archive.select import map_random


class CachedIndex:
    """An index held in memory, with IndexReader's query face (`meta`, `bytes_read`,
    `flows(columns)`, `records(rows)`), so select.pick_indexed reads either alike."""

    def __init__(self, reader: IndexReader) -> None:
        self.meta: IndexMeta = reader.meta
        self.bytes_read = 0  # from memory: nothing is read
        self._flows = reader.flows(FLOW_COLUMNS)
        starts, offsets, caplen = reader.record_lists()
        self._starts = starts
        self._offsets = offsets.astype(np.uint32 if self.meta.data_size < 1 << 32 else np.int64)
        self._caplen = caplen.astype(np.uint16 if int(caplen.max(initial=0)) < 1 << 16
                                     else np.int32)
        self._mapped: mmap.mmap | None = None
        self._map_lock = threading.Lock()
        self.nbytes = sum(a.nbytes for a in (*self._flows.values(), self._starts,
                                             self._offsets, self._caplen))

    def mapping(self, data: Path) -> mmap.mmap:
        """`data` mapped once for every query of it: the pages a query touched stay mapped,
        so the next query of the same records takes no page fault. Unmapped when the entry is
        dropped (a deleted file's space is freed once no running query still reads it)."""
        os.stat(data)  # deleted since the query began: FileNotFoundError, skipped as locally
        with self._map_lock:
            if self._mapped is None:
                self._mapped = map_random(data)
            return self._mapped

    def close(self) -> None:
        with self._map_lock:
            self._mapped = None  # a running query holds its own reference until it ends

    def flows(self, columns: tuple[str, ...] = FLOW_COLUMNS) -> dict[str, np.ndarray]:
        return {name: self._flows[name] for name in columns}

    def records(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, caplen) of every record of flow rows `rows`, in file order (int64)."""
        starts, ends = self._starts[rows], self._starts[rows + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if not total:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        shift = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        at = shift + np.arange(total)
        offsets = self._offsets[at].astype(np.int64)
        order = np.argsort(offsets, kind="stable")
        return offsets[order], self._caplen[at][order].astype(np.int64)


def _stamp(data: Path) -> tuple | None:
    """What identifies a data file and its index as they are now; None when either is gone."""
    try:
        info = os.stat(data)
        index = os.stat(index_path(data))
    except FileNotFoundError:
        return None
    return (info.st_size, info.st_ino, info.st_mtime_ns, index.st_ino, index.st_size,
            index.st_mtime_ns)


class IndexCache:
    """data file path -> CachedIndex, bounded by `max_bytes`, least recently used out first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.loads = 0
        self.hits = 0
        self._entries: OrderedDict[Path, tuple[tuple, CachedIndex]] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, data: Path, size: int) -> CachedIndex | None:
        """The index of `data` (of `size` bytes) from memory, read now if it is not there;
        None without a usable index (the caller reads it its own way, or scans)."""
        stamp = _stamp(data)
        if stamp is None or stamp[0] != size:
            self.drop(data)
            return None
        with self._lock:
            held = self._entries.get(data)
            if held is not None and held[0] == stamp:
                self._entries.move_to_end(data)
                self.hits += 1
                return held[1]
        return self._load(data, stamp)

    def warm(self, data: Path) -> bool:
        """Load `data`'s index if it is not held and fits without evicting; True if held."""
        stamp = _stamp(data)
        if stamp is None:
            self.drop(data)
            return False
        with self._lock:
            held = self._entries.get(data)
            if held is not None and held[0] == stamp:
                return True
            if self.nbytes >= self.max_bytes:
                return False
        return self._load(data, stamp, evict=False) is not None

    def _load(self, data: Path, stamp: tuple, evict: bool = True) -> CachedIndex | None:
        try:
            entry = CachedIndex(IndexReader(index_path(data)))
        except (FileNotFoundError, IndexUnusable):
            return None
        if entry.meta.data_size != stamp[0]:
            return None  # the index describes another version of the file
        with self._lock:
            self._remove(data)
            while evict and self._entries and self.nbytes + entry.nbytes > self.max_bytes:
                self._remove(next(iter(self._entries)))
            if self.nbytes + entry.nbytes > self.max_bytes:
                return entry
            self._entries[data] = (stamp, entry)
            self.nbytes += entry.nbytes
            self.loads += 1
        return entry

    def drop(self, data: Path) -> None:
        with self._lock:
            self._remove(data)

    def sweep(self) -> int:
        """Drop the entries whose file or index is gone or changed (retention deleted it);
        how many went."""
        with self._lock:
            held = list(self._entries.items())
        gone = [path for path, (stamp, _) in held if _stamp(path) != stamp]
        with self._lock:
            for path in gone:
                self._remove(path)
        return len(gone)

    def _remove(self, data: Path) -> None:
        held = self._entries.pop(data, None)
        if held is not None:
            self.nbytes -= held[1].nbytes
            held[1].close()

    def stats(self) -> dict:
        with self._lock:
            return {"files": len(self._entries), "bytes": self.nbytes,
                    "max_bytes": self.max_bytes, "loads": self.loads, "hits": self.hits}
