"""The index keys of a file's packets and their flows, in C (`capture/csrc/indexkeys.c`).

One `NativeFlows` per file being indexed: `add` decodes a batch's packets and numbers their
flows in a C hash table (a few tens of ns a packet, no Python per packet), `export` hands the
flows over as numpy arrays, `order` sorts the records by flow. Where the library was not built,
`keys_numpy` does the same with numpy (slower, the same result).
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from pushcap.capture.native import bind, buffer_address

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
        n = self._c.count(self._handle)
        keys = np.zeros(n, dtype=key_dtype)
        figures = [np.zeros(n, dtype=np.int64) for _ in range(4)]
        if n:
            self._c.export(self._handle, keys.ctypes.data, *(f.ctypes.data for f in figures))
        return (keys, *figures)

    def order(self, flows: np.ndarray, nflows: int) -> np.ndarray:
        """Record numbers sorted by flow, file order within a flow."""
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
