"""A push target's file series on one interface: select, split, write, publish.

`Series.consume()` works per batch: one BPF evaluation over the batch (the compiled program is
shared between targets with the same filter), split points, and each run of consecutive selected
packets written as one slice of the batch's record buffer, all in C where the library is built
(`selection.py`). No Python runs per packet.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from pushcap import defaults
from pushcap.capture.batch import Batch
from pushcap.capture.bpf import BpfError, compile_shared
from pushcap.capture.consumer import CountsFailures
from pushcap.config.model import ConfigError, SplitKind, TargetConfig
from pushcap.push import pcapfile
from pushcap.push.compress import COMPRESS_TMP_SUFFIX, settle_marks
from pushcap.push.naming import file_name
from pushcap.push.pcapfile import PcapWriter
from pushcap.push.selection import (
    Selection,
    byte_segments,
    first_past_window,
    select,
    time_segments,
    write,
)
from pushcap.push.ship import make_shipper

log = logging.getLogger("pushcap.push")


@dataclass
class SeriesStats:
    packets: int = 0
    bytes: int = 0
    files: int = 0
    current_file: str = ""
    lost_packets: int = 0  # selected but not written (disk full, I/O error)
    last_file: str = ""


class Series(CountsFailures):
    """One target's rolling files for one interface (a pcap file has one link type)."""

    def __init__(self, target: TargetConfig, interface: str, prefix: Path, linktype: int,
                 snaplen: int, rclone_settings: dict | None = None) -> None:
        self.target = target
        self.interface = interface
        self.shipper = make_shipper(target, prefix, rclone_settings)
        self.prefix = self.shipper.part_prefix  # where temporary files are written
        self.linktype = linktype
        self.snaplen = snaplen
        self.stats = SeriesStats()
        self._writer: PcapWriter | None = None
        self._finishing: queue.Queue[PcapWriter | None] = queue.Queue()
        # Cleared for a reload's successor until its predecessor has delivered everything, so
        # the two never deliver into one place at once (and files keep their order).
        self.delivery_open = threading.Event()
        self.delivery_open.set()
        self._unwritten = 0  # selected packets of the current batch not yet written
        self._finisher: threading.Thread | None = None
        self.retiring = False  # see retire()
        self.retired_at: int | None = None  # batch index where a successor took over
        self._window = -1  # window of the open file (time split)
        self._last_closed_window = -1
        try:
            self._filter = compile_shared(target.filter_bpf, linktype, snaplen)
        except BpfError as exc:
            raise ConfigError(f'target {target.index} "{target.desc}": FilterBPF '
                              f'"{target.filter_bpf}": {exc} (link type {linktype})') from exc

    def start(self, clean_stale: bool = True) -> None:
        """Start delivery (rclone uploads run beside the packet path, never in it).
        clean_stale: remove crash leftovers of compression; only at start, never at a reload
        (a predecessor's temporaries may be live)."""
        self.shipper.start(clean_stale)

    def continue_after(self, predecessor: Series) -> None:
        """Take over from a reload's predecessor: no window before its boundary reopens."""
        if predecessor.target.split.kind is SplitKind.TIME and \
                self.target.split.kind is SplitKind.TIME:
            boundary_ns = (predecessor._last_closed_window + 1) * predecessor.target.split.value
            self._last_closed_window = boundary_ns // self.target.split.value - 1

    def status(self) -> dict:
        """Figures for `pushcap status` and /metrics (plus the shipper's, e.g. uploads)."""
        return {**asdict(self.stats), **self.shipper.stats()}

    @property
    def label(self) -> str:
        return f"target={self.target.desc} interface={self.interface}"

    # --- packet path -------------------------------------------------------------------------
    def retire(self) -> bool:
        """A reload changed this target: keep writing until the current file's natural end, then
        stop (`retired_at` says where the successor takes over). False when there is no open
        file, so the successor can take over at once."""
        if self._writer is None:
            return False
        self.retiring = True
        return True

    def consume(self, batch: Batch) -> None:
        if not len(batch) or self.retired_at is not None:
            return
        if self.retiring and self.target.split.kind is SplitKind.TIME and self._writer:
            # The boundary is the window's end in packet time, whatever the filter selects:
            # every packet after it belongs to the successor.
            cut = first_past_window(batch, self.target.split.value, self._window)
            if cut is not None:
                try:
                    self._consume(batch.rows(0, cut))
                finally:  # even after a failed write the successor takes over at the boundary
                    self._finish()
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
        floor = self._window if self._writer else self._last_closed_window + 1
        for start, end, window in time_segments(selected, split_ns, floor):
            if self._writer is not None and window != self._window:
                self._finish()
            if self._writer is None and self.retiring:
                self.retired_at = selected.index(start)  # the file boundary: hand over here
                return
            if self._writer is None:
                self._window = window
                self._open(window * split_ns, selected.batch.nano)
            self._write(selected, start, end)

    def _consume_bytes(self, selected: Selection) -> None:
        used = self._writer.bytes_written if self._writer else 0
        for start, end, new_file in byte_segments(selected, used, self.target.split.value):
            if new_file:
                self._finish()
                if self.retiring:
                    self.retired_at = selected.index(start)
                    return
                self._open(selected.ts(start), selected.batch.nano)
            self._write(selected, start, end)

    def _write(self, selected: Selection, start: int, end: int) -> None:
        """Write positions [start, end) of the selection into the open file."""
        if selected.batch.nano != self._writer.nano:  # one source never mixes them
            raise ValueError(f"{self.label}: records with "
                             f"{'ns' if selected.batch.nano else 'µs'} timestamps for a file in "
                             f"{'ns' if self._writer.nano else 'µs'}")
        nbytes = write(self._writer, selected, start, end)
        self._unwritten -= end - start
        self.stats.packets += end - start
        self.stats.bytes += nbytes

    # --- files -------------------------------------------------------------------------------
    def _open(self, start_ns: int, nano: bool) -> None:
        self._writer = PcapWriter.create(self.prefix, start_ns, self.linktype, self.snaplen, nano)
        self.stats.current_file = self._writer.part.name

    def _finish(self) -> None:
        """Hand the open file to the finisher: fsync, compression and delivery happen off the
        packet path, so a large file or a slow compressor never holds up the next batch."""
        writer = self._writer
        if writer is None:
            return
        self._writer = None
        self.stats.current_file = ""
        if self.target.split.kind is SplitKind.TIME:
            self._last_closed_window = self._window
        if self._finisher is None:
            self._finisher = threading.Thread(target=self._finish_loop, daemon=True,
                                              name=f"finish-{self.target.desc}")
            self._finisher.start()
        self._finishing.put(writer)

    def _finish_loop(self) -> None:
        while True:
            writer = self._finishing.get()
            if writer is None:  # close(): no more files
                self._finishing.task_done()
                return
            self.delivery_open.wait()
            try:
                writer.close()
                final = self._publish(writer.part, writer.start_ns, writer.last_ts_ns)
            except Exception as exc:  # noqa: BLE001 - the part stays; the next start repairs it
                self.note_error(exc)
                log.error("event=file_finish_failed %s file=%s error=%r", self.label,
                          writer.part.name, self.last_error)
            else:
                self.stats.files += 1
                self.stats.last_file = str(final)
                log.info("event=file_done %s file=%s packets=%d bytes=%d", self.label, final,
                         writer.packets, writer.bytes_written)
            finally:
                self._finishing.task_done()

    def finish(self) -> None:
        """Finish the open file and wait until every finished file is delivered (or failed)."""
        self._finish()
        self._finishing.join()

    def _publish(self, part: Path, start_ns: int, last_ts_ns: int) -> Path:
        if self.target.split.kind is SplitKind.TIME:
            end_ns = start_ns + self.target.split.value
        else:
            end_ns = last_ts_ns
        return self.shipper.deliver(part, file_name(self.target.naming, start_ns, end_ns))

    def tick(self, now_ns: int) -> None:
        """Called about every poll on a live link: flush the open file, so a crash of the process
        loses nothing already written, and close a time-split file once its window is over even
        if no packet follows."""
        if self._writer is None:
            return
        self._writer.flush()
        if self.target.split.kind is not SplitKind.TIME:
            return
        window_end_ns = (self._window + 1) * self.target.split.value
        if now_ns >= window_end_ns + int(defaults.TIME_SPLIT_GRACE_S * 1e9):
            self._finish()
            if self.retiring:
                self.retired_at = 0  # the window ended quietly: the successor takes what follows

    def close(self) -> None:
        """Finish the open file (shutdown, end of a replay, target removed by a reload)."""
        self.finish()
        if self._finisher is not None:
            self._finishing.put(None)
            self._finisher.join()
            self._finisher = None
        # What is not delivered within this time stays spooled for the next start: nothing lost.
        self.shipper.close(defaults.SHIPPER_CLOSE_TIMEOUT_S)

    def _published_as(self, part: Path) -> Path | None:
        """The series file that is this very part (same inode), if publish() linked it before
        a crash. A link count above one alone proves nothing: a backup tool may hold the other
        link, and then the part still has to be published."""
        info = part.stat()
        if info.st_nlink < 2:
            return None
        for other in part.parent.glob(f"{self.prefix.name}_*"):
            with contextlib.suppress(OSError):
                found = other.stat()
                if (found.st_dev, found.st_ino) == (info.st_dev, info.st_ino):
                    return other
        return None

    def repair_leftovers(self) -> None:
        """Finish this series' temporary files left by a crash: cut at the last whole record."""
        if not self.prefix.parent.is_dir():
            return
        settle_marks(self.prefix.parent, self.prefix.name)
        for part in sorted(self.prefix.parent.glob(f".{self.prefix.name}.*{pcapfile.PART_SUFFIX}")):
            parsed = pcapfile.parse_part_name(part)
            if parsed is None or parsed[0] != self.prefix.name:
                continue
            compressed = part.with_name(part.name + COMPRESS_TMP_SUFFIX)
            published = self._published_as(part)
            if published is None and compressed.exists():
                published = self._published_as(compressed)
            if published is not None:
                # publish() had linked it (or its compressed copy) to its final name when the
                # crash came, before the unlink: publishing again would copy it as `_2`.
                part.unlink()
                compressed.unlink(missing_ok=True)
                log.info("event=repair_already_published %s file=%s final=%s", self.label,
                         part.name, published)
                continue
            found = pcapfile.repair_part(part)
            if found is None:
                log.info("event=repair_empty %s file=%s", self.label, part.name)
                continue
            packets, _, last_ts = found
            final = self._publish(part, parsed[1], last_ts)
            log.warning("event=repair_done %s file=%s packets=%d", self.label, final, packets)
