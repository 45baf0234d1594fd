"""A target's share of a batch in C (`capture/csrc/pushruns.c`): split points and the writev of
its records, through ctypes, without numpy.

`selection.py` decides what to ask; these wrappers only turn buffers into addresses (checked
lengths, `buffer_address`) and C error codes into exceptions. Where the library is missing (see
`capture.native`), `selection.py` does the same work with numpy.
"""

from __future__ import annotations

import ctypes
import functools
import os

from pushcap.capture.native import bind, buffer_address

_I64 = ctypes.c_int64
_P = ctypes.c_void_p
_OUTSIDE_BUFFER = -(1 << 63)  # write_records' answer for a record outside the batch's buffer


class NativeRuns:
    """The loaded functions. `idx` arguments are an int64 buffer of ascending batch indices, or
    None for every packet; `pos`/`end` count positions in it."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._window_end = library.window_end
        self._window_end.restype = _I64
        self._window_end.argtypes = [_P, _I64, _P, _I64, _I64, _I64, _I64]
        self._bytes_end = library.bytes_end
        self._bytes_end.restype = _I64
        self._bytes_end.argtypes = [_P, _I64, _P, _I64, _I64, _I64]
        self._write_records = library.write_records
        self._write_records.restype = _I64
        self._write_records.argtypes = [ctypes.c_int, _P, _I64, _P, _P, _I64, _P, _I64, _I64]

    def window_end(self, ts_ns, idx, pos: int, end: int, split_ns: int, window: int) -> int:
        """First position in [pos, end) whose packet's window (ts // split_ns) is past
        `window`, or end."""
        address, n = buffer_address(ts_ns, 8)
        return _checked(self._window_end(address, n, _indices(idx, pos, end, n), pos, end,
                                         split_ns, window))

    def bytes_end(self, caplen, idx, pos: int, end: int, budget: int) -> int:
        """Largest p in [pos, end] whose records [pos, p) (headers included) fit `budget`."""
        address, n = buffer_address(caplen, 8)
        return _checked(self._bytes_end(address, n, _indices(idx, pos, end, n), pos, end,
                                        budget))

    def write_records(self, fd: int, records, offsets, caplen, idx, pos: int, end: int) -> int:
        """Write the records of positions [pos, end) to `fd`; the bytes written. OSError as
        the system call had it (the file may then hold part of them: the caller cuts it back);
        ValueError for a record outside `records` or a position outside the batch."""
        address, length = buffer_address(records)
        offsets_at, n = buffer_address(offsets, 8)
        caplen_at, n_caplen = buffer_address(caplen, 8)
        if n_caplen != n:
            raise ValueError(f"{n} offsets but {n_caplen} caplens")
        wrote = self._write_records(fd, address, length, offsets_at, caplen_at, n,
                                    _indices(idx, pos, end, n), pos, end)
        if wrote == _OUTSIDE_BUFFER:
            raise ValueError("a record lies outside the batch's buffer")
        if wrote < 0:
            raise OSError(-wrote, os.strerror(-wrote))
        return wrote


def _indices(idx, pos: int, end: int, n: int) -> int | None:
    """The address of `idx` after checking that it holds positions [pos, end) (without a
    selection, that the batch of n does); C checks each index against n."""
    if not 0 <= pos <= end:
        raise ValueError(f"positions {pos} to {end}")
    if idx is None:
        if end > n:
            raise ValueError(f"position {end} of a batch of {n}")
        return None
    address, count = buffer_address(idx, 8)
    if end > count:
        raise ValueError(f"position {end} of a selection of {count}")
    return address


def _checked(result: int) -> int:
    if result < 0:
        raise ValueError("a selection index outside the batch, or a bad split")
    return result


@functools.cache
def native_runs() -> NativeRuns | None:
    """The C functions, or None where the library was not built (or predates them)."""
    return bind(NativeRuns)
