"""An archive query read a few files at a time, in time order, for a reader that may stop early.

`ArchiveQuery` picks every file's matching records before it hands out the first batch: right
for `pushcap query`, which wants them all, but a trigger stops at its `packets` or `bytes` cap,
and an hour of a busy link without a narrowing filter would be held whole first. Here the
files are cut into groups whose time spans do not overlap (an index gives a file's smallest
and largest timestamp; a file without one, such as a part still being written, spans from its
first record on to the end of time), and each group is one ArchiveQuery, oldest group first.
The packets come out as one ArchiveQuery over all the files would give them (time order, ties
in the order of the files given), and memory holds one group's records at a time; a group
after the reader stopped is never opened.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

from pushcap import defaults
from pushcap.archive.datafile import head
from pushcap.archive.index_file import IndexReader, IndexUnusable
from pushcap.archive.layout import index_path
from pushcap.archive.query import ArchiveQuery, QueryError, QueryStats
from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES, RECORD_HEADER_BYTES, Batch

_NEVER = 2**63 - 1
_COUNTED = ("files_outside", "files_indexed", "files_scanned", "files_missing",
            "archive_bytes", "bytes_read", "records_read", "packets")


class StepwiseQuery:
    """The packets of `files` in [start_ns, end_ns) that `bpf` accepts, as ArchiveQuery gives
    them, one group of overlapping files at a time; `stats` adds up the groups read so far."""

    def __init__(self, files: Sequence[Path], start_ns: int, end_ns: int, bpf: str | None,
                 note: Callable[[str], None] | None = None,
                 unmapped: Collection[Path] = ()) -> None:
        """`unmapped`: as ArchiveQuery's (parts still being written)."""
        self.start_ns, self.end_ns, self.bpf = start_ns, end_ns, bpf
        self._unmapped = unmapped
        self.stats = QueryStats(files=len(files))
        self._note = note
        self.linktype: int | None = None
        self.oldest_ns: int | None = None  # the smallest timestamp of any file (in the window
        # or not): where the archive begins
        self.groups = self._groups([Path(f) for f in files])

    def batches(self) -> Iterator[Batch]:
        for group in self.groups:
            query = ArchiveQuery(group, self.start_ns, self.end_ns, self.bpf, self._note,
                                 self._unmapped)
            if query.stats.files > query.stats.files_outside + query.stats.files_missing:
                if self.linktype is None:
                    self.linktype = query.linktype
                elif query.linktype != self.linktype:
                    raise QueryError(f"the files hold different link types ({self.linktype}, "
                                     f"{query.linktype})")
            try:
                yield from query.batches()
            finally:
                self._add(query.stats)

    def _add(self, stats: QueryStats) -> None:
        for name in _COUNTED:
            setattr(self.stats, name, getattr(self.stats, name) + getattr(stats, name))
        self.stats.notes.extend(stats.notes)

    def _groups(self, files: list[Path]) -> list[list[Path]]:
        """Files whose spans overlap the window, cut into groups of overlapping spans, oldest
        first; each group keeps the order the files were given in."""
        spans = []
        for position, path in enumerate(files):
            span = _span(path)
            if span is not None and (self.oldest_ns is None or span[0] < self.oldest_ns):
                self.oldest_ns = span[0]
            if span is None or span[1] < self.start_ns or span[0] >= self.end_ns:
                self.stats.files_outside += 1
                continue
            spans.append((span[0], span[1], position))
        spans.sort()
        groups: list[list[tuple[int, Path]]] = []
        reach = None
        for first, last, position in spans:
            if reach is None or first > reach:
                groups.append([])
                reach = last
            reach = max(reach, last)
            groups[-1].append((position, files[position]))
        return [[path for _, path in sorted(group)] for group in groups]


def _span(path: Path) -> tuple[int, int] | None:
    """(smallest, largest) timestamp of a file: from its index when that still describes it,
    else from its first record on; None for a file without packets (or gone)."""
    try:
        size = path.stat().st_size
        reader = IndexReader(index_path(path))
    except (FileNotFoundError, IndexUnusable):
        reader = None
    except OSError:
        return None
    if reader is not None and reader.meta.data_size == size:
        meta = reader.meta
        return (meta.first_ts, meta.last_ts) if meta.packets else None
    return _first_ts(path), _NEVER


def _first_ts(path: Path) -> int:
    """The first record's timestamp; 0 (the start of time) where it cannot be told cheaply
    (pcapng, a file without a whole record header, one gone): such a file joins every group
    after it, which costs memory, never a packet."""
    try:
        raw = head(path, PCAP_FILE_HEADER_BYTES + RECORD_HEADER_BYTES)
    except OSError:
        return 0
    if len(raw) < PCAP_FILE_HEADER_BYTES + RECORD_HEADER_BYTES:
        return 0
    for order in "<>":
        magic = struct.unpack_from(order + "I", raw)[0]
        if magic in (defaults.PCAP_MAGIC_US, defaults.PCAP_MAGIC_NS):
            seconds, fraction = struct.unpack_from(order + "II", raw, PCAP_FILE_HEADER_BYTES)
            return seconds * 1_000_000_000 + fraction * (
                1 if magic == defaults.PCAP_MAGIC_NS else 1000)
    return 0

