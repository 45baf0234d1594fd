"""One triggered capture of one interface, served from that interface's ring.

The ring already holds what the interface saw, so a capture is a reader: it takes the batches
from before the request that `before` (or `start`) asks for, then follows new batches through
a cursor until `packets`, `bytes`, `timeout` or `duration` ends it. Selection (time window, BPF)
and truncation to `snap` are done per batch with numpy and one `bytes.join`, never per packet in
Python. The pcap is assembled in memory, as pcapdaemon does: nothing touches the filesystem here.

The window is decided by packet timestamps, never by when a batch reached the ring: a window
[start, end) holds exactly the packets stamped inside it. Its end is the first of two clocks:
the deadline (`end`, or the live start + `duration`) and the timeout (`timeout` after the live
start or after the last matching packet, so a capture ends at the first such gap between matches).
Packets reach the ring late (libpcap holds a quiet link's packets up to its poll timeout, the
engine then waits `COALESCE_MS` for more), so a window that ends by either clock is read on for
that long after its end (`late_s`) before it is closed; a match stamped before a timeout's end
that arrives meanwhile moves the timeout on, as it would have had it come in time.

`duration` bounds the live part: it counts from the request, or from `start` when that lies in
the future. A past `start`, like `before`, only reaches back into the ring: `start` = now - 30
with `duration` 10 is the window [now - 30, now + 10). pcapdaemon's message has no `start` and
no lookback: its capture begins at the request, and so does `duration` here unless `start` lies
ahead, so a pcapdaemon request means the same on both.

A lookback the ring cannot serve is said so in `notes`, never silently shortened: `before` (or a
past `start`) beyond `[ring] max_seconds` is capped to it, and a window reaching past the oldest
packet of a ring that filled `[ring] max_bytes` first is reported as short.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from pushcap import defaults
from pushcap.capture.batch import (
    PCAP_FILE_HEADER_BYTES,
    RECORD_HEADER_BYTES,
    Batch,
    build_records,
    pcap_file_header,
)
from pushcap.capture.bpf import BpfFilter
from pushcap.capture.ring import Cursor, Ring
from pushcap.trigger.message import CaptureRequest

POLL_S = 0.2  # longest wait on the ring before the clocks (timeout, duration, stop) are checked
LATE_SLACK_S = 0.1  # on top of poll + coalesce: the kernel's block timer, thread scheduling


def ring_latency_s(poll_timeout_ms: float = defaults.POLL_TIMEOUT_MS) -> float:
    """How long after its timestamp a packet may still be on its way into the ring."""
    return (poll_timeout_ms + defaults.COALESCE_MS) / 1000 + LATE_SLACK_S


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
                 stop: threading.Event | None = None, late_s: float | None = None) -> None:
        self.request = request
        self.ring = ring
        self.stop = stop or threading.Event()
        self.late_ns = int((ring_latency_s() if late_s is None else late_s) * 1e9)
        self.timeout_ns = int(request.timeout_s * 1e9)
        # Not compile_shared(): its cache lives forever, and expressions from the network are
        # unbounded in number. Compiling costs a millisecond once per capture.
        self.bpf: BpfFilter | None = (BpfFilter(request.bpf, ring.linktype, ring.snaplen)
                                      if request.bpf else None)
        snap = min(request.snap, ring.snaplen) if ring.snaplen else request.snap
        self.outcome = CaptureOutcome(interface, alias, ring.linktype, snap)
        self._bytes = PCAP_FILE_HEADER_BYTES
        req = request
        self.window_start_ns = self._window_start(req)
        # The live part starts at the request, or at `start` when that lies in the future.
        live_start_ns = max(req.received_ns, req.start_ns or 0)
        deadline_ns = live_start_ns + int(req.duration_s * 1e9)
        self.deadline_ns = min(deadline_ns, req.end_ns) if req.end_ns is not None else deadline_ns
        self.window_end_ns = req.end_ns
        self.outcome.window_start_ns = self.window_start_ns
        self.outcome.window_end_ns = self.deadline_ns
        self._quiet_since_ns = live_start_ns  # the timeout counts from here or the last match

    def _window_start(self, req: CaptureRequest) -> int:
        """`start`, or the request minus `before`; a lookback longer than the ring keeps is
        capped to `[ring] max_seconds` and noted, so the publisher knows what it got."""
        keep_s = self.ring.max_ns / 1e9
        if req.start_ns is not None:
            if req.received_ns - req.start_ns > self.ring.max_ns:
                self.outcome.notes.append(
                    f"start is {(req.received_ns - req.start_ns) / 1e9:g} s before the request "
                    f"but the ring keeps {keep_s:g} s ([ring] max_seconds): the window starts at "
                    "most that far back")
            return max(req.start_ns, req.received_ns - self.ring.max_ns)
        before_s = req.before_s
        if before_s > keep_s:
            self.outcome.notes.append(f"before {before_s:g} s capped to {keep_s:g} s: the ring "
                                      "keeps no more ([ring] max_seconds)")
            before_s = keep_s
        if req.before_s:
            self.outcome.before_s = before_s
        return req.received_ns - int(before_s * 1e9)

    def run(self) -> CaptureOutcome:
        started_ns = time.time_ns()
        cursor = self.ring.cursor()  # first, so nothing appended meanwhile falls between the two
        if not self._lookback(cursor.seq):
            end_ns, reason = self._clock_end()
            if end_ns + self.late_ns <= started_ns:
                self._end(reason)  # wholly past: the ring had all of it
            else:
                self._follow(cursor)
        self.outcome.missed_packets = cursor.missed_packets
        return self.outcome

    def _lookback(self, live_seq: int) -> bool:
        """Batches already in the ring (before the cursor); True when a cap was reached."""
        # Even without `before`, packets that arrived between the request and this job's start
        # (a queued request) are in the ring already: the window starts at the request.
        batches = self.ring.snapshot()
        self._note_short_ring(batches)
        for batch in batches:
            if batch.seq >= live_seq:
                break
            if len(batch) and int(batch.ts_ns[-1]) < self.window_start_ns:
                continue
            if self._take(batch):
                return True
        return False

    def _note_short_ring(self, batches: list[Batch]) -> None:
        """Note a window that starts before the oldest packet of a ring that filled its
        `max_bytes` before its `max_seconds`: what it dropped for space is missing here.

        The ring does not record what it dropped, so "full" is read from what it holds: having
        evicted, it still holds over half its `max_bytes`. Age eviction on a quiet link leaves
        it nearly empty, and a window reaching past its oldest packet then lost nothing.
        """
        held = [batch for batch in batches if len(batch)]
        if not held or not self.ring.evicted_packets:
            return
        oldest_ns = int(held[0].ts_ns[0])
        if oldest_ns <= self.window_start_ns:
            return
        if sum(batch.memory_bytes for batch in batches) * 2 <= self.ring.max_bytes:
            return
        received_ns = self.request.received_ns
        self.outcome.notes.append(
            f"lookback short: the window starts {_relative(self.window_start_ns, received_ns)} "
            f"but the ring held packets only from {_relative(oldest_ns, received_ns)}; it was "
            f"full ([ring] max_bytes {self.ring.max_bytes} before max_seconds "
            f"{self.ring.max_ns / 1e9:g} s) and had dropped older ones")

    def _deadline_reason(self) -> str:
        return "window" if self.deadline_ns == self.window_end_ns else "duration"

    def _clock_end(self) -> tuple[int, str]:
        """Where the window ends as things stand, and the reason it would give: the deadline,
        or the timeout after the live start or the last match when that comes first."""
        timeout_end_ns = self._quiet_since_ns + self.timeout_ns
        if timeout_end_ns < self.deadline_ns:
            return timeout_end_ns, "timeout"
        return self.deadline_ns, self._deadline_reason()

    def _follow(self, cursor: Cursor) -> bool:
        while True:
            if self.stop.is_set():
                return self._end("stopped")
            end_ns, _ = self._clock_end()
            now_ns = time.time_ns()
            if now_ns >= end_ns:
                if self._settle(cursor):
                    return True
                continue  # a late match moved the timeout on
            for batch in cursor.read(timeout_s=max(min(POLL_S, (end_ns - now_ns) / 1e9), 0.001)):
                if self._take(batch):
                    return True
            if cursor.closed:
                return self._end("closed")

    def _settle(self, cursor: Cursor) -> bool:
        """Past the window's end by the clock: read on for `late_s`, while packets stamped before
        it may still be on their way into the ring (`_take` drops those stamped after it).
        False when a late match moved the timeout past now: the capture goes on."""
        while not self.stop.is_set():
            end_ns, reason = self._clock_end()
            now_ns = time.time_ns()
            if now_ns < end_ns:
                return False
            wait_s = (end_ns + self.late_ns - now_ns) / 1e9
            batches = cursor.read(timeout_s=max(wait_s, 0.0))
            for batch in batches:
                if self._take(batch):
                    return True
            if self._clock_end()[0] != end_ns:
                continue
            # Once settled, read on only while the ring still holds a backlog from before the
            # end (a busy link whose reads are capped at a number of batches).
            caught_up = not batches or (len(batches[-1]) > 0
                                        and int(batches[-1].ts_ns[0]) >= end_ns)
            if cursor.closed or (wait_s <= 0 and caught_up):
                return self._end(reason)
        return self._end("stopped")

    def _end(self, reason: str) -> bool:
        self.outcome.reason = reason
        if reason == "timeout":  # the window closed at the timeout, not at the deadline
            self.outcome.window_end_ns = self._quiet_since_ns + self.timeout_ns
        return True

    def _take(self, batch: Batch) -> bool:
        """Append the batch's selected packets within the caps; True when a cap is reached."""
        if not len(batch):
            return False
        ts = batch.ts_ns
        mask = (ts >= self.window_start_ns) & (ts < self.deadline_ns)
        if not mask.any():
            return False
        if self.bpf is not None:
            mask &= self.bpf.match(batch)
        idx = np.flatnonzero(mask)
        if not len(idx):
            return False
        out = self.outcome
        reached = ""
        cut = self._timeout_cut(ts[idx])
        if cut < len(idx):
            idx, reached = idx[:cut], "timeout"
        room = self.request.packets - out.packets
        if len(idx) >= room:
            idx, reached = idx[:room], "packets"
        caplen = np.minimum(batch.caplen[idx], out.snap)
        sizes = np.cumsum(caplen + RECORD_HEADER_BYTES)
        fits = int(np.searchsorted(sizes, self.request.max_bytes - self._bytes, side="right"))
        if fits < len(idx):
            # The file never exceeds `bytes`, unless its first packet alone does.
            fits = max(fits, 1 if out.packets == 0 else 0)
            idx, caplen, reached = idx[:fits], caplen[:fits], "bytes"
        if len(idx):
            records, _ = build_records(ts[idx], caplen, batch.wirelen[idx], batch.records,
                                       batch.offsets[idx] + RECORD_HEADER_BYTES)
            out.parts.append(records)
            out.packets += len(idx)
            self._bytes += len(records)
            last_ts = int(ts[idx[-1]])
            out.first_ts_ns = out.first_ts_ns if out.first_ts_ns is not None else int(ts[idx[0]])
            out.last_ts_ns = last_ts
            self._quiet_since_ns = max(self._quiet_since_ns, last_ts)
        if reached:
            return self._end(reached)
        return False

    def _timeout_cut(self, ts: np.ndarray) -> int:
        """How many of these matches come before the first gap of `timeout` (counted from the
        live start or the last match): the timeout decided by timestamps, not by the clock of
        the read, so a backlog read at once is cut where the link really went quiet."""
        prev = np.maximum.accumulate(np.concatenate(([self._quiet_since_ns], ts[:-1])))
        over = np.flatnonzero(ts - prev >= self.timeout_ns)
        return int(over[0]) if len(over) else len(ts)


def _relative(ts_ns: int, received_ns: int) -> str:
    """A moment as seconds before or after the request, for notes a person reads."""
    delta_s = round((received_ns - ts_ns) / 1e9, 3)
    if delta_s == 0:
        return "at the request"
    return (f"{delta_s:g} s before the request" if delta_s > 0
            else f"{-delta_s:g} s after the request")
