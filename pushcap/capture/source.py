"""Capture files as packet sources, each yielding Batches (a live interface: live.py).

Why not pcapy for files too: `next_batch()` gives caplen and microseconds only. Output files must
agree with the input packet for packet (every digit of the timestamp, wire length), so classic
pcap files are read here. A little-endian file (nearly all) is mapped read-only and its batches
are windows of the mapping: its records are already in the batch format (`Batch.nano` tells
their timestamp unit), so they reach the output files without being copied into the process or
rewritten. Reading them with `read()` instead cost a kernel copy of every byte (0.065 s of CPU
per 566 MB, against 0.008 s of page faults for the mapping). Where its records start is found
by the C walk in lanes (native_walk.py). A big-endian file is read window by window into a
buffer, walked chunk by chunk as it is read, and its headers are rewritten to little-endian
there. Where the C library was not built, vectorized lanes in numpy find the records (walk.py).
The few files whose records libpcap does not read as written (old versions, records longer than
the snaplen) are read by libpcap's rules in pcap_rules.py instead, chosen once per file.
pcapng is parsed in pcapng.py (per-block Python: pcapng is an interchange format, not the hot
path).

A mapped file that another process cuts shorter during a replay kills the reader (SIGBUS), as it
would any program that maps files. pushcap's own writers only ever shorten a file still being
written (`.part`, to drop a record cut by a full disk), never a finished one.
"""

from __future__ import annotations

import logging
import mmap
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

from pushcap import defaults
from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch
from pushcap.capture.linktypes import linktype_refusal, max_caplen
from pushcap.capture.native_walk import native_walk
from pushcap.capture.pcap_rules import (
    FileRules,
    Lengths,
    RuleReader,
    adjusted_snaplen,
    corrupt_record,
    lengths_rule,
)

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:  # numpy is imported where it is used: a mapped file is replayed without it
    import numpy as np

log = logging.getLogger("pushcap.capture")

PCAPNG_SHB = 0x0A0D0D0A
# Reading a pcap file: windows of whole records (one Batch each), sized for `batch_packets`
# (defaults.READ_*_WINDOW_BYTES). Module names, as tests patch them:
_DROP_BYTES = defaults.READ_DROP_BYTES
CHUNK_BYTES = defaults.WALK_CHUNK_BYTES


class SourceError(Exception):
    """A capture source cannot be opened or read; the message names the file or interface."""


def open_file_source(path: str | Path, batch_packets: int = defaults.BATCH_PACKETS,
                     mapped: bool = True):
    """Open a classic pcap or pcapng file as a source, choosing the reader by its magic.
    `mapped` False: a classic pcap file is read, never mapped (see PcapFileSource)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "a pipe or device, not a regular file"
            raise SourceError(f"{path}: is {what}; replay reads a capture file (it reads at "
                              "offsets), e.g. `zcat x.pcap.gz > x.pcap` first")
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from exc
    if len(head) < 4:
        raise SourceError(f"{path}: too short to be a capture file")
    if struct.unpack("<I", head)[0] == PCAPNG_SHB:
        from pushcap.capture.pcapng import PcapngFileSource

        return PcapngFileSource(path, batch_packets)
    return PcapFileSource(path, batch_packets, mapped)


class PcapFileSource:
    """A classic pcap file (either byte order, µs or ns timestamps), read as libpcap reads it;
    a link type libpcap does not know is refused when it is opened (linktypes.py).

    `snaplen` is libpcap's adjusted one (`pcap_rules.adjusted_snaplen`), the one tcpdump -w
    writes. `end_offset`: the file offset just past the last record of the batches handed out
    (a batch's records can be shorter than the file's: `pcap_rules`).

    `mapped` False: read window by window, never mapped, for a file another program may cut
    shorter while it is read (a part still being written): a mapped page past the new end
    would stop the process with SIGBUS, a read only ends the file with a SourceError.
    """

    def __init__(self, path: Path, batch_packets: int = defaults.BATCH_PACKETS,
                 mapped: bool = True) -> None:
        self.path = path
        self.name = path.name
        self.batch_packets = batch_packets
        self._mapped = mapped
        self.truncated_bytes = 0
        self.end_offset = 24
        with path.open("rb") as f:
            header = f.read(24)
        if len(header) < 24:
            raise SourceError(f"{path}: truncated pcap file header")
        magic_le = struct.unpack("<I", header[:4])[0]
        if magic_le in (defaults.PCAP_MAGIC_US, defaults.PCAP_MAGIC_NS):
            self._order = "<"
            magic = magic_le
        else:
            magic = struct.unpack(">I", header[:4])[0]
            if magic not in (defaults.PCAP_MAGIC_US, defaults.PCAP_MAGIC_NS):
                raise SourceError(f"{path}: not a pcap or pcapng file (magic {header[:4].hex()})")
            self._order = ">"
        self._nano = magic == defaults.PCAP_MAGIC_NS
        major, minor, snaplen, linktype = struct.unpack(self._order + "HH8xII", header[4:])
        if why := linktype_refusal(linktype):
            raise SourceError(f"{path}: {why}")
        self.linktype = linktype & 0x0FFFFFFF  # upper bits carry FCS info, not the link type
        self.snaplen = adjusted_snaplen(linktype, snaplen)
        self._rules = FileRules(self._order, self._nano, lengths_rule(major, minor),
                                self.snaplen, self.linktype)
        # A record claiming more than the link type's largest is corrupt (262144 bytes but for
        # D-Bus, USBPcap and EBHSCR, whose files walk with their own limit, as fast as others).
        self._max_caplen = max_caplen(linktype)
        # The fast walk stops before a longer record: from there libpcap's rules apply.
        self._record_limit = min(self._max_caplen, self.snaplen)

    def batches(self, reuse_buffer: bool = False) -> Iterator[Batch]:
        """The file's packets, batch by batch.

        reuse_buffer: read every window into one buffer (`_ReadBuffer`), so a batch's records
        are only valid until the next batch is asked for. For callers that are done with each
        batch by then (replay); never for anything that keeps batches (a ring, a list).
        """
        with self.path.open("rb", buffering=0) as f:
            fd = f.fileno()
            size = os.fstat(fd).st_size
            if size <= 24:
                return
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            if self._rules.lengths is not Lengths.AS_WRITTEN:
                yield from self._read_by_rules(fd, 24, size)
                return
            mapped = _map_read_only(fd, size) if self._order == "<" and self._mapped else None
            buffer = _ReadBuffer() if reuse_buffer and mapped is None else None
            yield from self._walk(fd, size, mapped, buffer)

    def _walk(self, fd: int, size: int, mapped: _MappedFile | None,
              buffer: _ReadBuffer | None) -> Iterator[Batch]:
        """Cut the file into windows of whole records, each window one Batch.

        Each record is read once: in place in the mapping, or straight into the batch's buffer.
        Where each record starts is found by the C walk (`native_walk`) or, where it was not
        built, by `walk.record_starts` (vectorized); libpcap is not needed to walk the file.
        """
        position = 24
        window = defaults.READ_FIRST_WINDOW_BYTES
        while position < size:
            length = min(window, size - position)
            if mapped is not None:
                region, batch = self._map_window(mapped.view[position:position + length],
                                                 mapped.scratch)
            else:
                region, batch = self._read_window(fd, position, length, buffer)
            if batch is None:
                caplen = self._caplen_at(region) if length >= RECORD_HEADER_BYTES else 0
                if caplen > self._max_caplen:
                    raise corrupt_record(self.path, position, caplen, self._max_caplen)
                if caplen > self.snaplen:  # libpcap cuts it to the snaplen
                    yield from self._read_by_rules(fd, position, size)
                    return
                if position + length >= size:
                    break  # a cut record at the end of the file
                # One record larger than the window: read exactly that record next time.
                window = max(window, RECORD_HEADER_BYTES + self._caplen_at(region))
                continue
            end = len(batch.records)
            self.end_offset = position + end
            yield batch
            position += end
            if mapped is not None:
                mapped.drop_before(position)
            # Aim the next window at batch_packets records of the sizes seen so far.
            window = int(min(max(end / len(batch) * self.batch_packets * 1.02 + 65536,
                                 defaults.READ_MIN_WINDOW_BYTES), defaults.READ_MAX_WINDOW_BYTES))
        self._left_over(size - position)

    def _read_by_rules(self, fd: int, position: int, size: int) -> Iterator[Batch]:
        """The records from `position` on, read by libpcap's rules (pcap_rules.py)."""
        reader = RuleReader(fd, position, size, self._rules, self.path)
        for batch in reader.batches(self.batch_packets):
            self.end_offset = reader.position
            yield batch
        self._left_over(size - reader.position)

    def _left_over(self, stray_bytes: int) -> None:
        """Say that the file ends inside a record (its whole records were all handed out)."""
        if stray_bytes:
            self.truncated_bytes = stray_bytes
            log.warning("event=truncated_capture file=%s whole_packets_kept=yes stray_bytes=%d",
                        self.name, stray_bytes)

    def _read_window(self, fd: int, position: int, length: int, buffer: _ReadBuffer | None
                     ) -> tuple[np.ndarray, Batch | None]:
        """Read `length` bytes at `position`; the whole records at their start (at most
        batch_packets) as a Batch whose records are the region cut after the last of them, or
        None if not one record is whole. The C walk runs chunk by chunk as the window is read
        and stops reading once it has batch_packets records."""
        region = _buffer_for(length, buffer)
        native = native_walk()
        if native is None:
            _pread_into(fd, position, region)
            return region, self._numpy_walk(region)
        walk = native.window(region, self._order == ">", self._nano, self.batch_packets,
                             self._record_limit)
        done = 0
        while done < length:
            chunk_end = min(done + CHUNK_BYTES, length)
            _pread_into(fd, position + done, region[done:chunk_end])
            done = chunk_end
            if walk.advance(done):
                break
        return region, self._walked_batch(region, walk)

    def _map_window(self, region: memoryview, scratch) -> tuple[memoryview, Batch | None]:
        """`_read_window` for a window of a mapped (little-endian) file: nothing to read, and
        walked in lanes (see `WindowWalk.walk_in_lanes`)."""
        native = native_walk()
        if native is None:
            import numpy as np

            return region, self._numpy_walk(np.frombuffer(region, dtype=np.uint8))
        walk = native.window(region, False, self._nano, self.batch_packets, self._record_limit)
        walk.walk_in_lanes(scratch)
        return region, self._walked_batch(region, walk)

    def _walked_batch(self, region, walk) -> Batch | None:
        if not walk.count:
            return None
        end, offsets, ts_ns, caplen, wirelen = walk.result()
        return Batch(region[:end], offsets, ts_ns, caplen, wirelen, self.linktype,
                     self.snaplen, nano=self._nano)

    def _numpy_walk(self, region: np.ndarray) -> Batch | None:
        """The whole records at the start of `region` (at most batch_packets), found with numpy
        lanes (where the C walk was not built)."""
        import numpy as np

        from pushcap.capture.walk import record_starts

        offsets, end = record_starts(region, self._order, self._ts_pattern(region))
        if len(offsets) > self.batch_packets:
            end = int(offsets[self.batch_packets])
            offsets = offsets[:self.batch_packets]
        ends = np.append(offsets[1:], end)
        corrupt = np.flatnonzero(ends - offsets - RECORD_HEADER_BYTES > self._record_limit)
        if len(corrupt):  # stop before it, as the C walk does
            end = int(offsets[corrupt[0]])
            offsets = offsets[:corrupt[0]]
        if not len(offsets):
            return None
        return self._batch_from_region(region[:end], offsets)

    def _caplen_at(self, region) -> int:
        return struct.unpack_from(self._order + "I", region, 8)[0]

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
        return Batch(region, offsets, ts_ns, caplen, wirelen, self.linktype, self.snaplen,
                     nano=self._nano)


def _buffer_for(length: int, buffer: _ReadBuffer | None) -> np.ndarray:
    """Where a window is read to: the reused buffer when given and large enough, else a fresh
    one (not zero-filled first: every byte is overwritten by the read)."""
    import numpy as np

    buf = buffer.take(length) if buffer is not None else None
    return buf if buf is not None else np.empty(length, dtype=np.uint8)


def _pread_into(fd: int, position: int, buf: np.ndarray) -> None:
    """Fill `buf` from the file at `position` (a short read is continued)."""
    view = memoryview(buf)
    length = len(buf)
    done = 0
    while done < length:
        got = os.preadv(fd, [view[done:]], position + done)
        if got == 0:
            raise SourceError(f"file shrank while reading at offset {position + done}")
        done += got


class _ReadBuffer:
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


class _MappedFile:
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


def _map_read_only(fd: int, size: int) -> _MappedFile | None:
    """The file mapped, or None where it cannot be (some network and FUSE file systems): it
    is then read window by window."""
    try:
        return _MappedFile(fd, size)
    except (OSError, ValueError) as exc:
        log.debug("event=map_unavailable error=%r", str(exc))
        return None
