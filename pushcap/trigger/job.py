"""One triggered capture of one interface, served from that interface's ring.

The ring already holds what the interface saw, so a capture is a reader: it takes the batches
from before the request that `before` (or `start`) asks for, then follows new batches through a
cursor until `packets`, `bytes`, `timeout`, `duration` or `end` ends it. Selection (time window,
BPF) and truncation to `snap` are done per batch with numpy and one `bytes.join`, never per
packet in Python. The pcap is assembled in memory, as pcapdaemon does: nothing touches the
filesystem here.

The window is decided by packet timestamps, never by when a batch reached the ring: a window
[start, end) holds exactly the packets stamped inside it. Its end is fixed when the job is made:
the earliest of `end`, the live start + `duration` and the live start + `timeout` (pcapdaemon's
"seconds to let capture last should the number of packets not get hit": matches do not move it),
and the reason names which one it was; `packets` and `bytes` may end the capture sooner. A
request giving `duration` or `end` without `timeout` has no timeout (message.py). Packets reach
the ring late (libpcap holds a quiet link's packets up to its poll timeout, the engine then
gathers more for up to `COALESCE_MS`), so the window is read on after its end (`late_s`) before
it is closed. A job waiting for packets that end it (its window's end has passed, or its packet
count is near) hurries the capture (`Cursor.read(hurry=True)`, capture/wake.py): the batch
being gathered ends then, not up to `COALESCE_MS` later, so `late_s` need not include it.

`duration` and `timeout` bound the live part: they count from the request, or from `start` when
that lies in the future. A past `start`, like `before`, only reaches back into the ring: `start`
= now - 30 with `duration` 10 is the window [now - 30, now + 10). pcapdaemon's message has no
`start` and no lookback: its capture begins at the request, and so do `duration` and `timeout`
here unless `start` lies ahead, so a pcapdaemon request means the same on both.

A lookback the ring cannot serve is said so in `notes`, never silently shortened: `before` (or a
past `start`) beyond `[ring] max_seconds` is capped to it, and a window reaching past the oldest
packet of a ring that filled `[ring] max_bytes` first is reported as short. Where an indexed
File target reads the interface (`archive`), the lookback is not capped: the part of the window
older than the ring comes from that target's files, joined to the ring's part with no gap and
no duplicate (archive_seam.py), and `notes` say how many packets came from there.

The caps hold for the whole window, archive, ring and live parts together: `packets` and
`bytes` count every packet taken, and the window [start, end) is at most `maxduration` long,
its lookback included (the live part ends sooner when it would pass that).

The job is the reader: what it reads and when it stops. Where the window lies, and the notes
on how much of it was served, are capture_window.py's; keeping the pcap within `packets` and
`bytes` is capped_pcap.py's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from pushcap import defaults
from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES, Batch, pcap_file_header
from pushcap.capture.bpf import BpfFilter
from pushcap.capture.ring import Cursor, Ring
from pushcap.trigger.archive_seam import ArchivePart, ArchiveSource, choose_source, find_seam
from pushcap.trigger.capped_pcap import CappedPcap
from pushcap.trigger.capture_window import archive_note, plan_window, short_ring_note
from pushcap.trigger.message import CaptureRequest
from pushcap.trigger.request_filter import compile_request_filter


def ring_latency_s(poll_timeout_ms: float = defaults.POLL_TIMEOUT_MS) -> float:
    """How long after its timestamp a packet may still be on its way into the ring for a job
    that hurries the capture (see `_follow`): libpcap's poll timeout, then at most
    `HURRY_GAP_MS` in a batch being gathered, not `COALESCE_MS`."""
    return (poll_timeout_ms + defaults.HURRY_GAP_MS) / 1000 + defaults.JOB_LATE_SLACK_S


@dataclass
class CaptureOutcome:
    """What one capture produced: the pcap bytes and why it ended."""

    interface: str
    alias: str | None
    linktype: int
    snap: int
    packets: int = 0
    reason: str = ""  # packets | bytes | timeout | duration | window | closed | stopped
    missed_packets: int = 0  # lost to ring eviction while this capture read
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    window_start_ns: int = 0  # the packets selected are stamped in [start, end)
    window_end_ns: int = 0
    before_s: float | None = None  # the lookback applied, when the request asked for one
    notes: list[str] = field(default_factory=list)  # what was capped, for the result and log
    parts: list[bytes] = field(default_factory=list)

    @property
    def pcap(self) -> bytes:
        return pcap_file_header(self.linktype, self.snap) + b"".join(self.parts)

    @property
    def nbytes(self) -> int:
        """Size of the pcap file, header included."""
        return PCAP_FILE_HEADER_BYTES + sum(map(len, self.parts))


class CaptureJob:
    """Runs one (request, interface) capture; `run()` blocks until it ends."""

    def __init__(self, request: CaptureRequest, interface: str, alias: str | None, ring: Ring,
                 stop: threading.Event | None = None, late_s: float | None = None, *,
                 bpf_filter: BpfFilter | None = None,
                 archive: tuple[ArchiveSource, ...] = ()) -> None:
        """`bpf_filter`: `request.bpf` compiled for `ring` (the service compiles it once, off
        the listener: request_filter.py); without one it is compiled here, the same way.
        `archive`: the indexed File targets reading this interface (archive_seam.py)."""
        self.request = request
        self.ring = ring
        self.archive, source_note = choose_source(archive)
        self.stop = stop or threading.Event()
        self.late_ns = int((ring_latency_s() if late_s is None else late_s) * 1e9)
        if bpf_filter is None and request.bpf:
            bpf_filter = compile_request_filter(request.bpf, ring)
        self.bpf = bpf_filter
        snap = min(request.snap, ring.snaplen) if ring.snaplen else request.snap
        self.outcome = CaptureOutcome(interface, alias, ring.linktype, snap)
        if source_note:
            self.outcome.notes.append(source_note)
        self._pcap = CappedPcap(self.outcome, request.packets, request.max_bytes)
        window = plan_window(request, ring, archived=self.archive is not None)
        self.window_start_ns, self.end_ns = window.start_ns, window.end_ns
        self.end_reason = window.end_reason
        self.outcome.before_s = window.before_s
        self.outcome.notes.extend(window.notes)
        self.outcome.window_start_ns = self.window_start_ns
        self.outcome.window_end_ns = self.end_ns

    def run(self) -> CaptureOutcome:
        started_ns = time.time_ns()
        cursor = self.ring.cursor()  # first, so nothing appended meanwhile falls between the two
        batches, evicted_newest_ns = self.ring.lookback()
        if not self._from_archive(batches, evicted_newest_ns, started_ns) and \
                not self._lookback(batches, cursor.seq):
            if self.end_ns + self.late_ns <= started_ns:
                self._end(self.end_reason)  # wholly past: the ring had all of it
            else:
                self._follow(cursor)
        self.outcome.missed_packets = cursor.missed_packets
        return self.outcome

    def _from_archive(self, batches: list[Batch], evicted_newest_ns: int | None,
                      started_ns: int) -> bool:
        """The window's packets older than the ring's, from the archive (archive_seam.py);
        True when a cap was reached. A failure to read it is noted: the ring's part follows."""
        if self.archive is None:
            return False
        seam = find_seam(batches, evicted_newest_ns, self._mask, started_ns - self.late_ns)
        if self.window_start_ns >= min(seam.archive_end_ns, self.end_ns):
            return False
        part = ArchivePart(self.archive, seam, self.window_start_ns, self.end_ns,
                           self.request.bpf)
        before, reached = self.outcome.packets, False
        try:
            for batch, idx in part.selections():
                if batch.linktype != self.ring.linktype:
                    raise ValueError(f"its files hold link type {batch.linktype}, the "
                                     f"interface {self.ring.linktype}")
                if self._append(batch, idx):
                    reached = True
                    break
        except Exception as exc:  # noqa: BLE001 - the ring's part is still owed to the publisher
            part.notes.append(f"the archive could not be read to the end ({type(exc).__name__}: "
                              f"{exc}); packets before the ring's may be missing")
        self.outcome.notes.extend(part.notes)
        self.outcome.notes.append(archive_note(part, self.outcome.packets - before,
                                               self.window_start_ns, self.request.received_ns))
        return reached

    def _lookback(self, batches: list[Batch], live_seq: int) -> bool:
        """Batches already in the ring (before the cursor); True when a cap was reached."""
        # Even without `before`, packets that arrived between the request and this job's start
        # (a queued request) are in the ring already: the window starts at the request.
        if self.archive is None and (note := short_ring_note(
                batches, self.ring, self.window_start_ns, self.request.received_ns)):
            self.outcome.notes.append(note)
        for batch in batches:
            if batch.seq >= live_seq:
                break
            if len(batch) and int(batch.ts_ns[-1]) < self.window_start_ns:
                continue
            if self._take(batch):
                return True
        return False

    def _follow(self, cursor: Cursor) -> bool:
        """Take new batches until a cap is reached or the window's end is settled: past it by
        the clock, read on for `late_s`, while packets stamped before it may still be on their
        way into the ring (`_take` drops those stamped after it). While the next batch may end
        the capture, a wait hurries it (`_hurries`)."""
        settled_ns = self.end_ns + self.late_ns
        while not self.stop.is_set():
            now_ns = time.time_ns()
            wait_s = min(defaults.JOB_POLL_S, max(settled_ns - now_ns, 0) / 1e9)
            hurry = self._hurries(now_ns)
            if not hurry:  # wake at the window's end, to hurry from then on
                wait_s = min(wait_s, (self.end_ns - now_ns) / 1e9)
            batches = cursor.read(timeout_s=wait_s, hurry=hurry)
            for batch in batches:
                if self._take(batch):
                    return True
            if cursor.closed:
                return self._end(self.end_reason if now_ns >= self.end_ns else "closed")
            # Once settled, read on only while the ring still holds a backlog from before the
            # end (a busy link whose reads are capped at a number of batches).
            caught_up = not batches or (len(batches[-1]) > 0
                                        and int(batches[-1].ts_ns[0]) >= self.end_ns)
            if now_ns >= settled_ns and caught_up:
                return self._end(self.end_reason)
        return self._end("stopped")

    def _hurries(self, now_ns: int) -> bool:
        """Whether a wait for the ring should end the capture's batch being gathered: past the
        window's end (only stragglers are awaited), or with fewer packets left to take than a
        batch holds (the next batch may end the capture). Not otherwise: a long window on a
        busy link would make every batch small, which costs the capture and every target CPU
        (the ring's hurried batches are at least `HURRY_GAP_MS` apart in any case)."""
        return now_ns >= self.end_ns or \
            self.request.packets - self.outcome.packets <= defaults.BATCH_PACKETS

    def _end(self, reason: str) -> bool:
        self.outcome.reason = reason
        return True

    def _mask(self, batch: Batch) -> np.ndarray:
        """The packets of a ring batch the window and the filter take."""
        ts = batch.ts_ns
        mask = (ts >= self.window_start_ns) & (ts < self.end_ns)
        if self.bpf is not None and mask.any():
            mask &= self.bpf.match(batch)
        return mask

    def _take(self, batch: Batch) -> bool:
        """Append the batch's selected packets within the caps; True when a cap is reached."""
        if not len(batch):
            return False
        return self._append(batch, np.flatnonzero(self._mask(batch)))

    def _append(self, batch: Batch, idx: np.ndarray) -> bool:
        """Append packets `idx` of `batch` (selected, in time order) within the caps; True
        when a cap is reached."""
        if not len(idx):
            return False
        reached = self._pcap.append(batch, idx)
        return self._end(reached) if reached else False
