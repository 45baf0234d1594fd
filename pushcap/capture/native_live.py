"""A live libpcap handle read by C straight into batch records (`csrc/livecap.c`).

Where the library is built, `live.py` captures through this instead of pcapy-ng: libpcap's
callback writes each packet, behind its record header, into the batch's own buffer, one copy
out of the kernel's ring (pcapy-ng's `next_batch` made two before the record builder made a
third) and no Python object per read but the batch's arrays. pcapy-ng stays where it serves:
BPF compilation, file reading, listing devices, and live capture where the library is missing.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from pushcap.capture.batch import RECORD_HEADER_BYTES
from pushcap.capture.native import bind
from pushcap.capture.record_arena import RecordArena

_I64 = ctypes.c_int64
_P = ctypes.c_void_p
ERRBUF_BYTES = 256  # PCAP_ERRBUF_SIZE
_COLUMNS = 4  # a batch's per-packet columns: offset, ts_ns, caplen, wirelen
_I64_BYTES = 8


class LiveReadError(Exception):
    """libpcap failed on a live handle; `packets` were read before it (and are returned)."""


class NativeLiveHandle:
    """One activated, nonblocking libpcap handle (see `NativeLive.open`)."""

    def __init__(self, functions: NativeLive, pointer: int, snaplen: int) -> None:
        self._f = functions
        self._pointer: int | None = pointer
        self.snaplen = snaplen
        self.fd = functions.fd(pointer)
        self.datalink = functions.datalink(pointer)
        self.arena = RecordArena()  # where the records go (see record_arena)
        # gather's buffers, made once: a batch costs one C call and little else
        self._scratch: np.ndarray | None = None
        self._used, self._status = _I64(0), ctypes.c_int(0)
        self._used_ref, self._status_ref = ctypes.byref(self._used), ctypes.byref(self._status)
        self._errbuf = ctypes.create_string_buffer(ERRBUF_BYTES)

    def read(self, limit: int, out_bytes: int, headroom: int = 0
             ) -> tuple[np.ndarray, np.ndarray, str | None]:
        """Up to `limit` packets as records (at most `out_bytes`, at least room for one whole
        packet): (records, columns (4 x n: offset, ts_ns, caplen, wirelen), the error libpcap
        reported after them, or None). The records are a view into the handle's arena; the
        columns are exactly as long as what they hold (the ring counts them). `headroom`:
        start a new arena unless this much is free (the first read of a batch asks for room for
        the reads that follow, so a batch's pieces rarely straddle two arenas)."""
        whole_packet = RECORD_HEADER_BYTES + self.snaplen
        arena, start, free = self.arena.room(whole_packet + headroom)
        out_bytes = min(free, max(out_bytes, whole_packet))
        columns = np.empty((4, limit), dtype=np.int64)
        used, status = _I64(0), ctypes.c_int(0)
        errbuf = ctypes.create_string_buffer(ERRBUF_BYTES)
        rows = [columns[i].ctypes.data for i in range(4)]
        count = self._f.read(self._live(), arena.ctypes.data + start, out_bytes, limit, *rows,
                             ctypes.byref(used), ctypes.byref(status), errbuf)
        records = self.arena.commit(used.value)
        if count < limit:
            columns = columns[:, :count].copy()
        error = None
        if status.value == -1:
            error = errbuf.value.decode(errors="replace") or "libpcap read failed"
        elif status.value == -2:
            error = f"a packet does not fit a {out_bytes}-byte read buffer"
        return records, columns, error

    def gather(self, limit: int, out_bytes: int, headroom: int, poll_ms: int,
               gather_us: int, enough: int
               ) -> tuple[np.ndarray, np.ndarray, str | None, bool]:
        """One batch in one C call without the GIL (`live_gather`): wait up to `poll_ms` for
        packets (not at all when negative), read what is ready and gather on while the batch
        has fewer than `enough` packets, for at most `gather_us` or until a reader hurries it
        (`set_wake`). (records, columns as in
        `read`, the error libpcap reported after them or None, whether it stopped full: more
        are waiting.) Where `read` costs Python per read, this costs it once per batch, and
        the columns go into the arena right after the records: a batch of thousands of
        packets allocated its own (up to 256 KiB, above malloc's mmap threshold) fresh from
        the kernel every time, a page fault every 4 KiB (issue 19)."""
        whole_packet = RECORD_HEADER_BYTES + self.snaplen
        column_room = _COLUMNS * _I64_BYTES * limit + _I64_BYTES  # and alignment
        arena, start, free = self.arena.room(whole_packet + headroom + column_room)
        out_bytes = min(free - column_room, max(out_bytes, whole_packet))
        if self._scratch is None or self._scratch.shape[1] != limit:
            self._scratch = np.empty((_COLUMNS, limit), dtype=np.int64)
        base = arena.ctypes.data
        count = self._f.gather(self._live(), base + start, out_bytes, limit,
                               self._scratch.ctypes.data, poll_ms, gather_us, enough,
                               self._used_ref, self._status_ref, self._errbuf)
        used = self._used.value
        at = start + used + (-(base + start + used) % _I64_BYTES)  # 8-byte aligned
        span = self.arena.commit(at - start + _COLUMNS * _I64_BYTES * count)
        records = span[:used]
        columns = span[at - start:].view(np.int64).reshape(_COLUMNS, count)
        columns[...] = self._scratch[:, :count]  # the batch's own, exactly as long
        status = self._status.value
        error = None
        if status == -1:
            error = self._errbuf.value.decode(errors="replace") or "libpcap read failed"
        elif status == -2:
            error = f"a packet does not fit a {out_bytes}-byte read buffer"
        return records, columns, error, status == 1

    def set_wake(self, fd: int, gap_us: int) -> None:
        """The eventfd a waiting reader writes to end the batch being gathered (`gather`;
        -1: none; see wake.py), and how soon after the last batch a hurried one may end."""
        self._f.set_wake(self._live(), fd, gap_us)

    def set_idle(self, stop_fd: int, nap_us: int) -> None:
        """The eventfd that ends `gather`'s wait for a batch's first packets (the capture
        stops; -1: none), so a quiet link's capture can wait long instead of waking every poll
        timeout, and how long a gathering batch naps between reads of a busy link instead of
        waking for each of the kernel's blocks (0: never; see live_gather)."""
        self._f.set_idle(self._live(), stop_fd, nap_us)

    def stats(self) -> tuple[int, int, int]:
        out = (ctypes.c_uint32 * 3)()
        errbuf = ctypes.create_string_buffer(ERRBUF_BYTES)
        if self._f.stats(self._live(), out, errbuf) < 0:
            raise LiveReadError(errbuf.value.decode(errors="replace"))
        return out[0], out[1], out[2]

    def close(self) -> None:
        """Release the handle (its kernel buffer); a second close does nothing."""
        if self._pointer is not None:
            pointer, self._pointer = self._pointer, None
            self._f.close(pointer)

    def _live(self) -> int:
        if self._pointer is None:
            raise LiveReadError("the handle is closed")
        return self._pointer


class NativeLive:
    """The loaded functions of `csrc/livecap.c`."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self.open_function = library.live_open
        self.open_function.restype = _P
        self.open_function.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                       ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                       ctypes.POINTER(ctypes.c_int)]
        self.fd = library.live_fd
        self.fd.argtypes = [_P]
        self.datalink = library.live_datalink
        self.datalink.argtypes = [_P]
        self.read = library.live_read
        self.read.restype = _I64
        self.read.argtypes = [_P, _P, _I64, _I64, _P, _P, _P, _P, ctypes.POINTER(_I64),
                              ctypes.POINTER(ctypes.c_int), ctypes.c_char_p]
        self.gather = library.live_gather
        self.gather.restype = _I64
        self.gather.argtypes = [_P, _P, _I64, _I64, _P, ctypes.c_int, _I64, _I64,
                                ctypes.POINTER(_I64), ctypes.POINTER(ctypes.c_int),
                                ctypes.c_char_p]
        self.set_wake = library.live_set_wake
        self.set_wake.restype = None
        self.set_wake.argtypes = [_P, ctypes.c_int, _I64]
        self.set_idle = library.live_set_idle
        self.set_idle.restype = None
        self.set_idle.argtypes = [_P, ctypes.c_int, _I64]
        self.stats = library.live_stats
        self.stats.argtypes = [_P, ctypes.POINTER(ctypes.c_uint32), ctypes.c_char_p]
        self.close = library.live_close
        self.close.restype = None
        self.close.argtypes = [_P]

    def open(self, interface: str, snaplen: int, promisc: bool, timeout_ms: int,
             buffer_bytes: int) -> tuple[NativeLiveHandle | None, int, str]:
        """(the handle, 0, "") or (None, libpcap's activate code, why) when it cannot open."""
        errbuf = ctypes.create_string_buffer(ERRBUF_BYTES)
        code = ctypes.c_int(0)
        pointer = self.open_function(interface.encode(), snaplen, int(promisc), timeout_ms,
                                     buffer_bytes, errbuf, ctypes.byref(code))
        if not pointer:
            return None, code.value, errbuf.value.decode(errors="replace")
        return NativeLiveHandle(self, pointer, snaplen), 0, ""


@functools.cache
def native_live() -> NativeLive | None:
    """The C capture, or None where the library was not built (see `native`) or predates it."""
    return bind(NativeLive)
