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
