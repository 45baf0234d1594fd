"""Where a target's selected packets are cut into files, computed per batch with numpy (where
the C library is not built; `selection.py` otherwise does it in C, with `byte_runs` too).

Time split: a packet belongs to window ts // split_ns (windows aligned to the epoch). Windows only
move forward: a packet stamped earlier than the open window (clock step, reordering) stays in the
open file rather than reopening a finished one. Byte split: greedy filling, a file never exceeds
the limit unless a single packet alone does.
"""

from __future__ import annotations

from collections.abc import Callable

from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:  # numpy is imported where it is used: `byte_runs` serves the C path too
    import numpy as np


def time_segments(ts_ns: np.ndarray, split_ns: int,
                  floor_window: int) -> list[tuple[int, int, int]]:
    """(start, end, window) runs of `ts_ns`; no window below `floor_window`."""
    import numpy as np

    windows = np.maximum.accumulate(np.maximum(ts_ns // split_ns, floor_window))
    cuts = np.flatnonzero(np.diff(windows)) + 1
    starts = [0, *cuts.tolist()]
    ends = [*cuts.tolist(), len(ts_ns)]
    return [(a, b, int(windows[a])) for a, b in zip(starts, ends, strict=True)]


def byte_segments(record_bytes: np.ndarray, used_bytes: int,
                  max_bytes: int) -> list[tuple[int, int, bool]]:
    """(start, end, new_file) runs for packets of `record_bytes` each (record header included).

    `used_bytes` is the size of the open file (0 when none is open). new_file says the run starts a
    fresh file.
    """
    import numpy as np

    total = np.cumsum(record_bytes)

    def fit_end(pos: int, budget: int) -> int:
        base = int(total[pos - 1]) if pos else 0
        return int(np.searchsorted(total, base + budget, side="right"))

    return byte_runs(len(record_bytes), used_bytes, max_bytes, fit_end)


def byte_runs(count: int, used_bytes: int, max_bytes: int,
              fit_end: Callable[[int, int], int]) -> list[tuple[int, int, bool]]:
    """`byte_segments` for `count` packets, given `fit_end(pos, budget)`: the largest end such
    that packets [pos, end) take at most `budget` bytes."""
    segments: list[tuple[int, int, bool]] = []
    pos, new_file = 0, used_bytes == 0
    used = used_bytes or PCAP_FILE_HEADER_BYTES
    while pos < count:
        end = fit_end(pos, max_bytes - used)
        if end == pos:
            if used > PCAP_FILE_HEADER_BYTES:  # no room left: next file
                new_file, used = True, PCAP_FILE_HEADER_BYTES
                continue
            end = pos + 1  # one packet larger than the limit gets a file of its own
        segments.append((pos, end, new_file))
        pos, new_file, used = end, True, PCAP_FILE_HEADER_BYTES  # the next run starts a file
    return segments
