"""Split points, checked against a plain per-packet reference written here."""

from __future__ import annotations

import numpy as np
import pytest

from pushcap.push.split import byte_segments, time_segments

HEADER = 24


def reference_bytes(sizes: list[int], used: int, limit: int) -> list[list[int]]:
    """Greedy fill, one packet at a time: the obvious algorithm the vectorized one must match."""
    files: list[list[int]] = [] if used == 0 else [[]]
    size = used
    for i, s in enumerate(sizes):
        if not files or (size + s > limit and size > HEADER):
            files.append([])
            size = HEADER
        files[-1].append(i)
        size += s
    return files


@pytest.mark.parametrize("seed", range(20))
def test_byte_segments_match_greedy_reference(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(16 + 60, 16 + 1514, size=int(rng.integers(1, 300)))
    limit = int(rng.integers(1000, 20000))
    used = int(rng.choice([0, HEADER, limit // 2]))
    got: list[list[int]] = [] if used == 0 else [[]]
    for start, end, new_file in byte_segments(sizes, used, limit):
        if new_file:
            got.append([])
        got[-1].extend(range(start, end))
    assert got == reference_bytes(sizes.tolist(), used, limit)


def test_oversize_packet_gets_its_own_file():
    assert byte_segments(np.array([100, 5000, 100]), 0, 1000) == [
        (0, 1, True), (1, 2, True), (2, 3, True)]


def test_time_segments_are_aligned_and_never_go_back():
    ts = np.array([5, 59, 60, 61, 30, 125, 119])  # 30 and 119 arrive late
    assert time_segments(ts, 60, 0) == [(0, 2, 0), (2, 5, 1), (5, 7, 2)]
    assert time_segments(np.array([10, 70]), 60, 1) == [(0, 2, 1)]
