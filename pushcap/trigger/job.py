"""One triggered capture of one interface, served from that interface's ring.

The ring already holds what the interface saw, so a capture is a reader: it takes the batches
from before the request that `before` (or `start`) asks for, then follows new batches through
a cursor until `packets`, `bytes`, `timeout` or `duration` ends it. Selection (time window, BPF)
and truncation to `snap` are done per batch with numpy and one `bytes.join`, never per packet in
Python. The pcap is assembled in memory, as pcapdaemon does: nothing touches the filesystem here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

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
                 stop: threading.Event | None = None) -> None:
        self.request = request
        self.ring = ring
        self.stop = stop or threading.Event()
        # Not compile_shared(): its cache lives forever, and expressions from the network are
        # unbounded in number. Compiling costs a millisecond once per capture.
        self.bpf: BpfFilter | None = (BpfFilter(request.bpf, ring.linktype, ring.snaplen)
                                      if request.bpf else None)
        snap = min(request.snap, ring.snaplen) if ring.snaplen else request.snap
        self.outcome = CaptureOutcome(interface, alias, ring.linktype, snap)
        self._bytes = PCAP_FILE_HEADER_BYTES
        req = request
        self.window_start_ns = (req.start_ns if req.start_ns is not None
                                else req.received_ns - int(req.before_s * 1e9))
        # The live part starts at the request, or at `start` when that lies in the future.
        live_start_ns = max(req.received_ns, req.start_ns or 0)
        deadline_ns = live_start_ns + int(req.duration_s * 1e9)
        self.deadline_ns = min(deadline_ns, req.end_ns) if req.end_ns is not None else deadline_ns
        self.window_end_ns = req.end_ns
        self._quiet_since_ns = live_start_ns  # the timeout counts from here or the last match

    def run(self) -> CaptureOutcome:
        cursor = self.ring.cursor()  # first, so nothing appended meanwhile falls between the two
        if not self._lookback(cursor.seq):
            self._follow(cursor)
        self.outcome.missed_packets = cursor.missed_packets
        return self.outcome

    def _lookback(self, live_seq: int) -> bool:
        """Batches already in the ring (before the cursor); True when a cap was reached."""
        # Even without `before`, packets that arrived between the request and this job's start
        # (a queued request) are in the ring already: the window starts at the request.
        for batch in self.ring.snapshot():
            if batch.seq >= live_seq:
                break
            if len(batch) and int(batch.ts_ns[-1]) < self.window_start_ns:
                continue
            if self._take(batch):
                return True
        if self.window_end_ns is not None and self.window_end_ns <= time.time_ns():
            self.outcome.reason = "window"  # wholly in the past: the ring had all of it
            return True
        return False

    def _follow(self, cursor: Cursor) -> bool:
        while True:
            now_ns = time.time_ns()
            if self.stop.is_set():
                return self._end("stopped")
            if now_ns >= self.deadline_ns:
                return self._end("window" if self.deadline_ns == self.window_end_ns
                                 else "duration")
            if now_ns - self._quiet_since_ns >= self.request.timeout_s * 1e9:
                return self._end("timeout")
            wait_s = min(POLL_S, (self.deadline_ns - now_ns) / 1e9,
                         self.request.timeout_s - (now_ns - self._quiet_since_ns) / 1e9)
            for batch in cursor.read(timeout_s=max(wait_s, 0.001)):
                if self._take(batch):
                    return True
            if cursor.closed:
                return self._end("closed")

    def _end(self, reason: str) -> bool:
        self.outcome.reason = reason
        return True

    def _take(self, batch: Batch) -> bool:
        """Append the batch's selected packets within the caps; True when a cap is reached."""
        if not len(batch):
            return False
        ts = batch.ts_ns
        mask = ts >= self.window_start_ns
        if self.window_end_ns is not None:
            mask &= ts < self.window_end_ns
        if not mask.any():
            return False
        if self.bpf is not None:
            mask &= self.bpf.match(batch)
        idx = np.flatnonzero(mask)
        if not len(idx):
            return False
        out = self.outcome
        reached = ""
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
            out.reason = reached
            return True
        return False
