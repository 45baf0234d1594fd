"""Write many slices of one buffer with writev(2), the iovec array built by numpy.

A filtered target writes one slice per run of consecutive selected packets: hundreds of
thousands of slices per second. `os.writev` wants a Python buffer object per slice, which costs
more than the rest of the packet path together. Here the iovec array is computed from the
slices' start and end offsets in one numpy step and handed to the C library's writev through
ctypes (which releases the GIL while the kernel copies), so nothing runs per slice in Python.
"""

from __future__ import annotations

import ctypes
import errno
import os

import numpy as np

IOV_MAX = 1024  # Linux's limit on slices per writev() call
_IOVEC = np.dtype([("base", np.uintp), ("len", np.uintp)])
_libc = ctypes.CDLL(None, use_errno=True)
_writev = _libc.writev
_writev.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_writev.restype = ctypes.c_ssize_t


def writev_slices(fd: int, buffer, starts: np.ndarray, ends: np.ndarray) -> int:
    """Write buffer[starts[i]:ends[i]] for every i, in order, to `fd`; return the bytes written.

    Either everything is written or OSError is raised (a short write is continued, EINTR
    retried). The offsets are checked against the buffer before any pointer is made from them.
    """
    data = np.frombuffer(buffer, dtype=np.uint8)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(ends, dtype=np.int64) - starts
    if not len(starts):
        return 0
    if starts.min() < 0 or lengths.min() < 0 or int((starts + lengths).max()) > len(data):
        raise ValueError("slice outside the buffer")
    iov = np.empty(len(starts), dtype=_IOVEC)
    iov["base"] = starts.astype(np.uintp) + np.uintp(data.ctypes.data)
    iov["len"] = lengths
    total = int(lengths.sum())
    first, count = 0, len(iov)
    while first < count:
        batch = min(IOV_MAX, count - first)
        written = _writev(fd, iov.ctypes.data + first * _IOVEC.itemsize, batch)
        if written < 0:
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            raise OSError(code, os.strerror(code))
        first = _advance(iov, first, batch, written)
    return total


def _advance(iov: np.ndarray, first: int, batch: int, written: int) -> int:
    """Index of the first slice not completely written after `written` bytes of
    iov[first:first + batch]; a partly written slice is shortened to its rest."""
    done = np.cumsum(iov["len"][first:first + batch])
    whole = int(np.searchsorted(done, written, side="right"))
    if whole == batch:
        return first + batch
    if written == 0 and done[-1] > 0:
        raise OSError(errno.EIO, "writev wrote nothing")
    already = int(done[whole - 1]) if whole else 0
    rest = first + whole
    iov["base"][rest] += np.uintp(written - already)
    iov["len"][rest] -= np.uintp(written - already)
    return first + whole
