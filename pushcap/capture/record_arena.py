"""Where live batches' records are written: big buffers carved in order and used again.

A live batch's records live in the ring until it evicts them, seconds to a minute later, so
each batch needs memory of its own. Allocated per batch, that memory came fresh from the kernel
every time (glibc maps a large buffer on its own and unmaps it on free): a page fault and a
zeroed page for every 4 KiB captured, about a quarter of live capture's CPU at 300k packets/s
(perf, issue 19). Here records are written into arenas of ARENA_BYTES carved one after the
other; a batch's records are a view into its arena, and an arena whose every batch the ring
has dropped (nothing holds a view of it any more) is written again, its pages still mapped.
Reads that follow each other land side by side, so the pieces of one batch join without a copy.

Memory: what the ring holds, plus at most the arena being filled and FREE_ARENAS spare ones,
plus the unfilled tail of an arena a batch still holds (a read never spans two arenas).
"""

from __future__ import annotations

import contextlib
import mmap
import sys

import numpy as np

ARENA_BYTES = 16 * 1024 * 1024
FREE_ARENAS = 2


class RecordArena:
    """Hands out room to write records in, and the written part as a view. Used by one thread
    (an interface's capture thread)."""

    def __init__(self, arena_bytes: int = ARENA_BYTES) -> None:
        self.arena_bytes = arena_bytes
        self._current: np.ndarray | None = None
        self._position = 0
        self._retired: list[np.ndarray] = []  # filled arenas, some still held by batches

    def room(self, at_least: int) -> tuple[np.ndarray, int, int]:
        """(arena, where to write, bytes free there), at least `at_least` bytes free (a
        larger request than an arena gets a buffer of its own)."""
        if self._current is None or self.arena_bytes - self._position < at_least:
            self._next_arena(at_least)
        return self._current, self._position, len(self._current) - self._position

    def commit(self, used: int) -> np.ndarray:
        """The `used` bytes just written at the position `room` gave, as a view."""
        start = self._position
        self._position += used
        return self._current[start:self._position]

    @staticmethod
    def joined(views: list[np.ndarray]) -> np.ndarray | None:
        """`views` as one view when they lie one after the other in one arena (reads that
        followed each other), else None."""
        base = views[0].base
        address = _address(views[0])
        for view in views:
            if view.base is not base or _address(view) != address:
                return None
            address += len(view)
        start = _address(views[0]) - _address(base)
        return base[start:start + address - _address(views[0])]

    def joined_or_copied(self, views: list[np.ndarray]) -> np.ndarray:
        """`views` as one buffer: a view where they adjoin, else copied into the arena (not
        into fresh memory: that is what the arena avoids)."""
        joined = self.joined(views)
        if joined is not None:
            return joined
        total = sum(len(view) for view in views)
        arena, start, _ = self.room(total)
        position = start
        for view in views:
            arena[position:position + len(view)] = view
            position += len(view)
        return self.commit(total)

    def _next_arena(self, at_least: int) -> None:
        if self._current is not None:
            self._retired.append(self._current)
        self._current, self._position = self._reusable(max(at_least, self.arena_bytes)), 0

    def _reusable(self, size: int) -> np.ndarray:
        """A retired arena nobody holds any more (its pages are still mapped), else a new one;
        spares beyond FREE_ARENAS are let go."""
        free = [a for a in self._retired if sys.getrefcount(a) <= 3 and len(a) >= size]
        # 3: the list, `a`, getrefcount's argument: no batch holds a view of it
        if not free:
            return fresh_arena(size)
        # by identity: list.remove compares arrays with ==, element by element (it raised
        # "truth value ... ambiguous" and ended the capture thread when a third arena was free)
        let_go = {id(a) for a in free[FREE_ARENAS:]} | {id(free[0])}
        self._retired = [a for a in self._retired if id(a) not in let_go]
        return free[0]


def fresh_arena(size: int) -> np.ndarray:
    """New memory for an arena, mapped on its own and advised against transparent huge pages.
    numpy advises huge pages for any buffer of 4 MiB or more (np.empty would), and the capture
    thread's first write to each 2 MiB then waits for the kernel to find, compact or (on a VM)
    have the host back a whole huge page. At 600k packets/s, with the ring still filling, that
    lost packets in 9 of 32 runs on the 2-core VM (a stall longer than the 64 MiB kernel buffer
    lasts, ~0.2 s; in one set of ten, 5 runs lost 2,366-13,150 packets), against 0 of 24 with
    4 KiB pages and 0 of 12 with these arenas, which cost no more CPU (median 0.6 against 0.65
    µs a packet; issue 19)."""
    region = mmap.mmap(-1, size)
    with contextlib.suppress(AttributeError, OSError):  # no THP in this kernel: nothing to do
        region.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(region, dtype=np.uint8)


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]
