"""Per-interface in-memory ring of batches, bounded by seconds and bytes.

One writer (the interface's reader thread) appends; any number of readers hold their own cursor
(a batch sequence number) and never block the writer. When the ring is full the oldest batches
go, whether or not a slow reader has read them: that reader finds out on its next read, which
reports how many packets it missed, so loss is visible and capture never stalls.
The byte bound counts the packets' record bytes (16-byte header each) plus the per-packet
numpy arrays (32 bytes a packet): what holding them actually costs.

A reader that waits for packets soon (a trigger past its window's end) reads with `hurry`: the
capture thread then ends the batch it is gathering at once instead of up to `COALESCE_MS` later
(`hurry_with`, capture/wake.py). Other readers (the targets' lanes) never hurry: gathering is
what keeps their per-batch cost low.

The ring also remembers the newest timestamp it ever evicted: a reader joining older packets
from elsewhere (a trigger reaching into the archive) learns from it, with `lookback()`, which
timestamps the ring may have lost some packets of.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from pushcap.capture.batch import Batch


class Ring:
    def __init__(self, name: str, linktype: int, snaplen: int, max_seconds: float,
                 max_bytes: int) -> None:
        self.name = name
        self.linktype = linktype
        self.snaplen = snaplen
        self.max_ns = int(max_seconds * 1e9)
        self.max_bytes = max_bytes
        # Entry: (batch, packet number of its first, wall-clock ns it was appended at, its last
        # timestamp, its largest timestamp, its memory_bytes); the figures are taken once, at
        # append, so eviction and reads cost no numpy call per batch (issue 19).
        self._entries: deque[tuple[Batch, int, int, int, int, int]] = deque()
        self._cond = threading.Condition()
        self._pokes = 0  # see poke()
        self._next_seq = 0
        self._packets_total = 0
        self._bytes = 0
        self._closed = False
        self.evicted_packets = 0
        self.evicted_newest_ns: int | None = None  # the largest timestamp evicted so far
        self._hurry: Callable[[], None] | None = None  # see hurry_with

    def hurry_with(self, hurry: Callable[[], None] | None) -> None:
        """What ends the capture's batch being gathered (`LiveSource.hurry`; None: nothing,
        e.g. between a failed handle and its reopening), called when a hurrying reader waits."""
        self._hurry = hurry

    def append(self, batch: Batch) -> None:
        count = len(batch)
        if count:  # the batch's largest, not its last: timestamps can step back
            ts = batch.ts_ns
            last_ns, largest_ns = int(ts[-1]), int(ts.max())
        else:
            last_ns = largest_ns = 0
        nbytes = batch.memory_bytes
        appended_ns = time.time_ns()
        with self._cond:
            self._entries.append((batch.with_seq(self._next_seq), self._packets_total,
                                  appended_ns, last_ns, largest_ns, nbytes))
            self._next_seq += 1
            self._packets_total += count
            self._bytes += nbytes
            self._evict(last_ns if count else 0)
            self._cond.notify_all()

    def _evict(self, newest_ns: int) -> None:
        entries = self._entries
        while len(entries) > 1:
            oldest, _, _, last_ns, largest_ns, nbytes = entries[0]
            count = len(oldest)
            too_big = self._bytes > self.max_bytes
            too_old = count and newest_ns - last_ns > self.max_ns
            if not (too_big or too_old):
                break
            entries.popleft()
            self._bytes -= nbytes
            self.evicted_packets += count
            if count and (self.evicted_newest_ns is None or largest_ns > self.evicted_newest_ns):
                self.evicted_newest_ns = largest_ns

    @property
    def packets_total(self) -> int:
        """Packets appended since the ring was made."""
        return self._packets_total

    def poke(self) -> None:
        """Wake every reader waiting for a batch now (a reload posted work for a lane that may
        be in a long quiet-link wait); they return with what there is, maybe nothing."""
        with self._cond:
            self._pokes += 1
            self._cond.notify_all()

    def close(self) -> None:
        """The source has ended: readers drain what is left and then see `closed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """The source has ended (readers may still have batches to read)."""
        return self._closed

    @property
    def head_seq(self) -> int:
        """Sequence number the next appended batch will get (a cursor starting 'now')."""
        with self._cond:
            return self._next_seq

    def span(self) -> tuple[int, int, int]:
        """(packets, bytes, nanoseconds) currently held."""
        with self._cond:
            if not self._entries:
                return 0, 0, 0
            first, first_no = self._entries[0][:2]
            last = self._entries[-1][0]
            packets = self._packets_total - first_no
            span_ns = int(last.ts_ns[-1] - first.ts_ns[0]) if len(first) and len(last) else 0
            return packets, self._bytes, span_ns

    def snapshot(self) -> list[Batch]:
        """Every batch held now, oldest first (for lookback reads)."""
        with self._cond:
            return [entry[0] for entry in self._entries]

    def lookback(self) -> tuple[list[Batch], int | None]:
        """`snapshot()` and, taken at the same instant, the newest timestamp evicted before
        it (None: nothing was): packets stamped after that were never lost by this ring."""
        with self._cond:
            return [entry[0] for entry in self._entries], self.evicted_newest_ns

    def cursor(self, from_start: bool = False) -> Cursor:
        """A reader's position: at the newest data (default) or at the oldest batch held."""
        with self._cond:
            if from_start and self._entries:
                batch, first_no = self._entries[0][:2]
                return Cursor(self, batch.seq, first_no)
            return Cursor(self, self._next_seq, self._packets_total)

    def _read(self, seq: int, timeout_s: float | None, max_batches: int, hurry: bool = False,
              pokes_seen: int | None = None
              ) -> tuple[list[tuple[Batch, int, int, int, int, int]], bool, int]:
        """(entries from `seq` on, whether the ring has ended and they are its last, the poke
        count now). A wait ends at a poke after `pokes_seen` (the count the reader's last read
        returned; None: a poke during this wait), so a poke that came while the reader was busy
        is not lost."""
        with self._cond:
            if seq >= self._next_seq and not self._closed and timeout_s:
                if hurry and self._hurry is not None:
                    self._hurry()
                pokes = self._pokes if pokes_seen is None else pokes_seen
                self._cond.wait_for(lambda: seq < self._next_seq or self._closed
                                    or self._pokes != pokes, timeout_s)
            entries: list[tuple[Batch, int, int, int, int, int]] = []
            if self._entries:
                oldest_seq = self._entries[0][0].seq
                start = max(seq, oldest_seq) - oldest_seq
                end = min(len(self._entries), start + max_batches)
                entries = [self._entries[i] for i in range(start, end)]
            last_seq = entries[-1][0].seq if entries else seq - 1
            return entries, self._closed and last_seq + 1 >= self._next_seq, self._pokes


class Cursor:
    """One reader's place in a ring, with the count of packets it lost to eviction."""

    def __init__(self, ring: Ring, seq: int, packet_no: int) -> None:
        self.ring = ring
        self.seq = seq
        self.packet_no = packet_no
        self.missed_packets = 0
        self.closed = False
        # The newest packet read so far: its timestamp, and when the ring got it (wall clock).
        self.newest_ts_ns: int | None = None
        self.newest_appended_ns = 0
        self._pokes_seen: int | None = None  # the ring's poke count at the last read

    def read(self, timeout_s: float | None = None, max_batches: int = 64,
             hurry: bool = False) -> list[Batch]:
        """The batches after this cursor (waiting up to timeout_s for one); advances it.
        `hurry`: if it has to wait, the capture ends the batch it is gathering at once (see
        the module's docstring)."""
        entries, self.closed, self._pokes_seen = self.ring._read(
            self.seq, timeout_s, max_batches, hurry, self._pokes_seen)
        if not entries:
            return []
        first_no = entries[0][1]
        if first_no > self.packet_no:
            self.missed_packets += first_no - self.packet_no
        last_batch, last_no = entries[-1][:2]
        for batch, _, appended_ns, last_ns, _, _ in reversed(entries):
            if len(batch):
                self.newest_ts_ns, self.newest_appended_ns = last_ns, appended_ns
                break
        self.seq = last_batch.seq + 1
        self.packet_no = last_no + len(last_batch)
        return [entry[0] for entry in entries]

    @property
    def caught_up(self) -> bool:
        """Whether this reader has read every batch appended so far."""
        return self.seq >= self.ring.head_seq
