"""A push target's file series on one interface: select, split, write, publish.

`Series.consume()` works per batch: one BPF evaluation over the batch (the compiled program is
shared between targets with the same filter), split points, and each run of consecutive selected
packets written as one slice of the batch's record buffer, all in C where the library is built
(`selection.py`). No Python runs per packet. The open file is a `RollingFile`; finished files go
to the `Finisher` (fsync, compression, delivery off the packet path), which hands each to the
`Publisher` (its final name, delivery, a failed one tried again); a crash's leftovers are
repaired at start (`repair.py`). Series implements the consumer contract the supervisor drives
(`capture/consumer.py`), the reload handover included.
"""

from __future__ import annotations

from pathlib import Path

from pushcap import defaults
from pushcap.capture.batch import Batch
from pushcap.capture.bpf import compile_target_filter
from pushcap.capture.consumer import CountsFailures
from pushcap.config.model import TargetConfig
from pushcap.config.record import as_dict, record
from pushcap.push.finisher import Finisher
from pushcap.push.publisher import Publisher
from pushcap.push.repair import repair_leftovers
from pushcap.push.rolling_file import RollingFile
from pushcap.push.script_new import ScriptNew
from pushcap.push.series_writer import SeriesWriter
from pushcap.push.ship import make_shipper


@record
class SeriesStats:
    packets: int = 0
    bytes: int = 0
    files: int = 0
    current_file: str = ""
    lost_packets: int = 0  # selected but not written (disk full, I/O error)
    last_file: str = ""


def _keeper(target: TargetConfig, prefix: Path, label: str):
    """The series' archive keeper (Keep, Index), or None. archive.keeper (with shutil,
    tempfile, bz2, lzma) is imported only for a target that has one: it was ~3 ms of every
    replay's start-up (issue 15)."""
    if target.keep is None and not target.indexed:
        return None
    from pushcap.archive.keeper import make_keeper

    return make_keeper(target, prefix, label)


class Series(CountsFailures):
    """One target's rolling files for one interface (a pcap file has one link type)."""

    def __init__(self, target: TargetConfig, interface: str, prefix: Path, linktype: int,
                 snaplen: int, rclone_settings=None) -> None:
        self.target = target
        self.interface = interface
        self.shipper = make_shipper(target, prefix, rclone_settings)
        self.prefix = self.shipper.part_prefix  # where temporary files are written
        # Keep and Index (File targets): indexes and retention on a thread of their own
        self.archive = _keeper(target, self.prefix, self.label)
        self.stats = SeriesStats()
        # closes, names and delivers finished files; its failures count in this series' errors
        self.publisher = Publisher(target, self.prefix, self.label, self.shipper, self.archive,
                                   self.stats, self)
        self.finisher = Finisher(self.publisher.finish_one, f"finish-{target.desc_file_name}")
        bpf_filter = compile_target_filter(target, linktype, snaplen)
        # FMADIO's ScriptNew: a command at each new file, on a thread of its own (script_new.py)
        self.script = ScriptNew(target.script_new, self.label) if target.script_new else None
        self.writer = SeriesWriter(target, RollingFile(self.prefix, linktype, snaplen,
                                                        self.label, self.archive),
                                   bpf_filter, self.stats, self.finisher.put,
                                   self.script.file_started if self.script else None)

    @property
    def label(self) -> str:
        return f"target={self.target.desc_log} interface={self.interface}"

    def output(self) -> str:
        """Where this series' files go (its temporary or spool prefix): a successor writing
        to the same place waits for this one's retirement."""
        return str(self.prefix)

    def start(self, at_launch: bool = True) -> None:
        """Start delivery (rclone uploads run beside the packet path, never in it). At launch,
        a crash's leftovers are repaired and compression temporaries removed; never at a reload
        or in a replay (a predecessor's, or a running daemon's, temporaries may be live)."""
        if self.archive is not None:
            self.archive.start(at_launch)
        if at_launch:
            self.repair_leftovers()
        self.shipper.start(at_launch)

    def repair_leftovers(self) -> None:
        """Publish the `.part` files a crash left, cut at their last whole record (repair.py)."""
        repair_leftovers(self.prefix, self.label, self.publisher.publish)

    def status(self) -> dict:
        """Figures for `pushcap status` and /metrics (plus the shipper's, e.g. uploads)."""
        archive = self.archive.status() if self.archive is not None else {}
        return {**as_dict(self.stats), **self.shipper.stats(), **archive}

    # --- the reload handover (capture/consumer.py) ----------------------------------------
    def retire(self) -> bool:
        """A reload changed this target: keep writing until the current file's natural end, then
        stop (`retired_at` says where the successor takes over). False when there is no open
        file, so the successor can take over at once."""
        self.writer.retiring = self.writer.file.is_open
        return self.writer.retiring

    def unretire(self) -> None:
        """A later reload wants these settings again: go on as if never retired."""
        self.writer.retiring = False

    @property
    def retired_at(self) -> int | None:
        return self.writer.retired_at

    def take_over(self, predecessor) -> None:
        """Nothing to carry over at a reload: the file boundary decides (continue_after)."""

    def continue_after(self, predecessor) -> None:
        """Take over from a reload's predecessor at its boundary: no window before it reopens."""
        if isinstance(predecessor, Series):
            self.writer.continue_after(predecessor.writer)

    def hold_delivery(self) -> None:
        self.finisher.hold()

    def open_delivery(self) -> None:
        self.finisher.open()

    # --- packet path: SeriesWriter -----------------------------------------------------------
    def consume(self, batch: Batch) -> None:
        self.writer.consume(batch)

    def tick(self, now_ns: int) -> None:
        """Called on a live link when the lane wakes: flush the open file, close a time-split
        file whose window is over even if no packet follows."""
        self.writer.tick(now_ns)

    def next_tick_ns(self) -> int | None:
        """When a tick can next act (see SeriesWriter.next_tick_ns and TargetLane)."""
        return self.writer.next_tick_ns()

    def end_file(self) -> None:
        """Hand the open file to the finisher now (shutdown, a forced handover)."""
        self.writer.end_file()

    # --- finished files: Publisher ----------------------------------------------------------
    def finish(self) -> None:
        """Finish the open file and wait until every finished file is delivered (or failed)."""
        self.writer.end_file()
        self.finisher.join()

    def close(self) -> None:
        """Finish the open file (shutdown, end of a replay, target removed by a reload). A
        part that still cannot be finished holds packets (one without is removed): it is
        kept, never deleted, named in the log, and published at the next start."""
        self.finish()
        self.finisher.stop()
        self.publisher.finish_last()  # the finisher's thread has ended: this thread's turn
        # What is not delivered within this time stays spooled for the next start: nothing lost.
        self.shipper.close(defaults.SHIPPER_CLOSE_TIMEOUT_S)
        if self.script is not None:
            self.script.close()
        if self.archive is not None:
            self.archive.close()
