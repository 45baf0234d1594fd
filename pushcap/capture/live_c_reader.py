"""A live handle read through the C capture (native_live.py), batch by batch (live.py).

libpcap's callback writes each packet, behind its record header, straight into the batch's own
buffer, and a batch's wait, reads and coalescing are one C call without the GIL: the capture
thread pays one call per batch, not a select, a sleep and several reads.
"""

from __future__ import annotations

import numpy as np

from pushcap import defaults
from pushcap.capture.batch import Batch
from pushcap.capture.live_open import nap_us
from pushcap.capture.native_live import NativeLiveHandle
from pushcap.capture.source import SourceError
from pushcap.capture.wake import Wake


class CLiveReader:
    """One C capture handle read for `LiveSource`. What it reads comes as pieces of (records,
    columns 4 x n: offset, ts_ns, caplen, wirelen); `batch` makes them one Batch. The first
    error libpcap reports is kept in `error`, for the source to raise after the packets read
    before it (packets taken from libpcap exist nowhere else)."""

    def __init__(self, name: str, handle: NativeLiveHandle, batch_packets: int,
                 poll_timeout_ms: int, buffer_bytes: int, linktype: int, snaplen: int,
                 wake: Wake, stopped: Wake) -> None:
        """`wake` ends the batch being gathered (a waiting trigger: see `LiveSource.hurry`);
        `stopped` ends the long wait of a quiet link (`LiveSource.stop`)."""
        self.name = name
        self.fd = handle.fd
        self.batch_packets = batch_packets
        self.linktype = linktype
        self.snaplen = snaplen
        self.error: SourceError | None = None
        self._handle = handle
        # the wait for a batch's first packets: libpcap's block timer hands them over within
        # the poll timeout, and `stop` ends it (set_idle), so it may be long
        self._idle_wait_ms = max(int(poll_timeout_ms), defaults.IDLE_WAIT_MS)
        handle.set_wake(wake.fd, defaults.HURRY_GAP_MS * 1000)
        handle.set_idle(stopped.fd, nap_us(buffer_bytes))

    def turn(self, full: bool) -> tuple[list, int, bool]:
        """`LiveSource.batches`' turn: the wait for packets (none when the last turn stopped
        `full`), the reads and the coalescing wait all happen in one call that holds no GIL
        (`NativeLiveHandle.gather`). (the pieces, their packets, whether it stopped full: read
        on at once)."""
        records, columns, error, full = self._handle.gather(
            self.batch_packets, _read_bytes(self.batch_packets),
            defaults.LIVE_BATCH_HEADROOM_BYTES, -1 if full else self._idle_wait_ms,
            defaults.COALESCE_MS * 1000, self.batch_packets)
        if error is not None and self.error is None:
            self.error = SourceError(f"interface {self.name}: {error}")
        packets = columns.shape[1]
        return ([(records, columns)] if packets else []), packets, full

    def drain(self, limit: int) -> list:
        """Pieces read until libpcap has nothing ready or `limit` packets are taken, without
        waiting (a read also ends when its buffer is full: the packet that did not fit comes
        first in the next)."""
        pieces: list = []
        while limit > 0:
            headroom = 0 if pieces else defaults.LIVE_BATCH_HEADROOM_BYTES
            records, columns, error = self._handle.read(limit, _read_bytes(limit), headroom)
            count = columns.shape[1]
            if count:
                pieces.append((records, columns))
                limit -= count
            if error is not None:
                if self.error is None:
                    self.error = SourceError(f"interface {self.name}: {error}")
                break
            if not count:
                break
        return pieces

    def batch(self, pieces: list) -> Batch:
        """The pieces as one Batch: a single piece as it is, several (a trickle gathered over
        the coalescing wait) joined (without a copy where they lie side by side in the arena,
        as reads that follow each other do), offsets moved to the join."""
        if len(pieces) == 1:
            records, columns = pieces[0]
        else:
            records = self._handle.arena.joined_or_copied([r for r, _ in pieces])
            bases = np.cumsum([0] + [len(r) for r, _ in pieces[:-1]])
            columns = np.concatenate([c for _, c in pieces], axis=1)
            columns[0] += np.repeat(bases, [c.shape[1] for _, c in pieces])
        return Batch(records, columns[0], columns[1], columns[2], columns[3], self.linktype,
                     self.snaplen)

    def stats(self) -> tuple[int, int, int]:
        """libpcap's (received, dropped by the kernel, dropped by the interface)."""
        return self._handle.stats()

    def close(self) -> None:
        self._handle.close()


def _read_bytes(limit: int) -> int:
    """A read's buffer: room for `limit` packets of about a full Ethernet frame, bounded (the
    unused rest is given back at once: NativeLiveHandle.read)."""
    return min(limit * defaults.LIVE_READ_BYTES_PER_PACKET, defaults.LIVE_READ_MAX_BYTES)
