"""Where the windows of a classic pcap file lie in memory while they are walked (source.py).

A little-endian file is mapped read-only (`MappedFile`): its records are already in the batch
format, so its windows are views of the mapping, never copied into the process. Any other file
is read window by window (`pread_into`), into one reused buffer when the caller is done with each
batch before it asks for the next (`ReadBuffer`), else into a fresh one per window (`buffer_for`).
numpy is imported where it is used: a mapped file is replayed without it (issue 15).
"""

from __future__ import annotations

import logging
import mmap
import os

from pushcap import defaults

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("pushcap.capture")

_DROP_BYTES = defaults.READ_DROP_BYTES  # a module name, as tests patch it


def buffer_for(length: int, buffer: ReadBuffer | None) -> np.ndarray:
    """Where a window is read to: the reused buffer when given and large enough, else a fresh
    one (not zero-filled first: every byte is overwritten by the read)."""
    import numpy as np

    buf = buffer.take(length) if buffer is not None else None
    return buf if buf is not None else np.empty(length, dtype=np.uint8)


def pread_into(fd: int, position: int, buf: np.ndarray) -> None:
    """Fill `buf` from the file at `position` (a short read is continued)."""
    view = memoryview(buf)
    length = len(buf)
    done = 0
    while done < length:
        got = os.preadv(fd, [view[done:]], position + done)
        if got == 0:
            from pushcap.capture.source import SourceError  # loaded: source.py reads through here

            raise SourceError(f"file shrank while reading at offset {position + done}")
        done += got


class ReadBuffer:
    """One buffer that every window of a file is read into, when batches are consumed before
    the next one is read (replay).

    A fresh buffer per window costs page faults and zeroing of its pages in the kernel, and
    lands in memory the CPU caches have not seen; the reused one stays mapped and warm
    (measured about 0.03 s of CPU less per 1M packets; asking for transparent huge pages on it
    made no measurable difference). Pages are only touched, and so only resident, as far as
    windows reach.
    """

    def __init__(self, capacity: int = defaults.READ_MAX_WINDOW_BYTES) -> None:
        import numpy as np

        self._map = mmap.mmap(-1, capacity)
        self._array = np.frombuffer(self._map, dtype=np.uint8)

    def take(self, length: int) -> np.ndarray | None:
        """The first `length` bytes, or None when a window outgrows the buffer (one record
        larger than it): that window gets a buffer of its own."""
        return self._array[:length] if length <= len(self._array) else None


class MappedFile:
    """A capture file mapped read-only, as one byte memoryview (`view`).

    Pages the reader has passed are unmapped as it goes (`drop_before`), so the process's RSS
    stays at about `_DROP_BYTES` of the file however large it is. That is safe even for batches
    still held: a shared file mapping refills a dropped page from the page cache when touched.
    """

    def __init__(self, fd: int, size: int) -> None:
        self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        self.view = memoryview(self._map)
        self._dropped = 0
        # The lanes walk's scratch for the largest window: anonymous pages, only those a
        # window's records reach are ever touched.
        largest = max(defaults.READ_MAX_WINDOW_BYTES, defaults.MAX_SNAPLEN_BYTES + 16)
        self.scratch = mmap.mmap(-1, (largest // 16 + 64) * 3 * 8)

    def drop_before(self, position: int) -> None:
        """Unmap the whole pages before `position` (in steps of `_DROP_BYTES`)."""
        end = position - position % mmap.PAGESIZE
        if end - self._dropped >= _DROP_BYTES:
            self._map.madvise(mmap.MADV_DONTNEED, self._dropped, end - self._dropped)
            self._dropped = end


def map_read_only(fd: int, size: int) -> MappedFile | None:
    """The file mapped, or None where it cannot be (some network and FUSE file systems): it
    is then read window by window."""
    try:
        return MappedFile(fd, size)
    except (OSError, ValueError) as exc:
        log.debug("event=map_unavailable error=%r", str(exc))
        return None
