"""The older part of a trigger's window, from the archive, joined to the ring's without a gap
or a duplicate (issue 20, item 4).

The ring holds the newest packets of an interface; an indexed File target on the same
interface holds everything it wrote, the ring's packets too. Where one ends and the other
begins is told by packet time, and, where several packets share a timestamp, by count:

- The ring is a contiguous run of what was captured: it has lost, by eviction, only packets
  older in arrival than all it holds. It remembers the newest timestamp it ever evicted
  (`Ring.lookback()`, taken with the snapshot the job reads). A packet stamped after that was
  never lost, so the ring alone serves it; a packet stamped before the oldest one the ring
  holds is not in the ring, so the archive alone serves it.
- Between the two (normally one timestamp: packets sharing the stamp of the eviction's edge;
  more after a clock step back), both may hold a packet. For each such timestamp the archive
  has `a` packets the window and filter take and the ring `r`: the ring's `r` are the last
  to have arrived (it evicts the oldest first), so the archive's first `a - r` (in the order
  the series wrote them) are the evicted ones, and only those are taken from it.
- The archive's part is read after the snapshot, while the series goes on writing (its open
  part included): packets written meanwhile are stamped after the snapshot's oldest and are
  left to the ring by the bounds above. What the archive is read for must be on disk by then:
  packets the ring evicted are old (`[ring] max_seconds`), long since written and flushed
  (every poll), unless the target fell behind the ring, which loses them for both (the
  target's `missed_packets` says so).

The archive is a target's published files and its parts not yet published (archive/written.py),
read a few files at a time (archive/stepwise.py), in the job's own thread: neither the listener
nor the capture threads wait for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pushcap.archive.layout import SeriesFiles
from pushcap.archive.stepwise import StepwiseQuery
from pushcap.archive.written import open_written
from pushcap.capture.batch import Batch


@dataclass(frozen=True)
class ArchiveSource:
    """A File target with `Index = true` on one interface: its series' files (the daemon's
    wiring finds them; see supervisor/trigger_archives.py)."""

    desc: str
    series: SeriesFiles
    filter_bpf: str | None = None  # the target's FilterBPF: its files hold only those packets


# interface name -> the indexed File targets reading it, in the Lua file's order (looked up
# when a capture runs, so a reload's targets are the ones used)
ArchiveSources = Callable[[str], Sequence[ArchiveSource]]


def choose_source(sources: Sequence[ArchiveSource]) -> tuple[ArchiveSource | None, str | None]:
    """The one target a capture reads (several would hold the same packets twice): the first
    without a FilterBPF, which holds every packet; else the first, with a note saying what its
    files lack."""
    for source in sources:
        if source.filter_bpf is None:
            return source, None
    if not sources:
        return None, None
    source = sources[0]
    return source, (f"the archive part comes from target {source.desc!r}, whose files hold "
                    f"only what its FilterBPF {source.filter_bpf!r} keeps")


@dataclass(frozen=True)
class Seam:
    """Where the archive's part ends: packets stamped before `overlap_start_ns` come from it
    whole; those in [overlap_start_ns, archive_end_ns) only as far as the ring lacks them
    (`ring_ts`, ascending, has `ring_counts` packets each)."""

    archive_end_ns: int
    overlap_start_ns: int
    ring_oldest_ns: int | None
    ring_ts: np.ndarray
    ring_counts: np.ndarray


_NONE = np.zeros(0, np.int64)


def find_seam(batches: Sequence[Batch], evicted_newest_ns: int | None,
              takes: Callable[[Batch], np.ndarray], empty_end_ns: int) -> Seam:
    """The seam for a ring snapshot (`Ring.lookback()`); `takes(batch)` is the mask of packets
    the capture's window and filter take. `empty_end_ns`: the archive's end when the ring has
    held no packet yet (nothing captured since the start: the archive is older)."""
    held = [(int(batch.ts_ns.min()), batch) for batch in batches if len(batch)]
    if not held:
        end = empty_end_ns if evicted_newest_ns is None else evicted_newest_ns + 1
        return Seam(end, end, None, _NONE, _NONE)
    oldest = min(low for low, _ in held)
    if evicted_newest_ns is None or evicted_newest_ns < oldest:
        return Seam(oldest, oldest, oldest, _NONE, _NONE)
    stamps = [batch.ts_ns[(batch.ts_ns <= evicted_newest_ns) & takes(batch)]
              for low, batch in held if low <= evicted_newest_ns]
    ring_ts, ring_counts = np.unique(np.concatenate(stamps), return_counts=True)
    return Seam(evicted_newest_ns + 1, oldest, oldest, ring_ts, ring_counts)


class ArchivePart:
    """The archive's packets of the window [start_ns, end_ns) that `bpf` accepts and the ring
    does not hold, as (batch, indices of the packets to take), time ordered."""

    def __init__(self, source: ArchiveSource, seam: Seam, start_ns: int, end_ns: int,
                 bpf: str | None) -> None:
        self.source = source
        self.seam = seam
        self.start_ns = start_ns
        self.end_ns = min(end_ns, seam.archive_end_ns)
        self.bpf = bpf
        self.query: StepwiseQuery | None = None
        self.notes: list[str] = []

    def selections(self) -> Iterator[tuple[Batch, np.ndarray]]:
        with open_written(self.source.series) as written:
            self.notes.extend(written.notes)
            self.query = StepwiseQuery(written.paths, self.start_ns, self.end_ns, self.bpf,
                                       self.notes.append, unmapped=written.parts)
            overlap: list[tuple[Batch, np.ndarray]] = []
            for batch in self.query.batches():
                ts = batch.ts_ns
                before = np.flatnonzero(ts < self.seam.overlap_start_ns)
                if len(before):
                    yield batch, before
                if len(before) < len(batch):
                    overlap.append((batch, np.flatnonzero(ts >= self.seam.overlap_start_ns)))
            yield from self._overlap(overlap)

    def _overlap(self, held: list[tuple[Batch, np.ndarray]]) -> Iterator[tuple[Batch,
                                                                            np.ndarray]]:
        """Of the packets stamped where both may hold them, the archive's first `a - r` per
        timestamp (module docstring)."""
        if not held:
            return
        ts = np.concatenate([batch.ts_ns[idx] for batch, idx in held])
        order = np.argsort(ts, kind="stable")
        stamps, first, counts = np.unique(ts[order], return_index=True, return_counts=True)
        in_ring = _counts_at(self.seam.ring_ts, self.seam.ring_counts, stamps)
        rank = np.arange(len(ts)) - np.repeat(first, counts)
        keep = np.empty(len(ts), bool)
        keep[order] = rank < np.repeat(counts - in_ring, counts)
        at_part = 0
        for batch, idx in held:
            part = keep[at_part:at_part + len(idx)]
            at_part += len(idx)
            if part.any():
                yield batch, idx[part]


def _counts_at(ring_ts: np.ndarray, ring_counts: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """How many packets the ring holds at each of `stamps` (0 where none)."""
    counts = np.zeros(len(stamps), np.int64)
    if len(ring_ts):
        at = np.searchsorted(ring_ts, stamps)
        found = np.flatnonzero(at < len(ring_ts))
        found = found[ring_ts[at[found]] == stamps[found]]
        counts[found] = ring_counts[at[found]]
    return counts
