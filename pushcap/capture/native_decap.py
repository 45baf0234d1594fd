"""Decap's per-packet work in C (`csrc/decap.c`), through ctypes, without numpy.

`decap.py` decides what to ask; these wrappers turn buffers into addresses (checked lengths,
`buffer_address`) and C error codes into exceptions. Where the library is missing (see
`capture.native`), `decap_numpy.py` does the same work with the same result.
"""

from __future__ import annotations

import ctypes
import functools
import threading

from pushcap import defaults
from pushcap.capture.native import bind, buffer_address

_I64 = ctypes.c_int64
_P = ctypes.c_void_p


def _column(column) -> tuple[int, int]:
    return buffer_address(column, 8)


def int64_buffer(n: int) -> memoryview:
    """A writable int64 buffer of n items (zeroed by bytearray: cheap next to a batch)."""
    return memoryview(bytearray(8 * max(n, 0))).cast("q")


class _Scratch(threading.local):
    """Per thread, the buffers a batch's decap uses only while its filter runs, kept for the
    next batch: a fresh one costs its zeroing and, past malloc's mmap threshold, a page fault
    per 4 KiB (the inner frames' copy cost ~40% more that way). Not kept beyond
    defaults.DECAP_SCRATCH_KEEP_BYTES. Never resized in place: a view may still hold one."""

    def __init__(self) -> None:
        self.buffers: dict[str, bytearray] = {}

    def get(self, name: str, size: int) -> bytearray:
        buf = self.buffers.get(name)
        if buf is None or len(buf) < size:
            buf = bytearray(size)
            if size <= defaults.DECAP_SCRATCH_KEEP_BYTES:
                self.buffers[name] = buf
        return buf


_scratch = _Scratch()


class NativeDecap:
    """The loaded functions (see csrc/decap.c for their contracts)."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._scan = library.decap_scan
        self._scan.restype = _I64
        self._scan.argtypes = [_P, _I64, _P, _P, _I64, _I64, _P, _P, ctypes.POINTER(_I64)]
        self._build = library.decap_build
        self._build.restype = _I64
        self._build.argtypes = [_P, _I64, _P, _P, _P, _I64, _I64, _P, _P, _I64, _P, _I64, _P, _P,
                                _P]
        self._merge = library.decap_merge
        self._merge.restype = _I64
        self._merge.argtypes = [_P, _I64, _P, _I64, _P, _I64, _P]

    def scan(self, records, offsets, caplen, limit: int | None = None
             ) -> tuple[memoryview, memoryview, int]:
        """(idx, info, bytes needed) of the packets with a layer to take off (decap.c's
        decap_scan): idx and info are int64 views of their m items (this thread's scratch,
        valid until its next scan). `limit`: the bytes of an inner frame the filter can read
        (bpf_program.load_bound), None for all."""
        records_address, records_len = buffer_address(records)
        offsets_address, n = _column(offsets)
        caplen_address, n_caplen = _column(caplen)
        if n_caplen != n:
            raise ValueError(f"{n} offsets, {n_caplen} caplen")
        idx = memoryview(_scratch.get("idx", 8 * n)).cast("q")[:n]
        info = memoryview(_scratch.get("info", 8 * n)).cast("q")[:n]
        need = _I64(0)
        m = self._scan(records_address, records_len, offsets_address, caplen_address, n,
                       _limit(limit), _column(idx)[0], _column(info)[0], ctypes.byref(need))
        if m < 0:
            raise ValueError("a packet lies outside the records buffer")
        return idx[:m], info[:m], need.value

    def build(self, records, offsets, caplen, wirelen, idx, info, need: int,
              limit: int | None = None) -> tuple[memoryview, memoryview, memoryview, memoryview]:
        """The inner frames as records: (buffer, offsets, caplen, wirelen), in this thread's
        scratch buffers: valid until its next build."""
        records_address, records_len = buffer_address(records)
        offsets_address, n = _column(offsets)
        idx_address, m = _column(idx)
        out = memoryview(_scratch.get("records", need))[:need]
        columns = memoryview(_scratch.get("columns", 24 * m)).cast("q")
        out_offsets, out_caplen, out_wirelen = columns[:m], columns[m:2 * m], columns[2 * m:3 * m]
        written = self._build(records_address, records_len, offsets_address, _column(caplen)[0],
                              _column(wirelen)[0], n, _limit(limit), idx_address,
                              _column(info)[0], m,
                              buffer_address(out)[0] if need else None, need,
                              _column(out_offsets)[0], _column(out_caplen)[0],
                              _column(out_wirelen)[0])
        if written < 0:
            raise ValueError("a packet lies outside the records buffer, or the scan was stale")
        return out, out_offsets, out_caplen, out_wirelen

    def merge(self, selected, idx, inner) -> memoryview:
        """`selected` without the decapsulated packets, plus those whose inner frame the
        filter took (idx[inner]), ascending."""
        sel_address, ns = _column(selected)
        idx_address, m = _column(idx)
        inner_address, ni = _column(inner)
        out = int64_buffer(ns + ni)
        count = self._merge(sel_address if ns else None, ns, idx_address if m else None, m,
                            inner_address if ni else None, ni, _column(out)[0] if ns + ni else None)
        if count < 0:
            raise ValueError("an inner selection outside the decapsulated packets")
        return out[:count]


def _limit(limit: int | None) -> int:
    return -1 if limit is None else min(limit, 1 << 62)


@functools.cache
def native_decap() -> NativeDecap | None:
    """The C functions, or None where the library was not built (or predates them)."""
    return bind(NativeDecap)
