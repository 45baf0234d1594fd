"""The packets of an archive that a BPF accepts in a time window, time ordered.

`ArchiveQuery(files, start_ns, end_ns, bpf).batches()` yields Batches of pcap records, the same
packets `tcpdump -r F FILTER` selects from each file F, cut to [start_ns, end_ns) and ordered by
timestamp (a stable order: ties keep file order, files in the order given). It is the one API
for `pushcap query` and for triggers that reach back beyond the ring (item 4 of issue 20):
give it the data files of the indexed targets of an interface (`layout.SeriesFiles.paths()`).

Per file (select.py): an index whose file is unchanged gives its time span (a file wholly
outside the window is not opened) and, when the filter can be narrowed (filter_keys.py), the
records of the flows that may match, the only ones read. Files without a usable index are
scanned. A file that disappears (retention deleted it meanwhile) is skipped with a note, as is
an index that does not describe its file any more (its file is scanned).
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pushcap import defaults
from pushcap.archive import filter_keys
from pushcap.archive.datafile import codec_of, head, uncompressed
from pushcap.archive.index_cache import CachedIndex
from pushcap.archive.index_file import IndexReader, IndexUnusable
from pushcap.archive.layout import index_path
from pushcap.archive.select import Picked, StaleIndex, pick_indexed, pick_scan
from pushcap.capture import iov
from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES, RECORD_HEADER_BYTES, Batch
from pushcap.capture.bpf import BpfFilter
from pushcap.capture.pcap_rules import adjusted_snaplen
from pushcap.capture.source import SourceError, open_file_source


class QueryError(Exception):
    """The query cannot run (files of different link types, a filter that does not compile)."""


@dataclass
class QueryStats:
    files: int = 0  # files given
    files_outside: int = 0  # skipped: their index puts them outside the window
    files_indexed: int = 0  # only candidate records read
    files_scanned: int = 0  # read whole (no usable index, or a filter the index cannot narrow)
    files_missing: int = 0  # gone before they could be read (retention)
    archive_bytes: int = 0  # size of the files given
    bytes_read: int = 0  # indexes read, candidate records, scanned files
    records_read: int = 0  # candidate records read from indexed files
    packets: int = 0  # packets returned
    notes: list[str] = field(default_factory=list)


@dataclass
class _File:
    path: Path
    size: int
    reader: IndexReader | CachedIndex | None
    index_bytes: int
    linktype: int
    snaplen: int
    nano: bool


class _FileOpener:
    """What a query learns of each file before it picks a record: its size, its index (held in
    memory by the daemon, else read from disk) and so whether the file lies wholly outside the
    window (it is then never opened), else its link type, snaplen and resolution from its
    header. An index that does not describe its file is noted and the file scanned: an index
    narrows what is read, never what is found. What it reads is counted in the query's stats."""

    def __init__(self, start_ns: int, end_ns: int, stats: QueryStats,
                 note: Callable[[str], None],
                 indexes: Callable[[Path, int], CachedIndex | None] | None) -> None:
        self._start_ns, self._end_ns = start_ns, end_ns
        self._stats = stats
        self._note = note
        self._indexes = indexes

    def open(self, path: Path) -> _File | None:
        """The file to pick from, or None when its index puts it outside the window. A file
        deleted meanwhile raises FileNotFoundError (the query skips it); one that cannot be
        read, QueryError naming it."""
        try:
            size = path.stat().st_size
            reader, index_bytes = self._reader(path, size)
            if reader is not None:
                meta = reader.meta
                self._stats.archive_bytes += size
                if meta.packets == 0 or meta.last_ts < self._start_ns or \
                        meta.first_ts >= self._end_ns:
                    self._stats.files_outside += 1
                    self._stats.bytes_read += reader.bytes_read
                    return None
                return _File(path, size, reader, index_bytes, meta.linktype, meta.snaplen,
                             meta.nano)
            linktype, snaplen, nano = _describe(path)
        except FileNotFoundError:
            raise
        except (SourceError, OSError) as exc:
            raise QueryError(f"{path}: {exc}") from exc
        self._stats.archive_bytes += size
        return _File(path, size, None, 0, linktype, snaplen, nano)

    def _reader(self, path: Path, size: int) -> tuple[IndexReader | CachedIndex | None, int]:
        if self._indexes is not None:
            held = self._indexes(path, size)
            if held is not None:
                return held, 0
        index = index_path(path)
        try:
            index_bytes = index.stat().st_size
            reader = IndexReader(index)
        except FileNotFoundError:
            return None, 0
        except IndexUnusable as exc:
            self._note(f"{path.name}: index not used ({exc}); the file is scanned")
            return None, 0
        if reader.meta.data_size != size:
            self._note(f"{path.name}: its index describes another version of the file; "
                       "the file is scanned")
            return None, 0
        return reader, index_bytes


class ArchiveQuery:
    """One query; `linktype`, `snaplen` and `nano` (of the output) are known once it is built,
    before the first batch is read."""

    def __init__(self, files: Sequence[Path], start_ns: int, end_ns: int, bpf: str | None,
                 note: Callable[[str], None] | None = None,
                 unmapped: Collection[Path] = (),
                 indexes: Callable[[Path, int], CachedIndex | None] | None = None) -> None:
        """`unmapped`: files another program may cut shorter while they are read (the parts a
        series is still writing): read, never mapped (capture/source.py says why).
        `indexes(path, size)`: an index held in memory (index_cache.py, the daemon's), else
        None and the index is read from disk as without it."""
        self.start_ns, self.end_ns = start_ns, end_ns
        self._indexes = indexes
        self._lock = threading.Lock()
        self._unmapped = {Path(p) for p in unmapped}
        self.expression = bpf
        self.stats = QueryStats(files=len(files))
        self._note_to = note
        opener = _FileOpener(start_ns, end_ns, self.stats, self.note, indexes)
        self._files = [f for f in (self._open(opener, Path(p)) for p in files) if f is not None]
        kinds = {f.linktype for f in self._files}
        if len(kinds) > 1:
            raise QueryError(f"the files hold different link types ({sorted(kinds)}); query "
                             "one interface's files at a time")
        self.linktype = kinds.pop() if kinds else 1
        self.snaplen = max((f.snaplen for f in self._files), default=defaults.MAX_SNAPLEN_BYTES)
        self.nano = True
        self._tree = filter_keys.analyse(bpf)
        try:
            self._bpf = BpfFilter(bpf, self.linktype) if bpf else None
        except Exception as exc:  # noqa: BLE001 - BpfError or a budget error: say which filter
            raise QueryError(f"filter {bpf!r}: {exc}") from exc
        self.nano = self._output_nano()

    # --- planning -------------------------------------------------------------------------
    def note(self, text: str) -> None:
        self.stats.notes.append(text)
        if self._note_to is not None:
            self._note_to(text)

    def _open(self, opener: _FileOpener, path: Path) -> _File | None:
        try:
            return opener.open(path)
        except FileNotFoundError:
            self._missing(path)
            return None

    def _missing(self, path: Path) -> None:
        self.stats.files_missing += 1
        self.note(f"{path.name}: skipped, deleted while the query ran (retention?)")

    def _output_nano(self) -> bool:
        """ns unless every file is µs (a µs file's records are then written as they are)."""
        return {f.nano for f in self._files} != {False}

    # --- reading --------------------------------------------------------------------------
    def batches(self) -> Iterator[Batch]:
        """The selected packets, time ordered, as Batches of at most QUERY_CHUNK_RECORDS."""
        for picked, source, position, ts in self._chunks():
            yield _batch(picked, source, position, ts, self.linktype, self.snaplen, self.nano)

    def write_to(self, fd: int, before: Callable[[int], None]) -> None:
        """Write the selected records to `fd` (a socket: the daemon's answer) straight from
        where they lie, one gathering write per chunk with no copy in between; `before(n)`
        runs ahead of each chunk's n bytes (its frame header). A µs file among ns ones has its
        records rewritten, so that query goes through batches."""
        if self.nano and {f.nano for f in self._files} != {True}:
            for batch in self.batches():
                records = memoryview(batch.records).cast("B")
                before(len(records))
                _write_whole(fd, records)
            return
        for picked, source, position, _ in self._chunks():
            table, caplen = _record_table(picked, source, position)
            before(int(caplen.sum()) + RECORD_HEADER_BYTES * len(caplen))
            iov.write_table(fd, table)

    def _chunks(self) -> Iterator[tuple[list[Picked], np.ndarray, np.ndarray, np.ndarray]]:
        with contextlib.ExitStack() as stack:
            if self._indexes is not None and len(self._files) > 1:
                # The daemon's indexes are in memory: what is left is waiting on the records'
                # pages (first touches: page walks, faults), which threads overlap (numpy and
                # the C filter release the GIL).
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(defaults.QUERY_PICK_THREADS) as pool:
                    found = list(pool.map(lambda f: self._pick(f, stack), self._files))
            else:
                found = [self._pick(f, stack) for f in self._files]
            yield from self._merged([p for p in found if p is not None])

    def _pick(self, f: _File, stack: contextlib.ExitStack) -> Picked | None:
        """One file's selected records (thread-safe: the shared stack, figures and notes are
        taken under the query's lock)."""
        try:
            if f.reader is not None and self._tree is not None:
                codec = codec_of(f.path)
                with self._lock:
                    plain = stack.enter_context(uncompressed(f.path, codec))
                mapped = f.reader.mapping(f.path) if codec is None and \
                    isinstance(f.reader, CachedIndex) else None
                try:
                    picked = pick_indexed(plain, f.reader, self._tree, self._bpf,
                                          self.start_ns, self.end_ns, mapped)
                    with self._lock:
                        self.stats.files_indexed += 1
                        self.stats.records_read += picked.records_read
                        # a compressed file is read whole to be decompressed: its size on disk
                        # (picked.bytes_read counts decompressed bytes, beyond the file's size)
                        self.stats.bytes_read += picked.bytes_read if codec is None else \
                            f.size + f.index_bytes
                    return picked
                except StaleIndex as exc:
                    with self._lock:
                        self.note(f"{f.path.name}: index not used ({exc}); the file is scanned")
            with self._lock:
                plain = stack.enter_context(uncompressed(f.path, codec_of(f.path)))
            picked = pick_scan(plain, self._bpf, self.start_ns, self.end_ns,
                               mapped=f.path not in self._unmapped)
        except FileNotFoundError:
            with self._lock:
                self._missing(f.path)
            return None
        with self._lock:
            self.stats.files_scanned += 1
            self.stats.bytes_read += f.size + f.index_bytes
        return picked

    def _merged(self, picked: list[Picked]):
        if not picked:
            return
        ts = np.concatenate([p.ts_ns for p in picked])
        source = np.concatenate([np.full(len(p.ts_ns), i, np.int64)
                                 for i, p in enumerate(picked)])
        position = np.concatenate([np.arange(len(p.ts_ns)) for p in picked])
        order = np.lexsort((position, source, ts))
        self.stats.packets = len(order)
        for at in range(0, len(order), defaults.QUERY_CHUNK_RECORDS):
            chunk = order[at:at + defaults.QUERY_CHUNK_RECORDS]
            yield picked, source[chunk], position[chunk], ts[chunk]


def _record_table(picked: list[Picked], source: np.ndarray,
                  position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A chunk's records as an iovec table into the buffers they lie in, and their caplen:
    what a gathering write (or memfd gather) needs, with no record copied in Python."""
    table = np.empty(len(source), dtype=iov.IOVEC)
    caplen = np.empty(len(source), np.int64)
    for i in np.unique(source):
        rows = source == i
        p = picked[i]
        caplen[rows] = p.caplen[position[rows]]
        table[rows] = iov.slices(p.buffer, p.offsets[position[rows]],
                                 caplen[rows] + RECORD_HEADER_BYTES)
    return table, caplen


def _batch(picked: list[Picked], source: np.ndarray, position: np.ndarray, ts: np.ndarray,
           linktype: int, snaplen: int, nano: bool) -> Batch:
    """A chunk as one Batch in the output's resolution: the records gathered back to back
    (through a memfd, no record copied in Python), a µs file's fractions made ns when the
    output is ns, and the wire lengths read back from the records' own headers."""
    table, caplen = _record_table(picked, source, position)
    records = iov.gather(table)
    if records is None:
        raise QueryError("no memfd_create on this system: cannot assemble the output")
    offsets = np.zeros(len(caplen), np.int64)
    np.cumsum(caplen[:-1] + RECORD_HEADER_BYTES, out=offsets[1:])
    headers = np.ndarray((len(records) - 3,), dtype="<u4", buffer=records, strides=(1,))
    if nano:
        micro = np.array([not picked[i].nano for i in source])
        if micro.any():  # a µs file among ns ones: its fractions become ns
            headers[offsets[micro] + 4] = headers[offsets[micro] + 4] * 1000
    wirelen = headers[offsets + 12].astype(np.int64)
    return Batch(records, offsets, ts, caplen, wirelen, linktype, snaplen, nano=nano)


def _write_whole(fd: int, data: memoryview) -> None:
    while len(data):
        data = data[os.write(fd, data):]


def _describe(path: Path) -> tuple[int, int, bool]:
    """(linktype, snaplen, nano) of a capture file without an index: from its header (only
    that much of a compressed file is decompressed); pcapng through its reader."""
    raw = head(path, PCAP_FILE_HEADER_BYTES)
    if len(raw) < PCAP_FILE_HEADER_BYTES:
        raise SourceError(f"{path}: too short to be a capture file")
    for order in "<>":
        magic, _, _, _, _, snaplen, linktype = struct.unpack(order + "IHHiIII", raw)
        if magic in (defaults.PCAP_MAGIC_US, defaults.PCAP_MAGIC_NS):
            return (linktype & 0x0FFFFFFF, adjusted_snaplen(linktype, snaplen),
                    magic == defaults.PCAP_MAGIC_NS)
    with uncompressed(path) as plain:  # pcapng: its interface block says
        source = open_file_source(plain)
        return source.linktype, source.snaplen, True


def archive_packets(files: Sequence[Path], start_ns: int, end_ns: int, bpf: str | None,
                    note: Callable[[str], None] | None = None) -> Iterator[Batch]:
    """The packets of `files` in [start_ns, end_ns) that `bpf` accepts, time ordered (see
    ArchiveQuery, which also tells the link type and counts what was read)."""
    yield from ArchiveQuery(files, start_ns, end_ns, bpf, note).batches()
