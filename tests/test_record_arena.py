"""The record arenas live capture writes batches into (pushcap/capture/record_arena.py)."""

from __future__ import annotations

import gc

from pushcap.capture.record_arena import FREE_ARENAS, RecordArena


def _fill(arena: RecordArena, size: int) -> None:
    """Ask for a whole arena, so the one before it retires."""
    arena.room(size)
    arena.commit(size)


def test_many_free_arenas_are_reused_and_the_spares_let_go() -> None:
    """Several retired arenas all free at once (the ring let go of many batches): one is used
    again and the spares beyond FREE_ARENAS are dropped. This raised "truth value of an array
    ... is ambiguous" (list.remove compared the arrays element by element) and ended the
    capture thread at 100k packets/s."""
    size = 4096
    arena = RecordArena(size)
    held = []
    for _ in range(FREE_ARENAS + 4):
        _fill(arena, size)
        held.append(arena._current)
    del held
    gc.collect()
    before = {id(a) for a in arena._retired}
    assert len(before) >= FREE_ARENAS + 3
    arena.room(size)  # a full current arena: the next comes from the free ones
    reused = arena._current
    assert id(reused) in before
    assert len(arena._retired) == FREE_ARENAS  # the spares (and the reused one) are gone
    assert all(a is not reused for a in arena._retired)


def test_an_arena_a_batch_still_holds_is_not_reused() -> None:
    size = 4096
    arena = RecordArena(size)
    arena.room(size)
    view = arena.commit(size)  # a batch's records: a view into the first arena
    first = arena._current
    _fill(arena, size)
    _fill(arena, size)
    assert arena._current is not first
    assert view.base is first


def _huge_kib(array) -> int:
    """AnonHugePages of the mappings that hold `array` (/proc/self/smaps; madvise may have
    split its memory into several)."""
    first, last = array.ctypes.data, array.ctypes.data + array.nbytes
    total, inside = 0, False
    for line in open("/proc/self/smaps").read().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start < last and first < end
        elif inside and line.startswith("AnonHugePages:"):
            total += int(line.split()[1])
    return total


def test_a_fresh_arena_never_takes_transparent_huge_pages() -> None:
    """numpy advises huge pages for large buffers; an arena's first writes on the capture
    thread must not wait for the kernel to find 2 MiB at once (packets lost at 600k pps)."""
    import pathlib

    import numpy as np
    import pytest

    from pushcap.capture.record_arena import ARENA_BYTES, fresh_arena

    mode = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not mode.exists() or "[never]" in mode.read_text():
        pytest.skip("no transparent huge pages on this machine")
    control = np.empty(ARENA_BYTES, dtype=np.uint8)  # numpy's own large buffer
    control[:] = 1
    arena = fresh_arena(ARENA_BYTES)
    arena[:] = 1
    if _huge_kib(control) == 0:  # after a long run memory is fragmented: THP falls back
        pytest.skip("the kernel gave numpy's own buffer no huge page either: nothing to compare")
    assert _huge_kib(arena) == 0  # while numpy's buffer, just mapped the same way, has them
