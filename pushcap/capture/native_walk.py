"""The classic pcap record walk in C (`_pcapwalk.c`), called once per window through ctypes.

The numpy walk (`walk.record_starts` plus the header rewrite in `source.py`) is exact but costs
about 0.1-0.14 s of CPU per million packets in numpy calls; the loop in C costs a few ms and does
the header rewrite in the same pass. `make setup` builds the library with the system C compiler;
where it is missing (a plain `pip install`, no compiler) the numpy walk serves, with the same
result (tests/test_native_walk.py compares both with a sequential walk).
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_pcapwalk.so")
DISABLE_ENV = "PUSHCAP_NUMPY_WALK"  # set to 1 to use the numpy walk (comparisons, debugging)

_I64P = ctypes.POINTER(ctypes.c_int64)


class NativeWalk:
    """One loaded library; `walk` fills fresh arrays for each window (batches keep them)."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._walk = library.pcap_walk
        self._walk.restype = ctypes.c_int64
        self._walk.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_void_p, ctypes.c_void_p, _I64P]

    def walk(self, region: np.ndarray, big_endian: bool, nano: bool, max_records: int
             ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(records, end, offsets, ts_ns, caplen, wirelen) of the whole records at the start of
        `region` (at most `max_records`); their headers are rewritten in place to the batch
        format (little-endian, ns)."""
        if not region.flags.c_contiguous or region.dtype != np.uint8:
            raise ValueError("region must be a contiguous uint8 array")
        arrays = np.empty((4, max_records), dtype=np.int64)
        end = ctypes.c_int64(0)
        addr = arrays.__array_interface__["data"][0]
        row = max_records * 8
        count = self._walk(region.__array_interface__["data"][0], len(region), int(big_endian),
                           int(nano), max_records, addr, addr + row, addr + 2 * row,
                           addr + 3 * row, ctypes.byref(end))
        if count < max_records // 2:  # a short last window: do not hold the unused slots
            arrays = arrays[:, :count].copy()
        return count, end.value, arrays[0, :count], arrays[1, :count], arrays[2, :count], \
            arrays[3, :count]


_loaded: list[NativeWalk | None] = []


def native_walk() -> NativeWalk | None:
    """The C walk, or None where the library was not built (or PUSHCAP_NUMPY_WALK=1)."""
    if not _loaded:
        walker = None
        if os.environ.get(DISABLE_ENV, "") not in ("1", "yes", "true"):
            try:
                walker = NativeWalk(ctypes.CDLL(str(LIBRARY)))
            except OSError as exc:
                log.debug("event=native_walk_unavailable library=%s error=%r", LIBRARY, str(exc))
        _loaded.append(walker)
    return _loaded[0]
