"""The one file a series writes into at a time: opened at a window or size boundary, written
in runs of a batch's records, flushed every poll, handed off whole when it ends."""

from __future__ import annotations

from pathlib import Path

from pushcap.push.pcapfile import PcapWriter
from pushcap.push.selection import Selection, write


class RollingFile:
    """The open `.part` file of a series, or none."""

    def __init__(self, prefix: Path, linktype: int, snaplen: int, label: str) -> None:
        self.prefix = prefix
        self.linktype = linktype
        self.snaplen = snaplen
        self.label = label
        self.writer: PcapWriter | None = None

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

    def write(self, selected: Selection, start: int, end: int) -> int:
        """Positions [start, end) of the selection into the open file; the bytes written."""
        if selected.batch.nano != self.writer.nano:  # one source never mixes them
            raise ValueError(f"{self.label}: records with "
                             f"{'ns' if selected.batch.nano else 'µs'} timestamps for a file in "
                             f"{'ns' if self.writer.nano else 'µs'}")
        return write(self.writer, selected, start, end)

    def flush(self) -> None:
        """To the OS, so a crash of the process loses nothing already written."""
        if self.writer is not None:
            self.writer.flush()

    def take(self) -> PcapWriter | None:
        """The open file, detached (for the finisher); the series has none open after this."""
        writer, self.writer = self.writer, None
        return writer
