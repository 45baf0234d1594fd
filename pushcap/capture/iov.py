"""Many slices of memory moved in one system call, the iovec array built by numpy.

Two places move packets as many small slices: a filtered target writes one slice per run of
consecutive selected packets, and a live batch interleaves a 16-byte pcap header before every
packet. Done with one Python buffer object per slice (`os.writev`, `bytes.join`), that costs
more than the rest of the packet path together (~0.7 µs a packet). Here the iovec array is
computed from start offsets and lengths in one numpy step and handed to the C library's
writev/pwritev through ctypes (which releases the GIL while the kernel copies), so nothing runs
per slice in Python:

- `writev_slices` writes slices of one buffer to a file;
- `gather` copies slices of several buffers back to back into a new array, using a per-thread
  memfd as the kernel's scatter-gather target (write the slices, read them back in one piece:
  two plain copies, ~0.2 µs a packet instead of ~0.7).

Every pointer is made from a numpy view of a live buffer plus offsets checked against it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading

import numpy as np

from pushcap import defaults

IOV_MAX = 1024  # Linux's limit on slices per writev() call
IOVEC = np.dtype([("base", np.uintp), ("len", np.uintp)])
_libc = ctypes.CDLL(None, use_errno=True)
_writev = _libc.writev
_writev.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_writev.restype = ctypes.c_ssize_t
_pwritev = _libc.pwritev
_pwritev.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64]
_pwritev.restype = ctypes.c_ssize_t


def slices(buffer, starts: np.ndarray, lengths: np.ndarray | int) -> np.ndarray:
    """iovec entries for buffer[starts[i]:starts[i] + lengths[i]] (checked against the buffer).

    The entries point into `buffer`: the caller keeps it alive, and unresized, until they are
    used."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.broadcast_to(np.asarray(lengths, dtype=np.int64), starts.shape)
    table = np.empty(len(starts), dtype=IOVEC)
    if not len(starts):
        return table
    size = len(data)
    if starts.min() < 0 or lengths.min() < 0 or starts.max() > size or lengths.max() > size \
            or int((starts + lengths).max()) > size:  # each term bounded first: no overflow
        raise ValueError("slice outside the buffer")
    table["base"] = starts.astype(np.uintp) + np.uintp(data.ctypes.data)
    table["len"] = lengths
    return table


def writev_slices(fd: int, buffer, starts: np.ndarray, ends: np.ndarray) -> int:
    """Write buffer[starts[i]:ends[i]] for every i, in order, to `fd`; return the bytes written.

    Either everything is written or OSError is raised (a short write is continued, EINTR
    retried)."""
    starts = np.asarray(starts, dtype=np.int64)
    table = slices(buffer, starts, np.asarray(ends, dtype=np.int64) - starts)
    return _write_all(fd, table, None)


def write_table(fd: int, table: np.ndarray) -> int:
    """Write the slices of `table` (from `slices`; used up) in order to `fd` (a file, a
    socket); the bytes written. All or OSError, as writev_slices."""
    return _write_all(fd, table, None)


def gather(table: np.ndarray) -> np.ndarray | None:
    """The slices of `table` (an IOVEC array from `slices`) back to back in a new uint8 array;
    None where memfd_create is not available (the caller then copies some other way). The table
    is used up: a short write shortens its entries in place."""
    fd = _scratch_fd()
    if fd is None:
        return None
    total = _write_all(fd, table, 0)
    out = np.empty(total, dtype=np.uint8)
    view = memoryview(out)
    done = 0
    while done < total:
        got = os.preadv(fd, [view[done:]], done)
        if got <= 0:
            raise OSError(errno.EIO, "scratch file shorter than what was written to it")
        done += got
    if total > defaults.IOV_SCRATCH_KEEP_BYTES:
        os.ftruncate(fd, 0)
    return out


class _ScratchFile:
    """A memfd owned by one thread; closed when the thread's locals go."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("pushcap-gather", os.MFD_CLOEXEC)

    def __del__(self) -> None:
        os.close(self.fd)


_scratch = threading.local()


def _scratch_fd() -> int | None:
    holder = getattr(_scratch, "file", None)
    if holder is None:
        try:
            holder = _ScratchFile()
        except (AttributeError, OSError):  # no memfd here
            return None
        _scratch.file = holder
    return holder.fd


def _write_all(fd: int, table: np.ndarray, offset: int | None) -> int:
    """Write every slice of `table` (modified: partly written slices are shortened) at the file
    position, or at `offset` on; return the bytes written."""
    total = int(table["len"].sum())
    first, count, written_all = 0, len(table), 0
    while first < count:
        batch = min(IOV_MAX, count - first)
        pointer = table.ctypes.data + first * IOVEC.itemsize
        written = (_writev(fd, pointer, batch) if offset is None
                   else _pwritev(fd, pointer, batch, offset + written_all))
        if written < 0:
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            raise OSError(code, os.strerror(code))
        written_all += written
        first = _advance(table, first, batch, written)
    return total


def _advance(table: np.ndarray, first: int, batch: int, written: int) -> int:
    """Index of the first slice not completely written after `written` bytes of
    table[first:first + batch]; a partly written slice is shortened to its rest."""
    done = np.cumsum(table["len"][first:first + batch])
    whole = int(np.searchsorted(done, written, side="right"))
    if whole == batch:
        return first + batch
    if written == 0 and done[-1] > 0:
        raise OSError(errno.EIO, "writev wrote nothing")
    already = int(done[whole - 1]) if whole else 0
    rest = first + whole
    table["base"][rest] += np.uintp(written - already)
    table["len"][rest] -= np.uintp(written - already)
    return first + whole
