"""An indexed query's candidate records checked and cut to the window in C
(`capture/csrc/querypick.c`), for select.py.

The cost of a daemon-served query's pick is the first touch of its records' pages (~2-8 µs
each on this VM after the archive was read through, no page fault: csrc/querypick.c says
why). numpy's way (a fancy index of every 16-byte header, then array arithmetic) pays those
touches one after another; the C loop reads the headers with the next ones prefetched and the
GIL released (ctypes), so the daemon's two pick threads touch pages at the same time, and it
touches every page of the kept records, so the filter and the socket write after it find them
warm. Measured in the daemon's way (11 files, 9,918 records, the archive read before each
query): ~9 ms less to the end of the picks (median of 10, 63 -> 55 ms). Where the library was
not built, select.py keeps numpy's way (the same result).
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from pushcap.capture.native import bind, buffer_address

_I64 = ctypes.c_int64
_P = ctypes.c_void_p


class NativePick:
    """The loaded function."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._function = library.query_pick
        self._function.restype = _I64
        self._function.argtypes = [_P, _I64, _P, _P, _I64, ctypes.c_int, _I64, _I64, _P, _P, _P]

    def pick(self, buffer, offsets: np.ndarray, caplen: np.ndarray, nano: bool, start_ns: int,
             end_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(positions kept, their ns timestamps, their wire lengths) of the records at
        `offsets` whose timestamps lie in [start_ns, end_ns); None when a record lies outside
        `buffer` or its header's caplen is not `caplen`'s (the index does not describe it)."""
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        caplen = np.ascontiguousarray(caplen, dtype=np.int64)
        address, size = buffer_address(buffer)
        out = np.empty((3, len(offsets)), dtype=np.int64)
        start_ns = max(min(start_ns, 2**63 - 1), -2**63)
        end_ns = max(min(end_ns, 2**63 - 1), -2**63)
        kept = self._function(address, size, offsets.ctypes.data, caplen.ctypes.data,
                              len(offsets), int(nano), start_ns, end_ns, out[0].ctypes.data,
                              out[1].ctypes.data, out[2].ctypes.data)
        if kept < 0:
            return None
        return out[0, :kept], out[1, :kept], out[2, :kept]


@functools.cache
def native_pick() -> NativePick | None:
    """The C function, or None where the library was not built (see capture/native.py) or
    predates it (`make setup` rebuilds it)."""
    return bind(NativePick)
