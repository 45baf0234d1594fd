"""The classic pcap record walk in C (`csrc/pcapwalk.c`), called through ctypes as a window is read.

The numpy walk (`walk.record_starts` plus the header rewrite in `source.py`) is exact but costs
about 0.1-0.14 s of CPU per million packets in numpy calls; the loop in C costs a few ms and does
a big-endian file's header rewrite in the same pass. A big-endian file is read chunk by chunk and
each chunk walked right after it is read, while it is still in the CPU's cache (walking a whole
5 MB window afterwards costs 2-3x as much); a little-endian file is mapped and walked in place. Where the library is missing (`native`) the
numpy walk serves, with the same result (tests/test_native_walk.py compares both with a
sequential walk).
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from pushcap.capture.native import native_library

CHUNK_BYTES = 1 << 20  # read and walked at a time: stays in a core's cache in between
# libpcap's MAXIMUM_SNAPLEN: a record claiming more is corrupt (tcpdump -r stops there with
# "invalid packet capture length"), and copied into an output file it would make that file
# unreadable to libpcap. The walk stops before such a record; source.py says where it is.
MAX_RECORD_CAPLEN = 262144

_I64 = ctypes.c_int64


class WindowWalk:
    """The walk of one window (a buffer being filled from its start): `advance` after each
    read, then `result`. The per-record arrays are fresh for every window (batches keep them)."""

    def __init__(self, function, region: np.ndarray, big_endian: bool, nano: bool,
                 max_records: int) -> None:
        if not region.flags.c_contiguous or region.dtype != np.uint8:
            raise ValueError("region must be a contiguous uint8 array")
        if big_endian and not region.flags.writeable:
            raise ValueError("a big-endian region must be writable")  # C rewrites its headers
        self._function = function
        self._region = region
        self._address = region.__array_interface__["data"][0]
        self._flags = (int(big_endian), int(nano))
        self._max = max_records
        self._arrays = np.empty((4, max_records), dtype=np.int64)
        self._rows = [self._arrays.__array_interface__["data"][0] + i * max_records * 8
                      for i in range(4)]
        self._end = _I64(0)
        self.count = 0

    def advance(self, available: int) -> bool:
        """Walk on through the first `available` bytes; True once `max_records` are found."""
        if not 0 <= available <= len(self._region):
            raise ValueError(f"{available} bytes available in a region of {len(self._region)}")
        self.count = self._function(self._address, available, self._end.value, self.count,
                                    *self._flags, self._max, *self._rows,
                                    ctypes.byref(self._end), MAX_RECORD_CAPLEN)
        return self.count >= self._max

    def result(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(end, offsets, ts_ns, caplen, wirelen) of the whole records found; big-endian
        headers are rewritten in place to little-endian."""
        count, arrays = self.count, self._arrays
        if count < self._max // 2:  # a short last window: do not hold the unused slots
            arrays = arrays[:, :count].copy()
        return (self._end.value, arrays[0, :count], arrays[1, :count], arrays[2, :count],
                arrays[3, :count])


class NativeWalk:
    """The loaded library."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._function = library.pcap_walk
        self._function.restype = _I64
        self._function.argtypes = [ctypes.c_void_p, _I64, _I64, _I64, ctypes.c_int,
                                   ctypes.c_int, _I64, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_I64), _I64]

    def window(self, region: np.ndarray, big_endian: bool, nano: bool,
               max_records: int) -> WindowWalk:
        return WindowWalk(self._function, region, big_endian, nano, max_records)

    def walk(self, region: np.ndarray, big_endian: bool, nano: bool, max_records: int
             ) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(records, end, offsets, ts_ns, caplen, wirelen) of a region read already."""
        walk = self.window(region, big_endian, nano, max_records)
        walk.advance(len(region))
        return (walk.count, *walk.result())


@functools.cache
def native_walk() -> NativeWalk | None:
    """The C walk, or None where the library was not built (see `native`)."""
    library = native_library()
    return NativeWalk(library) if library is not None else None
