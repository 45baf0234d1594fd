"""Packet sources: a live interface or a capture file, each yielding Batches.

Why not just pcapy everywhere: `next_batch()` gives caplen and microseconds only. Output files must
agree with the input packet for packet (nanoseconds, wire length), so classic pcap files are read
here: each window of whole records is read once, straight into its batch's buffer; where the
records start is found with vectorized lanes (`_record_starts`), and µs or big-endian headers are
rewritten in place, so a nanosecond little-endian file is a zero-conversion copy. pcapng is parsed
here (per-block Python: pcapng is an interchange format, not the hot path). Live capture uses a
snaplen that keeps whole packets, so there caplen is the wire length.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import re
import select
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pcapy

from pushcap import defaults, iov
from pushcap.capture.batch import (
    RECORD_HEADER_BYTES,
    Batch,
    build_records,
    records_from_slices,
)

log = logging.getLogger("pushcap.capture")

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
# libpcap's DLT_ values that differ from the LINKTYPE_ values files must carry (raw IP and kin).
DLT_TO_LINKTYPE = {12: 101, 14: 101, 15: 102, 16: 103}
# Reading a pcap file: windows of whole records (one Batch each), sized for `batch_packets`.
_FIRST_WINDOW_BYTES = 1 << 20
_MIN_WINDOW_BYTES = 64 * 1024
_MAX_WINDOW_BYTES = 16 << 20  # above this, fresh buffers cost page faults (glibc mmap threshold)
_MAX_CAPLEN = 1 << 18  # libpcap's largest snaplen for ordinary link types: a guess above is wrong
_MIN_LANE_BYTES = 16384  # spacing of the parallel lanes of the record walk (`_record_starts`):
_LANES = 512  # about this many lanes per window, but never closer than _MIN_LANE_BYTES
_FEW_LANES = 8  # below this many lanes a numpy step costs more than walking each in Python
_STEPS_PER_CHECK = 4  # lanes walk this many steps between checks whether all have arrived


class SourceError(Exception):
    """A capture source cannot be opened or read; the message names the file or interface."""


def open_file_source(path: str | Path, batch_packets: int = defaults.BATCH_PACKETS):
    """Open a classic pcap or pcapng file as a source, choosing the reader by its magic."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from exc
    if len(head) < 4:
        raise SourceError(f"{path}: too short to be a capture file")
    if struct.unpack("<I", head)[0] == PCAPNG_SHB:
        from pushcap.capture.pcapng import PcapngFileSource

        return PcapngFileSource(path, batch_packets)
    return PcapFileSource(path, batch_packets)


class PcapFileSource:
    """A classic pcap file (either byte order, µs or ns timestamps)."""

    def __init__(self, path: Path, batch_packets: int = defaults.BATCH_PACKETS) -> None:
        self.path = path
        self.name = path.name
        self.batch_packets = batch_packets
        self.truncated_bytes = 0
        with path.open("rb") as f:
            header = f.read(24)
        if len(header) < 24:
            raise SourceError(f"{path}: truncated pcap file header")
        magic_le = struct.unpack("<I", header[:4])[0]
        if magic_le in (MAGIC_US, MAGIC_NS):
            self._order = "<"
            magic = magic_le
        else:
            magic = struct.unpack(">I", header[:4])[0]
            if magic not in (MAGIC_US, MAGIC_NS):
                raise SourceError(f"{path}: not a pcap or pcapng file (magic {header[:4].hex()})")
            self._order = ">"
        self._nano = magic == MAGIC_NS
        _, _, _, _, self.snaplen, linktype = struct.unpack(self._order + "HHiIII", header[4:])
        self.linktype = linktype & 0x0FFFFFFF  # upper bits carry FCS info, not the link type

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
            yield from self._walk(fd, size, _ReadBuffer() if reuse_buffer else None)

    def _walk(self, fd: int, size: int, buffer: _ReadBuffer | None) -> Iterator[Batch]:
        """Read the file in windows of whole records, each window one Batch.

        The records are read once, straight into the batch's buffer; where each record starts
        is found by `_record_starts` (vectorized), so libpcap is not needed to walk the file.
        """
        position = 24
        window = _FIRST_WINDOW_BYTES
        while position < size:
            length = min(window, size - position)
            region = _pread_exact(fd, position, length, buffer)
            offsets, end = _record_starts(region, self._order, self._ts_pattern(region))
            if len(offsets) > self.batch_packets:
                end = int(offsets[self.batch_packets])
                offsets = offsets[:self.batch_packets]
            if not len(offsets):
                if position + length >= size:
                    break  # a cut record at the end of the file
                # One record larger than the window: read exactly that record next time.
                window = max(window, RECORD_HEADER_BYTES + self._caplen_at(region))
                continue
            region = region[:end]
            yield self._batch_from_region(region, offsets)
            position += end
            # Aim the next window at batch_packets records of the sizes seen so far.
            window = int(min(max(end / len(offsets) * self.batch_packets * 1.02 + 65536,
                                 _MIN_WINDOW_BYTES), _MAX_WINDOW_BYTES))
        if position < size:
            self.truncated_bytes = size - position
            log.warning("event=truncated_capture file=%s whole_packets_kept=yes stray_bytes=%d",
                        self.name, self.truncated_bytes)

    def _caplen_at(self, region: np.ndarray) -> int:
        return struct.unpack_from(self._order + "I", region, 8)[0]

    def _ts_pattern(self, region: np.ndarray) -> tuple[bytes, int]:
        """Bytes every record header of this stretch of the file most likely holds, and where.

        The three high-order bytes of ts_sec change once every 256 s: searching for them finds
        record headers at about any point of a window (see `_record_starts`).
        """
        if self._order == "<":
            return bytes(region[1:4]), 1
        return bytes(region[0:3]), 0

    def _batch_from_region(self, region: np.ndarray, offsets: np.ndarray) -> Batch:
        """Turn a run of the file's own records into a Batch (little-endian, ns headers).

        The region is read once; headers of µs or big-endian files are rewritten in place, so a
        packet's bytes are copied exactly once from the page cache. The header fields are read
        and written through uint32 views at any byte offset (no copy of the region).
        """
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
        ts_ns += frac
        if self._order == "<":
            if not self._nano:
                u32[offsets + 4] = frac
        else:
            le = np.ndarray((len(region) - 3,), dtype="<u4", buffer=region, strides=(1,))
            le[offsets] = sec
            le[offsets + 4] = frac
            le[offsets + 8] = caplen
            le[offsets + 12] = wirelen
        return Batch(region, offsets, ts_ns, caplen, wirelen, self.linktype, self.snaplen)


def _record_starts(region: np.ndarray, order: str, pattern: tuple[bytes, int]
                   ) -> tuple[np.ndarray, int]:
    """Offsets of the whole records in `region` (whose first record starts at 0), and the
    offset just past the last of them.

    A pcap file can only be walked record by record (each header gives the next one's place),
    so the walk runs in *lanes*: the region is cut into about `_LANES` stretches, a likely record
    header is looked for near each cut (`pattern`: bytes every header of this stretch holds,
    found by a regular expression in C), and all lanes step forward together, one numpy
    operation per step for all of them (`_walk_lanes`). A lane is trusted only when the lane
    before it, trusted itself, lands exactly on its start; lane 0 starts at a known record. A
    wrong guess (the pattern found in packet data, or not found at all) only costs speed: that
    lane is dropped and the lane before it walks on through its stretch. The result is
    therefore exactly the sequential walk's.
    """
    n = len(region)
    if n < RECORD_HEADER_BYTES:
        return np.zeros(0, dtype=np.int64), 0
    # caplen of the record starting at byte p is caplen_at[p] (unaligned strided view, no copy).
    caplen_at = np.ndarray((n - RECORD_HEADER_BYTES + 1,), dtype=np.dtype(order + "u4"),
                           buffer=region, offset=8, strides=(1,))
    starts = np.concatenate(([0], _lane_guesses(region, order, pattern, caplen_at)))
    lanes = len(starts)
    stop = np.append(starts[1:], n)
    final, stuck, lane_of, walked = _walk_lanes(region, caplen_at, n, np.arange(lanes), starts,
                                                stop)
    alive = np.ones(lanes, dtype=bool)
    walked_lane, walked_pos = [lane_of], [walked]
    while True:
        live = np.flatnonzero(alive)
        good = ~stuck[live[:-1]] & (final[live[:-1]] == starts[live[1:]])
        bad = np.flatnonzero(~good)
        trusted = int(bad[0]) if len(bad) else len(live) - 1  # lanes chained from lane 0
        if stuck[live[trusted]]:  # a trusted lane reached a record cut by the region's end
            alive[live[trusted + 1:]] = False
            live = live[:trusted + 1]
            break
        if not len(bad):
            break
        # A lane not landed on joins the lane before it; so does a lane that ran into a cut
        # record before its successor (its start was a wrong guess: lane 0's never is).
        victims = live[np.where(stuck[live[bad]], bad, bad + 1)]
        alive[victims] = False
        live = np.flatnonzero(alive)
        heirs = np.unique(live[np.searchsorted(live, victims) - 1])
        heirs = heirs[~stuck[heirs]]
        heir_stop = np.append(starts[live], n)[np.searchsorted(live, heirs, side="right")]
        h_final, h_stuck, h_lane, h_walked = _walk_lanes(region, caplen_at, n, heirs,
                                                         final[heirs], heir_stop)
        final[heirs], stuck[heirs] = h_final, h_stuck
        walked_lane.append(h_lane)
        walked_pos.append(h_walked)
    end = int(final[live[-1]])
    if len(walked_pos) == 1 and len(live) == lanes:
        return walked, end  # every guess was right: lane by lane, already in order
    lane_of, positions = np.concatenate(walked_lane), np.concatenate(walked_pos)
    positions = positions[alive[lane_of]]
    positions.sort()
    return positions, end


def _lane_guesses(region: np.ndarray, order: str, pattern: tuple[bytes, int],
                  caplen_at: np.ndarray) -> np.ndarray:
    """One likely record start per lane (a stretch of the region), ascending.

    The regular expression finds the needle followed by a caplen below 2**18 (its two
    high-order bytes), then skips the rest of the lane, all in C. A guess is kept only if it
    looks like a record header followed by another one (or the region's end): fewer wrong lanes
    when packet data happens to hold the needle. Speed only: a real header dropped here is
    walked through by the lane before it."""
    n = len(region)
    needle, shift = pattern
    lane_bytes = max(_MIN_LANE_BYTES, n // _LANES)
    caplen_high = rb"(?s:.{6})[\x00-\x03]\x00" if shift else rb"(?s:.{5})\x00[\x00-\x03]"
    lane_re = re.compile(re.escape(needle) + caplen_high + b"(?s:.{0,%d})" % lane_bytes)
    guesses = np.fromiter(map(re.Match.start, lane_re.finditer(region, lane_bytes + shift,
                                                                n - RECORD_HEADER_BYTES)),
                          dtype=np.int64)
    guesses -= shift
    last_header = n - RECORD_HEADER_BYTES
    wirelen_at = np.ndarray((n - 15,), dtype=caplen_at.dtype, buffer=region, offset=12,
                            strides=(1,))
    at = np.minimum(guesses, last_header)
    caplen = caplen_at[at]
    nxt = guesses + RECORD_HEADER_BYTES + caplen
    ok = (caplen <= _MAX_CAPLEN) & (caplen <= wirelen_at[at]) & (nxt <= n)
    data = np.frombuffer(region, dtype=np.uint8)
    probe = np.minimum(nxt, last_header) + shift
    follows = np.ones(len(guesses), dtype=bool)
    for i, byte in enumerate(needle):
        follows &= data[probe + i] == byte
    follows |= nxt > last_header  # no room for another header: the region ends
    return guesses[ok & follows]


def _walk_lanes(region, caplen_at: np.ndarray, n: int, lane: np.ndarray, pos: np.ndarray,
                stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Step every lane from `pos` record by record until it reaches its `stop` or a record cut
    by the end of the region.

    Returns, per lane, where it ended (`final`: the first record start at or past `stop`, or
    the cut record) and whether it stopped at a cut record (`stuck`); and the whole records it
    passed, as (lane, position) arrays grouped lane by lane, ascending within each lane.

    Lanes are not masked while they walk: every step moves every lane, positions clamped to
    the region's end (a fixed point), so a step is five numpy calls whatever the lanes do;
    which positions count is sorted out once afterwards.
    """
    if len(lane) <= _FEW_LANES:  # a plain loop per lane beats a numpy call per step here
        return _walk_few(region, caplen_at.dtype.byteorder, n, lane, pos, stop)
    last_header = n - RECORD_HEADER_BYTES
    rows = [pos]
    cur = pos
    while True:
        for _ in range(_STEPS_PER_CHECK):
            nxt = caplen_at[np.minimum(cur, last_header)] + cur
            nxt += RECORD_HEADER_BYTES
            np.minimum(nxt, n, out=nxt)
            rows.append(nxt)
            cur = nxt
        if (cur >= stop).all():
            break
    steps = np.stack(rows, axis=1)  # lanes x steps
    inside = steps < stop[:, None]
    count = inside.sum(axis=1)
    index = np.arange(len(lane))
    landing = steps[index, count]
    last = steps[index, np.maximum(count - 1, 0)]
    # The last record before the landing is whole unless its header or data reach past the end.
    true_next = caplen_at[np.minimum(last, last_header)] + (last + RECORD_HEADER_BYTES)
    stuck = (count > 0) & ((last > last_header) | (true_next > n))
    final = np.where(stuck, last, landing)
    inside[index[stuck], count[stuck] - 1] = False
    return final, stuck, np.repeat(lane, count - stuck), steps[inside]


def _walk_few(region, byteorder: str, n: int, lane: np.ndarray, pos: np.ndarray,
              stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_walk_lanes` for a few lanes (few are left when guesses keep failing, e.g. packet data
    full of header-like bytes): a Python step per record instead of numpy calls per step."""
    unpack = struct.Struct((">" if byteorder == ">" else "<") + "I").unpack_from
    final, stuck = pos.copy(), np.zeros(len(lane), dtype=bool)
    lanes, walked = [], []
    for i, (start, end) in enumerate(zip(pos.tolist(), stop.tolist(), strict=True)):
        positions = []
        p = start
        while p < end and p + RECORD_HEADER_BYTES <= n:
            nxt = p + RECORD_HEADER_BYTES + unpack(region, p + 8)[0]
            if nxt > n:
                break
            positions.append(p)
            p = nxt
        final[i], stuck[i] = p, p < end
        lanes.append(np.full(len(positions), lane[i], dtype=np.int64))
        walked.append(np.array(positions, dtype=np.int64))
    if not lanes:
        return final, stuck, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return final, stuck, np.concatenate(lanes), np.concatenate(walked)


def _pread_exact(fd: int, position: int, length: int,
                 buffer: _ReadBuffer | None = None) -> np.ndarray:
    """`length` bytes at `position`, read straight into one buffer (not zero-filled first:
    every byte is overwritten by the read): the reused one when given and large enough."""
    buf = buffer.take(length) if buffer is not None else None
    if buf is None:
        buf = np.empty(length, dtype=np.uint8)
    view = memoryview(buf)
    done = 0
    while done < length:
        got = os.preadv(fd, [view[done:]], position + done)
        if got == 0:
            raise SourceError(f"file shrank while reading at offset {position + done}")
        done += got
    return buf


class _ReadBuffer:
    """One buffer that every window of a file is read into, when batches are consumed before
    the next one is read (replay).

    A fresh buffer per window costs page faults and zeroing of its pages in the kernel, and
    lands in memory the CPU caches have not seen; the reused one stays mapped and warm, and
    asks for transparent huge pages, which spares TLB misses in the record walk's scattered
    reads (measured about 0.03 s of CPU less per 1M packets). Pages are only touched, and so
    only resident, as far as windows reach.
    """

    def __init__(self, capacity: int = _MAX_WINDOW_BYTES) -> None:
        self._map = mmap.mmap(-1, capacity)
        with contextlib.suppress(AttributeError, OSError):  # no THP here: still a reused buffer
            self._map.madvise(mmap.MADV_HUGEPAGE)
        self._array = np.frombuffer(self._map, dtype=np.uint8)

    def take(self, length: int) -> np.ndarray | None:
        """The first `length` bytes, or None when a window outgrows the buffer (one record
        larger than it): that window gets a buffer of its own."""
        return self._array[:length] if length <= len(self._array) else None


class LiveSource:
    """A live interface read with libpcap in batches.

    The snaplen keeps whole packets (`defaults.LIVE_SNAPLEN_BYTES`), so caplen is the wire length;
    cutting packets short is an output decision (a trigger's `snap`), never capture's. libpcap's
    timestamps on a live handle are microseconds.
    """

    def __init__(self, interface: str, batch_packets: int = defaults.BATCH_PACKETS,
                 poll_timeout_ms: int = defaults.POLL_TIMEOUT_MS, promisc: bool = True,
                 buffer_bytes: int = 64 * 1024 * 1024) -> None:
        self.name = interface
        self.batch_packets = batch_packets
        self.snaplen = defaults.LIVE_SNAPLEN_BYTES
        try:
            handle = pcapy.create(interface)
            handle.set_snaplen(self.snaplen)
            handle.set_promisc(1 if promisc else 0)
            handle.set_timeout(poll_timeout_ms)
            handle.set_buffer_size(buffer_bytes)
            handle.activate()
            handle.setnonblock(1)  # wait in select() instead, so stop() is seen within a poll
        except pcapy.PcapError as exc:
            raise SourceError(f"interface {interface}: {exc}") from exc
        self._handle = handle
        self._fd = handle.getfd()
        self._poll_timeout_s = poll_timeout_ms / 1000
        dlt = handle.datalink()
        self.linktype = DLT_TO_LINKTYPE.get(dlt, dlt)
        self._stop = threading.Event()
        self._error: SourceError | None = None  # see _drain

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> tuple[int, int, int]:
        """(received, dropped by the kernel, dropped by the interface) as libpcap reports them."""
        return tuple(self._handle.stats())

    def batches(self) -> Iterator[Batch]:
        """Batches as packets arrive. A batch is what the kernel holds when woken, plus, when
        that is only a trickle, what arrives within `defaults.COALESCE_MS` more: every batch
        costs a fixed few hundred µs of numpy calls per target, so at high rates batches of a
        few hundred packets would waste more CPU than the packets do."""
        full = False
        while not self._stop.is_set():
            if self._error is not None:  # raised after the packets read before it went out
                raise self._error
            if not full:
                select.select([self._fd], [], [], self._poll_timeout_s)
            chunks = self._drain(self.batch_packets)
            packets = sum(len(meta) for _, meta in chunks) // 16
            if 0 < packets < self.batch_packets // 4 and not self._stop.is_set() \
                    and self._error is None:
                time.sleep(defaults.COALESCE_MS / 1000)
                chunks += self._drain(self.batch_packets - packets)
                packets = sum(len(meta) for _, meta in chunks) // 16
            full = packets >= self.batch_packets  # more may be waiting: read on at once
            if packets:
                yield self._batch(chunks)

    def _drain(self, limit: int) -> list[tuple[bytes, bytes]]:
        """(packet bytes, meta) chunks from libpcap until it has nothing ready or `limit`
        packets are taken. An error after some chunks is kept for `batches` to raise once
        they are delivered: packets taken from libpcap exist nowhere else."""
        chunks = []
        while limit > 0:
            try:
                data, meta = self._handle.next_batch(limit)
            except pcapy.PcapError as exc:
                error = SourceError(f"interface {self.name}: {exc}")
                if not chunks:
                    raise error from exc
                self._error = error
                break
            if not meta:
                break
            chunks.append((data, meta))
            limit -= len(meta) // 16
        return chunks

    def _batch(self, chunks: list[tuple[bytes, bytes]]) -> Batch:
        """One Batch from libpcap's chunks: the packets of every chunk go into the records
        straight from the chunk's buffer (no join of the chunks first)."""
        metas = [np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4) for _, meta in chunks]
        fields = np.concatenate(metas).astype(np.int64)
        ts_ns = fields[:, 0] * 1_000_000_000 + fields[:, 1] * 1000
        caplen = fields[:, 3]
        packets = np.concatenate([iov.slices(data, meta[:, 2], meta[:, 3])
                                  for (data, _), meta in zip(chunks, metas, strict=True)])
        records, offsets = records_from_slices(ts_ns, caplen, caplen, packets)
        if records is None:  # no memfd: join the chunks, point the offsets into the join
            bases = np.cumsum([0] + [len(data) for data, _ in chunks[:-1]])
            data_offsets = fields[:, 2] + np.repeat(bases, [len(m) for m in metas])
            records, offsets = build_records(ts_ns, caplen, caplen,
                                             b"".join(data for data, _ in chunks), data_offsets)
        return Batch(records, offsets, ts_ns, caplen, caplen.copy(), self.linktype,
                     self.snaplen)
