"""A window of a classic pcap file made one Batch: the whole records at its start.

Where the records start is found by the C walk (native_walk.py): in lanes over a mapped window,
or chunk by chunk as a read window is read, so reading stops once the batch is full. Where the C
library was not built, vectorized lanes in numpy find them (walk.py). Either way the batch's
records are the file's own bytes, with a big-endian file's headers rewritten to little-endian in
place. Which windows to cut, and what a window without one whole record means, is the source's
business (source.py). numpy is imported where it is used: a mapped file is replayed without it.
"""

from __future__ import annotations

import struct

from pushcap import defaults
from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch
from pushcap.capture.native_walk import native_walk
from pushcap.capture.window_buffers import ReadBuffer, buffer_for, pread_into

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    import numpy as np

CHUNK_BYTES = defaults.WALK_CHUNK_BYTES  # a module name, as tests patch it


class WindowBatcher:
    """One file's windows made Batches: its byte order (`order`, "<" or ">") and timestamp
    unit (`nano`), and its batches' `linktype` and `snaplen`.

    A window's batch holds at most `batch_packets` records and ends before a record that claims
    more than `record_limit` captured bytes (past it the source decides: corrupt, or libpcap's
    rules). A window with not one whole record gives None.
    """

    def __init__(self, order: str, nano: bool, batch_packets: int, record_limit: int,
                 linktype: int, snaplen: int) -> None:
        self._order = order
        self._nano = nano
        self._batch_packets = batch_packets
        self._record_limit = record_limit
        self._linktype = linktype
        self._snaplen = snaplen

    def read(self, fd: int, position: int, length: int, buffer: ReadBuffer | None
             ) -> tuple[np.ndarray, Batch | None]:
        """Read `length` bytes at `position`; the whole records at their start (at most
        batch_packets) as a Batch whose records are the region cut after the last of them, or
        None if not one record is whole. The C walk runs chunk by chunk as the window is read
        and stops reading once it has batch_packets records."""
        region = buffer_for(length, buffer)
        native = native_walk()
        if native is None:
            pread_into(fd, position, region)
            return region, self._numpy_walk(region)
        walk = native.window(region, self._order == ">", self._nano, self._batch_packets,
                             self._record_limit)
        done = 0
        while done < length:
            chunk_end = min(done + CHUNK_BYTES, length)
            pread_into(fd, position + done, region[done:chunk_end])
            done = chunk_end
            if walk.advance(done):
                break
        return region, self._walked_batch(region, walk)

    def map(self, region: memoryview, scratch) -> tuple[memoryview, Batch | None]:
        """`read` for a window of a mapped (little-endian) file: nothing to read, and walked in
        lanes (see `WindowWalk.walk_in_lanes`)."""
        native = native_walk()
        if native is None:
            import numpy as np

            return region, self._numpy_walk(np.frombuffer(region, dtype=np.uint8))
        walk = native.window(region, False, self._nano, self._batch_packets, self._record_limit)
        walk.walk_in_lanes(scratch)
        return region, self._walked_batch(region, walk)

    def caplen_at(self, region) -> int:
        """The captured length the record header at the start of `region` claims."""
        return struct.unpack_from(self._order + "I", region, 8)[0]

    def _walked_batch(self, region, walk) -> Batch | None:
        if not walk.count:
            return None
        end, offsets, ts_ns, caplen, wirelen = walk.result()
        return Batch(region[:end], offsets, ts_ns, caplen, wirelen, self._linktype,
                     self._snaplen, nano=self._nano)

    def _numpy_walk(self, region: np.ndarray) -> Batch | None:
        """The whole records at the start of `region` (at most batch_packets), found with numpy
        lanes (where the C walk was not built)."""
        import numpy as np

        from pushcap.capture.walk import record_starts

        offsets, end = record_starts(region, self._order, self._ts_pattern(region))
        if len(offsets) > self._batch_packets:
            end = int(offsets[self._batch_packets])
            offsets = offsets[:self._batch_packets]
        ends = np.append(offsets[1:], end)
        corrupt = np.flatnonzero(ends - offsets - RECORD_HEADER_BYTES > self._record_limit)
        if len(corrupt):  # stop before it, as the C walk does
            end = int(offsets[corrupt[0]])
            offsets = offsets[:corrupt[0]]
        if not len(offsets):
            return None
        return self._batch_from_region(region[:end], offsets)

    def _ts_pattern(self, region) -> tuple[bytes, int]:
        """Bytes every record header of this stretch of the file most likely holds, and where.

        The three high-order bytes of ts_sec change once every 256 s: searching for them finds
        record headers at about any point of a window (see `walk.record_starts`).
        """
        if self._order == "<":
            return bytes(region[1:4]), 1
        return bytes(region[0:3]), 0

    def _batch_from_region(self, region: np.ndarray, offsets: np.ndarray) -> Batch:
        """Turn a run of the file's own records into a Batch (little-endian headers, the
        file's timestamp unit).

        Headers of a big-endian file are rewritten in place, field for field. The header
        fields are read and written through uint32 views at any byte offset (no copy).
        """
        import numpy as np

        ends = np.empty_like(offsets)
        ends[:-1] = offsets[1:]
        ends[-1] = len(region)
        caplen = ends - offsets
        caplen -= RECORD_HEADER_BYTES
        u32 = np.ndarray((len(region) - 3,), dtype=np.dtype(self._order + "u4"), buffer=region,
                         strides=(1,))
        sec = u32[offsets]
        frac = u32[offsets + 4].astype(np.int64)
        wirelen = u32[offsets + 12].astype(np.int64)
        if not self._nano:
            frac *= 1000
        ts_ns = sec.astype(np.int64)
        ts_ns *= 1_000_000_000
        ts_ns += frac  # a fraction of a second or more carries into the seconds
        if self._order == ">":
            le = np.ndarray((len(region) - 3,), dtype="<u4", buffer=region, strides=(1,))
            raw_frac = u32[offsets + 4]
            le[offsets] = sec
            le[offsets + 4] = raw_frac
            le[offsets + 8] = caplen
            le[offsets + 12] = wirelen
        return Batch(region, offsets, ts_ns, caplen, wirelen, self._linktype, self._snaplen,
                     nano=self._nano)
