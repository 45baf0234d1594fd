"""Selection and split points of a series: which packets of a batch go into which file.

One BPF pass selects a batch's packets; time windows (aligned to the epoch) or a byte budget
cut the selection into runs, each written into the open file, a new file opened at every
boundary. A changed target (a reload) keeps writing until its file's natural end and records
where in the batch its successor takes over (`retired_at`).
"""

from __future__ import annotations

from collections.abc import Callable

from pushcap import defaults
from pushcap.capture.batch import Batch
from pushcap.config.model import SplitKind, TargetConfig
from pushcap.push.pcapfile import PcapWriter
from pushcap.push.rolling_file import RollingFile
from pushcap.push.selection import (
    Selection,
    byte_segments,
    first_past_window,
    select,
    time_segments,
)


class SeriesWriter:
    """The packet path of one series: consume batches into rolling files; every file that
    ends goes to `file_ended(writer)`."""

    def __init__(self, target: TargetConfig, file: RollingFile, bpf_filter, stats,
                 file_ended: Callable[[PcapWriter], None],
                 file_started: Callable[[], None] | None = None) -> None:
        """`file_started`: called when a file opens (ScriptNew); it must return at once."""
        self.target = target
        self.file = file
        self.stats = stats
        self._filter = bpf_filter
        self._file_ended = file_ended
        self._file_started = file_started
        self._unwritten = 0  # selected packets of the current batch not yet written
        self.retiring = False  # see Series.retire()
        self.retired_at: int | None = None  # batch index where a successor took over
        self._window = -1  # window of the open file (time split)
        self.last_closed_window = -1

    def continue_after(self, predecessor: SeriesWriter) -> None:
        """No window before the predecessor's boundary reopens."""
        if predecessor.target.split.kind is SplitKind.TIME and \
                self.target.split.kind is SplitKind.TIME:
            boundary_ns = (predecessor.last_closed_window + 1) * predecessor.target.split.value
            self.last_closed_window = boundary_ns // self.target.split.value - 1

    def consume(self, batch: Batch) -> None:
        if not len(batch) or self.retired_at is not None:
            return
        if self.retiring and self.target.split.kind is SplitKind.TIME and self.file.is_open:
            # The boundary is the window's end in packet time, whatever the filter selects:
            # every packet after it belongs to the successor.
            cut = first_past_window(batch, self.target.split.value, self._window)
            if cut is not None:
                try:
                    self._consume(batch.rows(0, cut))
                finally:  # even after a failed write the successor takes over at the boundary
                    self.end_file()
                    self.retired_at = cut
                return
        self._consume(batch)

    def _consume(self, batch: Batch) -> None:
        if not len(batch):
            return
        selected = select(batch, self._filter)
        if selected is None:
            return
        self._unwritten = selected.count
        try:
            if self.target.split.kind is SplitKind.TIME:
                self._consume_time(selected)
            else:
                self._consume_bytes(selected)
        except OSError:
            self.stats.lost_packets += self._unwritten  # the file was cut back to a whole record
            raise

    def _consume_time(self, selected: Selection) -> None:
        split_ns = self.target.split.value
        floor = self._window if self.file.is_open else self.last_closed_window + 1
        for start, end, window in time_segments(selected, split_ns, floor):
            if self.file.is_open and window != self._window:
                self.end_file()
            if not self.file.is_open and self.retiring:
                self.retired_at = selected.index(start)  # the file boundary: hand over here
                return
            if not self.file.is_open:
                self._window = window
                self._open(window * split_ns, selected.batch.nano)
            self._write(selected, start, end)

    def _consume_bytes(self, selected: Selection) -> None:
        used = self.file.bytes_written
        for start, end, new_file in byte_segments(selected, used, self.target.split.value):
            if new_file:
                self.end_file()
                if self.retiring:
                    self.retired_at = selected.index(start)
                    return
                self._open(selected.ts(start), selected.batch.nano)
            self._write(selected, start, end)

    def _write(self, selected: Selection, start: int, end: int) -> None:
        nbytes = self.file.write(selected, start, end)
        self._unwritten -= end - start
        self.stats.packets += end - start
        self.stats.bytes += nbytes

    def _open(self, start_ns: int, nano: bool) -> None:
        self.file.open(start_ns, nano)
        self.stats.current_file = self.file.name
        if self._file_started is not None:
            self._file_started()

    def next_tick_ns(self) -> int | None:
        """When `tick` can next act (push clock): a time-split file's window end plus the
        grace; None for no open file or a byte-split one. The flush needs no schedule: records
        go to the kernel as they are written (PcapWriter.write_with), only a new file's header
        waits in the buffer until its first records."""
        if not self.file.is_open or self.target.split.kind is not SplitKind.TIME:
            return None
        return (self._window + 1) * self.target.split.value + \
            int(defaults.TIME_SPLIT_GRACE_S * 1e9)

    def tick(self, now_ns: int) -> None:
        """Called on a live link when the lane wakes (a batch, or `next_tick_ns`): flush the
        open file, so a crash of the process loses nothing already written, and close a
        time-split file once its window is over even if no packet follows."""
        if not self.file.is_open:
            return
        due_ns = self.next_tick_ns()  # a time-split file's window end plus the grace
        if due_ns is not None and now_ns >= due_ns:
            # ended before any flush: a flush failing (a full disk) must not keep it open
            self.end_file()
            if self.retiring:
                self.retired_at = 0  # the window ended quietly: the successor takes the rest
            return
        self.file.flush()

    def end_file(self) -> None:
        """Hand the open file to the finisher: fsync, compression and delivery happen off the
        packet path, so a large file or a slow compressor never holds up the next batch."""
        writer = self.file.take()
        if writer is None:
            return
        self.stats.current_file = ""
        if self.target.split.kind is SplitKind.TIME:
            self.last_closed_window = self._window
        self._file_ended(writer)
