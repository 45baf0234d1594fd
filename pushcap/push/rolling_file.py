"""The one file a series writes into at a time: opened at a window or size boundary, written
in runs of a batch's records, flushed every poll, handed off whole when it ends."""

from __future__ import annotations

from pathlib import Path

from pushcap.push.pcapfile import PcapWriter
from pushcap.push.selection import Selection, write

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from pushcap.archive.keeper import ArchiveKeeper


class RollingFile:
    """The open `.part` file of a series, or none. With a keeper that indexes the series'
    files, each file's index keys are fed as its records are written (archive/index_feed.py)
    and handed to the keeper with the finished file."""

    def __init__(self, prefix: Path, linktype: int, snaplen: int, label: str,
                 keeper: ArchiveKeeper | None = None) -> None:
        self.prefix = prefix
        self.linktype = linktype
        self.snaplen = snaplen
        self.label = label
        self.writer: PcapWriter | None = None
        self._keeper = keeper
        self._feed = None

    @property
    def is_open(self) -> bool:
        return self.writer is not None

    @property
    def bytes_written(self) -> int:
        return self.writer.bytes_written if self.writer else 0

    @property
    def name(self) -> str:
        return self.writer.part.name if self.writer else ""

    def open(self, start_ns: int, nano: bool) -> None:
        self.writer = PcapWriter.create(self.prefix, start_ns, self.linktype, self.snaplen, nano)
        if self._keeper is not None:
            self._feed = self._keeper.new_feed(self.linktype)

    def write(self, selected: Selection, start: int, end: int) -> int:
        """Positions [start, end) of the selection into the open file; the bytes written."""
        if selected.batch.nano != self.writer.nano:  # one source never mixes them
            raise ValueError(f"{self.label}: records with "
                             f"{'ns' if selected.batch.nano else 'µs'} timestamps for a file in "
                             f"{'ns' if self.writer.nano else 'µs'}")
        if self._feed is not None:  # before the write: the batch's headers are in the cache
            self._feed.add(selected.batch, selected.idx, start, end, self.writer.bytes_written)
        try:
            return write(self.writer, selected, start, end)
        except BaseException:
            if self._feed is not None:  # the file was cut back: its index is built from it
                self._feed.close()
            raise

    def flush(self) -> None:
        """To the OS, so a crash of the process loses nothing already written."""
        if self.writer is not None:
            self.writer.flush()

    def take(self) -> PcapWriter | None:
        """The open file, detached (for the finisher); the series has none open after this."""
        writer, self.writer = self.writer, None
        feed, self._feed = self._feed, None
        if feed is not None and writer is not None:
            self._keeper.expect(writer.part, feed)
        return writer
