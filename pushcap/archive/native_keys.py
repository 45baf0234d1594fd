"""The index keys of a file's packets and their flows, in C (`capture/csrc/indexkeys.c`,
`indexfile.c`).

One `NativeFlows` per file being indexed: `add` decodes a batch's packets and numbers their
flows in a C hash table (a few tens of ns a packet, no Python per packet), `export` hands the
flows over as numpy arrays, `order` sorts the records by flow. `FilePass` feeds a whole mapped
file to a `NativeFlows` in one C call per stretch (the walk, the keys and the records of a
window while its headers are in the cache) and hands the records over grouped by flow.
`address_text` and `delta_encoded` give the flows' addresses and record lists as the index's
Parquet file holds them. Where the library was not built,
`keys_numpy` does the same with numpy (slower, the same result).
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING

from pushcap.capture.native import bind, buffer_address

if TYPE_CHECKING:  # numpy is imported where arrays are made: a series feeding an index
    import numpy as np  # (index_feed) runs on the packet path, where a replay never needs it

_I64 = ctypes.c_int64
_P = ctypes.c_void_p


class NativeKeys:
    """The loaded functions."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self.new = library.ix_new
        self.new.restype = _P
        self.new.argtypes = []
        self.free = library.ix_free
        self.free.restype = None
        self.free.argtypes = [_P]
        self.add = library.ix_add
        self.add.restype = _I64
        self.add.argtypes = [_P, _P, _I64, _P, _P, _P, _P, _I64, ctypes.c_int, _P]
        self.count = library.ix_flows
        self.count.restype = _I64
        self.count.argtypes = [_P]
        self.export = library.ix_export
        self.export.restype = None
        self.export.argtypes = [_P, _P, _P, _P, _P, _P]
        self.order = library.ix_order
        self.order.restype = _I64
        self.order.argtypes = [_P, _I64, _I64, _P, _P]
        self.file_new = library.ixf_new
        self.file_new.restype = _P
        self.file_new.argtypes = [_P]
        self.file_free = library.ixf_free
        self.file_free.restype = None
        self.file_free.argtypes = [_P]
        self.file_walk = library.ixf_walk
        self.file_walk.restype = _I64
        self.file_walk.argtypes = [_P, _P, _I64, _I64, _I64, ctypes.c_int, _I64, ctypes.c_int]
        self.file_feed = library.ixf_feed
        self.file_feed.restype = _I64
        self.file_feed.argtypes = [_P, _P, _I64, _P, _P, _P, _P, _I64, _P, _I64, _I64, _I64,
                                   ctypes.c_int]
        self.file_count = library.ixf_count
        self.file_count.restype = _I64
        self.file_count.argtypes = [_P]
        self.file_grouped = library.ixf_grouped
        self.file_grouped.restype = _I64
        self.file_grouped.argtypes = [_P, _I64, _P, _P]
        self.delta_bound = library.ixf_delta_bound
        self.delta_bound.restype = _I64
        self.delta_bound.argtypes = [_I64]
        self.delta_encode = library.ixf_delta_encode
        self.delta_encode.restype = _I64
        self.delta_encode.argtypes = [_P, _I64, _P]
        self.address_text = library.ix_address_text
        self.address_text.restype = None
        self.address_text.argtypes = [_P, _I64, ctypes.c_int, _P, _P]


@functools.cache
def native_keys() -> NativeKeys | None:
    """The C functions, or None where the library was not built (or predates them)."""
    return bind(NativeKeys)


def _column(column, n: int) -> int:
    address, items = buffer_address(column, 8)
    if items != n:
        raise ValueError(f"a column of {items} items for {n} packets")
    return address


class NativeFlows:
    """The flows of one file, numbered in the order they first appear."""

    def __init__(self, functions: NativeKeys, linktype: int) -> None:
        self._c = functions
        self._linktype = linktype
        self._handle = functions.new()
        if not self._handle:
            raise MemoryError("no memory for an index's flow table")

    def add(self, batch) -> np.ndarray:
        """The flow number (int32) of each packet of `batch`."""
        import numpy as np

        n = len(batch)
        flows = np.empty(n, dtype=np.int32)
        if not n:
            return flows
        offsets, ts_ns, caplen, wirelen = batch.columns
        records_address, records_len = buffer_address(batch.records)
        code = self._c.add(self._handle, records_address, records_len, _column(offsets, n),
                           _column(ts_ns, n), _column(caplen, n), _column(wirelen, n), n,
                           self._linktype, flows.ctypes.data)
        if code == -1:
            raise MemoryError("no memory for an index's flow table")
        if code:
            raise ValueError("a packet lies outside its batch's buffer")
        return flows

    def export(self, key_dtype: np.dtype) -> tuple[np.ndarray, ...]:
        """(keys, first_ts, last_ts, packets, bytes) of every flow, by flow number."""
        import numpy as np

        n = self._c.count(self._handle)
        keys = np.zeros(n, dtype=key_dtype)
        figures = [np.zeros(n, dtype=np.int64) for _ in range(4)]
        if n:
            self._c.export(self._handle, keys.ctypes.data, *(f.ctypes.data for f in figures))
        return (keys, *figures)

    def order(self, flows: np.ndarray, nflows: int) -> np.ndarray:
        """Record numbers sorted by flow, file order within a flow."""
        import numpy as np

        flows = np.ascontiguousarray(flows, dtype=np.int32)
        perm = np.empty(len(flows), dtype=np.int64)
        starts = np.empty(max(nflows, 1), dtype=np.int64)
        if self._c.order(flows.ctypes.data, len(flows), nflows, starts.ctypes.data,
                         perm.ctypes.data):
            raise ValueError("a flow number out of range")
        return perm

    def close(self) -> None:
        if self._handle:
            self._c.free(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()


class FilePass:
    """The records of a mapped file, walked and keyed in C into `flows` (indexfile.c)."""

    def __init__(self, flows: NativeFlows) -> None:
        self._c = flows._c
        self._flows = flows
        self._handle = self._c.file_new(flows._handle)
        if not self._handle:
            raise MemoryError("no memory for an index's file pass")

    def walk(self, address: int, size: int, position: int, stop: int, nano: bool,
             max_caplen: int) -> int:
        """Walk the file (mapped at `address`, `size` bytes) from record start `position` to
        past `stop`; where it stopped (before `stop` and `size`: a cut or oversized record)."""
        end = self._c.file_walk(self._handle, address, size, position, stop, nano, max_caplen,
                                self._flows._linktype)
        if end == -1:
            raise MemoryError("no memory for an index's records")
        if end < 0:
            raise ValueError("a record lies outside the mapped file")
        return end

    def feed(self, batch, idx, start: int, end: int, position: int) -> int:
        """Take the keys of positions [start, end) of a selection of `batch` (batch indices
        `idx`, or every packet for None), just written back to back at `position` of the file
        (indexfile.c, ixf_feed); the position past them."""
        n = len(batch)
        offsets, ts_ns, caplen, wirelen = batch.columns
        records_address, records_len = buffer_address(batch.records)
        idx_address = 0
        if idx is not None:
            idx_address, items = buffer_address(idx, 8)
            if items < end:
                raise ValueError(f"a selection of {items} packets read at {end}")
        after = self._c.file_feed(self._handle, records_address, records_len,
                                  _column(offsets, n), _column(ts_ns, n), _column(caplen, n),
                                  _column(wirelen, n), n, idx_address or None, start, end,
                                  position, self._flows._linktype)
        if after == -1:
            raise MemoryError("no memory for an index's records")
        if after < 0:
            raise ValueError("a packet lies outside its batch")
        return after

    def grouped(self, nflows: int) -> tuple[np.ndarray, np.ndarray]:
        """(offsets int64, caplen int32) of every record walked, by flow, file order within."""
        import numpy as np

        count = self._c.file_count(self._handle)
        offsets = np.empty(count, dtype=np.int64)
        caplen = np.empty(count, dtype=np.int32)
        code = self._c.file_grouped(self._handle, nflows, offsets.ctypes.data,
                                    caplen.ctypes.data)
        if code == -1:
            raise MemoryError("no memory to group an index's records")
        if code:
            raise ValueError("a flow number out of range")
        return offsets, caplen

    def close(self) -> None:
        if self._handle:
            self._c.file_free(self._handle)
            self._handle = None

    def __del__(self) -> None:
        self.close()


ADDRESS_TEXT_BYTES = 4 + 46  # a length, then INET6_ADDRSTRLEN: the longest text and its NUL


def address_text(functions: NativeKeys, keys: np.ndarray, which: int
                 ) -> tuple[np.ndarray, bytes]:
    """The source (`which` 0) or destination (1) address of every key (KEY_DTYPE) as text, in
    Parquet's PLAIN layout (a 4-byte length, then the text; nothing for a key that is not IP):
    (int64 offsets, n + 1 of them, key i's bytes being [offsets[i], offsets[i + 1]); the
    bytes)."""
    import numpy as np

    keys = np.ascontiguousarray(keys)
    out = np.empty(max(len(keys), 1) * ADDRESS_TEXT_BYTES, dtype=np.uint8)
    offsets = np.empty(len(keys) + 1, dtype=np.int64)
    functions.address_text(keys.ctypes.data, len(keys), which, out.ctypes.data,
                           offsets.ctypes.data)
    return offsets, out[:int(offsets[-1])].tobytes()


def delta_encoded(functions: NativeKeys, values: np.ndarray) -> memoryview:
    """`values` in Parquet's DELTA_BINARY_PACKED encoding (indexfile.c)."""
    import numpy as np

    values = np.ascontiguousarray(values, dtype=np.int64)
    out = np.empty(functions.delta_bound(len(values)), dtype=np.uint8)
    size = functions.delta_encode(values.ctypes.data, len(values), out.ctypes.data)
    return memoryview(out[:size])
