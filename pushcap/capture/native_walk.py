"""The classic pcap record walk in C (`csrc/pcapwalk.c`), called through ctypes as a window is read.

The numpy walk (`walk.record_starts` plus the header rewrite in `window_batches.py`) is exact but
costs about 0.1-0.14 s of CPU per million packets in numpy calls; the loop in C costs a few ms and
does a big-endian file's header rewrite in the same pass. A big-endian file is read chunk by chunk
and each chunk walked right after it is read, while it is still in the CPU's cache (walking a whole
5 MB window afterwards costs 2-3x as much); a little-endian file is mapped and walked in place,
the C loop prefetching ahead. Where the library is missing (`native`) the numpy walk serves,
with the same result (tests/test_native_walk.py compares both with a sequential walk).
"""

from __future__ import annotations

import ctypes
import functools

from pushcap import defaults
from pushcap.capture.native import bind, buffer_address

# A record claiming more than libpcap's limit for the file's link type (`linktypes.max_caplen`:
# MAXIMUM_SNAPLEN, defaults.MAX_SNAPLEN_BYTES, but for D-Bus, USBPcap and EBHSCR) is corrupt
# (tcpdump -r stops there with "invalid packet capture length"), and copied into an output file
# it would make that file unreadable to libpcap. The walk stops before such a record
# (window_batches.py passes the limit as `max_caplen`, and source.py says where the record is).
# A file whose snaplen is smaller walks with that limit instead: libpcap cuts a record longer
# than the snaplen, which source.py leaves to pcap_rules.py.

_I64 = ctypes.c_int64


class WindowWalk:
    """The walk of one window (a buffer being filled from its start): `advance` after each
    read, then `result`. The per-record columns are fresh for every window (batches keep them)
    and are int64 memoryviews: a replay runs without numpy (see `batch.Batch.columns`). The walk
    stops before a record longer than `max_caplen`."""

    def __init__(self, function, region, big_endian: bool, nano: bool,
                 max_records: int, lanes_function=None,
                 max_caplen: int = defaults.MAX_SNAPLEN_BYTES) -> None:
        self._function = function
        self._lanes_function = lanes_function
        self._region = region  # kept alive: the C code reads (and may write) it
        self._address, self._length = buffer_address(region)  # any contiguous byte buffer
        if big_endian and memoryview(region).readonly:
            raise ValueError("a big-endian region must be writable")  # C rewrites its headers
        self._flags = (int(big_endian), int(nano))
        self._max = max_records
        self._arrays = bytearray(4 * 8 * max_records)
        base = buffer_address(self._arrays)[0]
        self._rows = [base + i * max_records * 8 for i in range(4)]
        self._end = _I64(0)
        self._max_caplen = max_caplen
        self.count = 0

    def advance(self, available: int) -> bool:
        """Walk on through the first `available` bytes; True once `max_records` are found."""
        if not 0 <= available <= self._length:
            raise ValueError(f"{available} bytes available in a region of {self._length}")
        self.count = self._function(self._address, available, self._end.value, self.count,
                                    *self._flags, self._max, *self._rows,
                                    ctypes.byref(self._end), self._max_caplen)
        return self.count >= self._max

    def walk_in_lanes(self, scratch) -> None:
        """Walk the whole region, which is in memory already and little-endian, at once: in
        lanes whose loads are in flight together (`pcap_walk_lanes`: a mapped file, which no
        read has brought into the cache). `scratch`: a writable buffer of 1.5 times the
        region's size, reused from window to window, of which only as much as the region's
        records need is touched (less makes the C code walk plainly)."""
        if self._flags[0]:
            raise ValueError("the lanes walk reads little-endian regions only")
        address, length = buffer_address(scratch)
        self.count = self._lanes_function(self._address, self._length, self._flags[1],
                                          self._max, *self._rows, ctypes.byref(self._end),
                                          self._max_caplen, address, length // 8)

    def result(self) -> tuple[int, memoryview, memoryview, memoryview, memoryview]:
        """(end, offsets, ts_ns, caplen, wirelen) of the whole records found; big-endian
        headers are rewritten in place to little-endian."""
        count, size = self.count, self._max
        columns = memoryview(self._arrays).cast("q")
        rows = [columns[i * size:i * size + count] for i in range(4)]
        if count < size // 2:  # a short last window: do not hold the unused slots
            rows = [memoryview(bytearray(row)).cast("q") for row in rows]
        return (self._end.value, *rows)


class NativeWalk:
    """The loaded library."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._function = library.pcap_walk
        self._function.restype = _I64
        self._function.argtypes = [ctypes.c_void_p, _I64, _I64, _I64, ctypes.c_int,
                                   ctypes.c_int, _I64, ctypes.c_void_p, ctypes.c_void_p,
                                   ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_I64), _I64]
        self._lanes = library.pcap_walk_lanes
        self._lanes.restype = _I64
        self._lanes.argtypes = [ctypes.c_void_p, _I64, ctypes.c_int, _I64, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.POINTER(_I64), _I64, ctypes.c_void_p, _I64]

    def window(self, region, big_endian: bool, nano: bool, max_records: int,
               max_caplen: int = defaults.MAX_SNAPLEN_BYTES) -> WindowWalk:
        return WindowWalk(self._function, region, big_endian, nano, max_records, self._lanes,
                          max_caplen)

    def walk(self, region, big_endian: bool, nano: bool, max_records: int
             ) -> tuple[int, int, memoryview, memoryview, memoryview, memoryview]:
        """(records, end, offsets, ts_ns, caplen, wirelen) of a region read already."""
        walk = self.window(region, big_endian, nano, max_records)
        walk.advance(len(region))
        return (walk.count, *walk.result())


@functools.cache
def native_walk() -> NativeWalk | None:
    """The C walk, or None where the library was not built (see `native`) or predates the
    lanes walk (a `_native` library left from an older build: `make setup` rebuilds it)."""
    return bind(NativeWalk)
