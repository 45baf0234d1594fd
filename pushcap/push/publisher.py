"""A series' finished files made public: closed, given their final name, delivered, noted to
the archive; a file whose finishing failed is kept and finished again later.

Runs on the finisher's thread (finisher.py), off the packet path, and at start for a crash's
leftovers (repair.py). A failure never loses packets: the `.part` stays, is counted in the
series' errors, and is finished again from what is on disk before each later file and at
close, since a full disk may have room by then; what still fails waits for the next start.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pushcap.capture.consumer import CountsFailures
from pushcap.config.model import SplitKind, TargetConfig
from pushcap.push.naming import file_name
from pushcap.push.pcapfile import PcapWriter
from pushcap.push.repair import finish_part

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from pushcap.archive.keeper import ArchiveKeeper
    from pushcap.push.ship import FileShipper, RcloneShipper
    from pushcap.push.target import SeriesStats

log = logging.getLogger("pushcap.push")


class Publisher:
    """Publishes one series' files. Its failures count in `failures` (the Series, whose
    status and `failing()` report them) and its files in the series' `stats`."""

    def __init__(self, target: TargetConfig, prefix: Path, label: str,
                 shipper: FileShipper | RcloneShipper, archive: ArchiveKeeper | None,
                 stats: SeriesStats, failures: CountsFailures) -> None:
        self.target = target
        self.prefix = prefix
        self.label = label
        self.shipper = shipper
        self.archive = archive
        self.stats = stats
        self.failures = failures
        self.unfinished: list[PcapWriter] = []  # finishing failed: tried again (finish_one)

    def publish(self, part: Path, start_ns: int, last_ts_ns: int) -> Path:
        """Deliver `part` under its final name: a time split names the whole window, so
        files of one series tile time; any other split ends the name at the last packet."""
        if self.target.split.kind is SplitKind.TIME:
            end_ns = start_ns + self.target.split.value
        else:
            end_ns = last_ts_ns
        final = self.shipper.deliver(part, file_name(self.target.naming, start_ns, end_ns))
        if self.archive is not None:
            self.archive.published(final, part)  # indexed and Keep applied off this thread
        return final

    def finish_one(self, writer: PcapWriter) -> None:
        """On the finisher's thread: close and publish one file. A failure is counted and the
        part is finished again (cut at its last whole record, or removed without one) before
        each later file and at close(): a full disk may have room by then."""
        self.finish_unfinished()
        if not writer.packets:  # every write into it failed (a full disk): nothing to publish
            writer.discard()
            log.warning("event=file_discarded %s file=%s reason=no_packet_written", self.label,
                        writer.part.name)
            return
        try:
            writer.close()
            final = self.publish(writer.part, writer.start_ns, writer.last_ts_ns)
        except Exception as exc:  # noqa: BLE001 - the part stays and is tried again
            self.failures.note_error(exc)
            log.error("event=file_finish_failed %s file=%s error=%r", self.label,
                      writer.part.name, self.failures.last_error)
            self.unfinished.append(writer)
            return
        self.stats.files += 1
        self.stats.last_file = str(final)
        log.info("event=file_done %s file=%s packets=%d bytes=%d", self.label, final,
                 writer.packets, writer.bytes_written)

    def finish_unfinished(self) -> None:
        """Finish again the parts whose finishing failed, from what is on disk."""
        still = []
        for writer in self.unfinished:
            try:
                final = finish_part(writer.part, writer.start_ns, self.prefix, self.label,
                                    self.publish)
            except Exception as exc:  # noqa: BLE001 - it stays, for the next try or start
                self.failures.note_error(exc)
                still.append(writer)
                continue
            if final is not None:
                self.stats.files += 1
                self.stats.last_file = str(final)
        self.unfinished = still

    def finish_last(self) -> None:
        """At close, once the finisher's thread has ended (this thread's turn): a last try.
        A part that still cannot be finished holds packets (one without is removed): it is
        kept, never deleted, named in the log, and published at the next start."""
        self.finish_unfinished()
        for writer in self.unfinished:
            log.warning("event=part_kept %s file=%s error=%r (it holds packets; the next "
                        "start publishes it)", self.label, writer.part, self.failures.last_error)
