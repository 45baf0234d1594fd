"""Which packets of a batch a target writes, and where its files cut them.

In C where the library is built (`BpfFilter.select`, `native_runs`): a few ns a packet and no
numpy at all, so a replay never imports it. With numpy where it was not built (`split.py`,
`iov.writev_slices`), with the same result (tests/test_selection.py holds both to it). Either way
nothing runs per packet in Python: a batch costs a handful of calls per target.
"""

from __future__ import annotations

from collections.abc import Iterator

from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch
from pushcap.capture.bpf import BpfFilter
from pushcap.push import split
from pushcap.push.native_runs import native_runs
from pushcap.push.pcapfile import PcapWriter


class Selection:
    """The packets of one batch a target takes: `idx` holds their batch indices, ascending (an
    int64 memoryview or numpy array), or is None for every packet. Positions 0..count-1 count
    in the selection."""

    __slots__ = ("batch", "idx", "count")

    def __init__(self, batch: Batch, idx, count: int) -> None:
        self.batch, self.idx, self.count = batch, idx, count

    def index(self, pos: int) -> int:
        """The batch index of position `pos`."""
        return pos if self.idx is None else int(self.idx[pos])

    def ts(self, pos: int) -> int:
        return int(self.batch.columns[1][self.index(pos)])


def select(batch: Batch, bpf: BpfFilter | None) -> Selection | None:
    """The packets `bpf` accepts (all of them for None); None when it accepts none."""
    if bpf is None:
        return Selection(batch, None, len(batch)) if len(batch) else None
    idx = bpf.select(batch)
    return Selection(batch, idx, len(idx)) if len(idx) else None


def time_segments(sel: Selection, split_ns: int, floor_window: int
                  ) -> Iterator[tuple[int, int, int]]:
    """(start, end, window) runs of the selection, window = ts // split_ns, never below
    `floor_window` and never going back (see `split.time_segments`)."""
    native = native_runs()
    if native is None:
        ts = sel.batch.ts_ns if sel.idx is None else sel.batch.ts_ns[sel.idx]
        yield from split.time_segments(ts, split_ns, floor_window)
        return
    ts = sel.batch.columns[1]
    pos, window = 0, floor_window
    while pos < sel.count:
        window = max(window, sel.ts(pos) // split_ns)
        end = native.window_end(ts, sel.idx, pos + 1, sel.count, split_ns, window)
        yield pos, end, window
        pos = end


def byte_segments(sel: Selection, used_bytes: int, max_bytes: int
                  ) -> list[tuple[int, int, bool]]:
    """(start, end, new_file) runs of the selection for files of at most `max_bytes` (see
    `split.byte_segments`); `used_bytes`: the size of the open file, 0 when none is open."""
    native = native_runs()
    if native is None:
        caplen = sel.batch.caplen if sel.idx is None else sel.batch.caplen[sel.idx]
        return split.byte_segments(caplen + RECORD_HEADER_BYTES, used_bytes, max_bytes)
    caplen = sel.batch.columns[2]
    return split.byte_runs(sel.count, used_bytes, max_bytes,
                           lambda pos, budget: native.bytes_end(caplen, sel.idx, pos,
                                                                sel.count, budget))


def first_past_window(batch: Batch, split_ns: int, window: int) -> int | None:
    """Index of the batch's first packet in a time window after `window`, if any (where a
    retiring target hands over, whatever its filter selects)."""
    native = native_runs()
    if native is None:
        import numpy as np

        beyond = np.flatnonzero(batch.ts_ns // split_ns > window)
        return int(beyond[0]) if len(beyond) else None
    cut = native.window_end(batch.columns[1], None, 0, len(batch), split_ns, window)
    return cut if cut < len(batch) else None


def write(writer: PcapWriter, sel: Selection, start: int, end: int) -> int:
    """Append positions [start, end) to the writer's file, one slice per run of records that
    lie back to back in the batch; the bytes written."""
    batch = sel.batch
    native = native_runs()
    first_ts, last_ts = sel.ts(start), sel.ts(end - 1)
    if native is None:
        import numpy as np

        idx = np.arange(start, end) if sel.idx is None else sel.idx[start:end]
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        first = idx[np.concatenate(([0], breaks))]
        last = idx[np.concatenate((breaks - 1, [len(idx) - 1]))]
        starts = batch.offsets[first]
        ends = batch.offsets[last] + RECORD_HEADER_BYTES + batch.caplen[last]
        return writer.write(batch.records, starts, ends, end - start, first_ts, last_ts)
    offsets, _, caplen, _ = batch.columns
    return writer.write_with(
        lambda fd: native.write_records(fd, batch.records, offsets, caplen, sel.idx, start, end),
        end - start, first_ts, last_ts)
