"""Rolling pcap files that a reader never sees half-written, and the repair of crash leftovers.

A file is written as a hidden `.<base>.<start_ns>.part` beside its final place and renamed when
complete. The temporary name carries what the final name needs (series prefix and start time), so
a leftover from a crash can be cut at its last whole record and finished on the next start
instead of being deleted. Finishing never overwrites: a taken final name gets `_2`, `_3`, ...
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pushcap import defaults
from pushcap.capture.batch import (
    PCAP_FILE_HEADER_BYTES,
    pcap_file_header,
)
from pushcap.config.record import record

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:  # numpy is imported where it is used: a replay never needs it
    import numpy as np

log = logging.getLogger("pushcap.push")

PART_SUFFIX = ".part"


class FolderPrefix:
    """The prefix of a series whose Path is a folder (ends in `/`, as FMADIO reads it): its
    files are `<name><suffix>` in that folder, its temporaries `..<start_ns>.part`. It offers
    what the series code uses of the Path the other series have, `.parent` (the folder) and
    `.name` (empty: series_file_name joins no `_`), so one code path serves both."""

    __slots__ = ("parent",)
    name = ""

    def __init__(self, folder: Path) -> None:
        self.parent = folder

    def __str__(self) -> str:
        return os.path.join(str(self.parent), "")

    def __repr__(self) -> str:
        return f"FolderPrefix({str(self.parent)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FolderPrefix) and other.parent == self.parent

    def __hash__(self) -> int:
        return hash(("FolderPrefix", self.parent))


def series_file_name(base: str, name: str) -> str:
    """`<base>_<name>`, or `<name>` alone for a folder series (empty base)."""
    return f"{base}_{name}" if base else name


def part_path(prefix: Path, start_ns: int, n: int = 0) -> Path:
    """Temporary path of a series file: hidden, so `<prefix>*` globs never match it. `n` tells
    apart files that start at the same nanosecond (byte split, bursts)."""
    start = f"{start_ns}~{n}" if n else str(start_ns)
    return prefix.parent / f".{prefix.name}.{start}{PART_SUFFIX}"


def parse_part_name(path: Path) -> tuple[str, int] | None:
    """(series base name, start_ns) of a temporary file, or None if it is not one of ours."""
    name = path.name
    if not (name.startswith(".") and name.endswith(PART_SUFFIX)):
        return None
    base, dot, start = name[1:-len(PART_SUFFIX)].rpartition(".")
    start, _, n = start.partition("~")
    if not (dot and start.isascii() and start.isdigit() and (not n or (n.isascii()
                                                                       and n.isdigit()))):
        return None  # an empty base is a folder series' (FolderPrefix): `..<start>.part`
    return base, int(start)


def finish_name(prefix: Path, name: str, suffix: str = ".pcap") -> Path:
    """`<prefix>_<name><suffix>`, or the first free `<prefix>_<name>_N<suffix>` if that is taken
    (a folder series: `<name><suffix>`, `<name>_N<suffix>`)."""
    candidate = prefix.parent / f"{series_file_name(prefix.name, name)}{suffix}"
    n = 2
    while candidate.exists():
        candidate = prefix.parent / f"{series_file_name(prefix.name, name)}_{n}{suffix}"
        n += 1
    return candidate


def publish(part: Path, prefix: Path, name: str, suffix: str = ".pcap", keep: bool = False,
            before_rename: Callable[[], None] | None = None) -> Path:
    """Move a complete temporary file to its final name without ever replacing another file.

    `suffix` is the target's FileSuffix (`.pcap.gz` for a gzip PipeCmd...). keep: leave `part`
    as a second link to the final file (the caller removes it once it has removed what the final
    file was made from); where hard links fail it is renamed all the same, and `before_rename`
    runs just before that rename."""
    while True:
        final = finish_name(prefix, name, suffix)
        try:
            os.link(part, final)  # fails if `final` appeared meanwhile: never overwrite
        except FileExistsError:
            continue
        except OSError:
            if final.exists():
                continue
            if before_rename is not None:
                before_rename()
            os.rename(part, final)  # filesystems without hard links
            return final
        if not keep:
            os.unlink(part)
        return final


@record
class PcapWriter:
    """An open temporary pcap file of one series."""

    part: Path
    start_ns: int
    packets: int = 0
    bytes_written: int = 0
    first_ts_ns: int = 0
    last_ts_ns: int = 0
    nano: bool = True

    @classmethod
    def create(cls, prefix: Path, start_ns: int, linktype: int, snaplen: int,
               nano: bool = True) -> PcapWriter:
        """A new temporary file whose header says `nano` (ns) or µs timestamps: the unit of
        the records that will be written into it (`Batch.nano`)."""
        prefix.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        while True:  # never reuse a temporary name: an earlier file may still be finishing
            part = part_path(prefix, start_ns, n)
            try:
                handle = part.open("xb", buffering=defaults.WRITE_BUFFER_BYTES)
                break
            except FileExistsError:
                n += 1
        writer = cls(part, start_ns, nano=nano)
        writer._file = handle
        writer._file.write(pcap_file_header(linktype, snaplen, nano))
        writer.bytes_written = PCAP_FILE_HEADER_BYTES
        return writer

    def write(self, records, starts: np.ndarray, ends: np.ndarray, packets: int,
              first_ts_ns: int, last_ts_ns: int) -> int:
        """Append whole records (already in the file's format): records[starts[i]:ends[i]]
        for each run of consecutive packets, straight from the batch to the kernel. Returns
        the bytes written."""
        from pushcap.capture.iov import writev_slices

        return self.write_with(lambda fd: writev_slices(fd, records, starts, ends), packets,
                               first_ts_ns, last_ts_ns)

    def write_with(self, write_records: Callable[[int], int], packets: int, first_ts_ns: int,
                   last_ts_ns: int) -> int:
        """Append `packets` whole records with `write_records(fd)`, which returns the bytes it
        wrote or raises. Returns the bytes written."""
        self._file.flush()  # keep order with anything written through the buffer
        fd = self._file.fileno()
        try:
            nbytes = write_records(fd)
        except (OSError, ValueError):
            # Disk full or I/O error: cut back to the last whole record so the file stays valid
            # and later writes (once there is room again) continue it.
            os.ftruncate(fd, self.bytes_written)
            os.lseek(fd, self.bytes_written, os.SEEK_SET)
            raise
        if not self.packets:
            self.first_ts_ns = first_ts_ns
        self.packets += packets
        self.bytes_written += nbytes
        self.last_ts_ns = last_ts_ns
        return nbytes

    def flush(self) -> None:
        """Hand buffered records to the OS, so a crash of the process loses none of them."""
        self._file.flush()

    def close(self) -> None:
        """Flush to stable storage: a published file must survive a power cut. The file is
        closed even when that fails (what is on disk is then finished again, see Series)."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                self._file.close()
            raise
        self._file.close()

    def discard(self) -> None:
        """Remove the file (it holds no packet); closing may fail to flush its header on a full
        disk, which no longer matters."""
        with contextlib.suppress(OSError):
            self._file.close()
        self.part.unlink(missing_ok=True)


def repair_part(part: Path) -> tuple[int, int, int] | None:
    """Cut a leftover temporary file at its last whole record.

    Returns (packets, first_ts_ns, last_ts_ns), or None when it holds no whole packet (it is then
    removed: there is nothing in it to lose). The file is walked window by window with the
    capture reader, so a leftover of many GB never has to fit in memory. The cut is where the
    reader's last whole record ends in the file (`end_offset`), not the sum of the batches'
    sizes: it reads as libpcap does, and cuts a record longer than the header's snaplen.
    """
    from pushcap.capture.source import PcapFileSource, SourceError

    packets, first_ts, last_ts, end = 0, 0, 0, PCAP_FILE_HEADER_BYTES
    try:
        source = PcapFileSource(part)  # pushcap writes classic pcap only
    except SourceError:  # not even a whole file header: nothing was captured into it
        source = None
    try:
        for batch in source.batches() if source is not None else ():
            if not packets:
                first_ts = int(batch.ts_ns[0])
            packets += len(batch)
            last_ts = int(batch.ts_ns[-1])
            end = source.end_offset
    except SourceError as exc:  # a corrupt record: the whole ones before it are kept
        log.warning("event=repair_corrupt file=%s kept_packets=%d error=%r", part.name,
                    packets, str(exc))
    if packets == 0:
        part.unlink()
        return None
    size = part.stat().st_size
    if end < size:
        with part.open("r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
        log.warning("event=repair_cut file=%s kept_packets=%d cut_bytes=%d", part.name, packets,
                    size - end)
    return packets, first_ts, last_ts
