"""Packet sources: a live interface or a capture file, each yielding Batches.

Why not just pcapy everywhere: `next_batch()` gives caplen and microseconds only. Output files must
agree with the input packet for packet (nanoseconds, wire length), so for classic pcap files we let
libpcap walk the records (fast, in C) and take the record headers and bytes straight from the file,
which also makes a nanosecond little-endian file a zero-conversion copy. pcapng is parsed here
(per-block Python: pcapng is an interchange format, not the hot path). Live capture uses a snaplen
that keeps whole packets, so there caplen is the wire length.
"""

from __future__ import annotations

import logging
import os
import select
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pcapy

from pushcap import defaults
from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch, build_records

log = logging.getLogger("pushcap.capture")

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
# libpcap's DLT_ values that differ from the LINKTYPE_ values files must carry (raw IP and kin).
DLT_TO_LINKTYPE = {12: 101, 14: 101, 15: 102, 16: 103}


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

    def batches(self) -> Iterator[Batch]:
        try:
            reader = pcapy.open_offline(str(self.path))
        except pcapy.PcapError as exc:
            raise SourceError(f"{self.path}: {exc}") from exc
        with self.path.open("rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if size <= 24:
                return
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            yield from self._walk(reader, f.fileno(), size)

    def _walk(self, reader, fd: int, size: int) -> Iterator[Batch]:
        position = 24
        while True:
            try:
                _, meta = reader.next_batch(self.batch_packets)
            except pcapy.PcapError as exc:
                # libpcap gave up at a cut record and dropped the batch it was filling: take the
                # whole records after `position` ourselves, as tcpdump does, and say so.
                batch, position = self._walk_tail(fd, position, size)
                if batch is not None:
                    yield batch
                self.truncated_bytes = size - position
                log.warning("event=truncated_capture file=%s detail=%r whole_packets_kept=yes "
                            "stray_bytes=%d", self.name, str(exc), self.truncated_bytes)
                return
            if not meta:
                if position < size:
                    self.truncated_bytes = size - position
                    log.warning("event=truncated_capture file=%s stray_bytes=%d",
                                self.name, self.truncated_bytes)
                return
            caplen = np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4)[:, 3].astype(np.int64)
            sizes = caplen + RECORD_HEADER_BYTES
            end = position + int(sizes.sum())
            offsets = np.zeros(len(caplen), dtype=np.int64)
            np.cumsum(sizes[:-1], out=offsets[1:])
            yield self._batch_from_region(_pread_exact(fd, position, end - position), offsets)
            position = end

    def _walk_tail(self, fd: int, position: int, size: int) -> tuple[Batch | None, int]:
        """Whole records from `position` on, walked in Python: only the last, cut batch needs it."""
        tail = _pread_exact(fd, position, size - position)
        cap_field = struct.Struct(self._order + "I")
        offsets: list[int] = []
        cursor = 0
        while cursor + RECORD_HEADER_BYTES <= len(tail):
            caplen = cap_field.unpack_from(tail, cursor + 8)[0]
            if cursor + RECORD_HEADER_BYTES + caplen > len(tail):
                break
            offsets.append(cursor)
            cursor += RECORD_HEADER_BYTES + caplen
        if not offsets:
            return None, position
        batch = self._batch_from_region(tail[:cursor], np.array(offsets, dtype=np.int64))
        return batch, position + cursor

    def _batch_from_region(self, region: bytearray, offsets: np.ndarray) -> Batch:
        """Turn a run of the file's own records into a Batch (little-endian, ns headers).

        The region is read once; headers of µs or big-endian files are rewritten in place, so a
        packet's bytes are copied exactly once from the page cache.
        """
        raw = np.frombuffer(region, dtype=np.uint8)
        idx = offsets[:, None] + np.arange(RECORD_HEADER_BYTES)
        fields = raw[idx].view(np.dtype(self._order + "u4")).reshape(-1, 4).astype(np.int64)
        frac = fields[:, 1] if self._nano else fields[:, 1] * 1000
        ts_ns = fields[:, 0] * 1_000_000_000 + frac
        caplen, wirelen = fields[:, 2], fields[:, 3]
        if not (self._order == "<" and self._nano):
            headers = np.empty((len(offsets), 4), dtype="<u4")
            headers[:, 0], headers[:, 1] = fields[:, 0], frac
            headers[:, 2], headers[:, 3] = caplen, wirelen
            raw[idx] = headers.view(np.uint8).reshape(-1, RECORD_HEADER_BYTES)
        return Batch(region, offsets, ts_ns, caplen, wirelen, self.linktype, self.snaplen)


def _pread_exact(fd: int, position: int, length: int) -> bytearray:
    """`length` bytes at `position`, read straight into one buffer."""
    buf = bytearray(length)
    view = memoryview(buf)
    done = 0
    while done < length:
        got = os.preadv(fd, [view[done:]], position + done)
        if got == 0:
            raise SourceError(f"file shrank while reading at offset {position + done}")
        done += got
    return buf


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

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> tuple[int, int, int]:
        """(received, dropped by the kernel, dropped by the interface) as libpcap reports them."""
        return tuple(self._handle.stats())

    def batches(self) -> Iterator[Batch]:
        full = False
        while not self._stop.is_set():
            if not full:
                select.select([self._fd], [], [], self._poll_timeout_s)
            try:
                data, meta = self._handle.next_batch(self.batch_packets)
            except pcapy.PcapError as exc:
                raise SourceError(f"interface {self.name}: {exc}") from exc
            full = len(meta) >= 16 * self.batch_packets  # more may be waiting: read on at once
            if not meta:
                continue
            fields = np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4).astype(np.int64)
            ts_ns = fields[:, 0] * 1_000_000_000 + fields[:, 1] * 1000
            caplen = fields[:, 3]
            records, offsets = build_records(ts_ns, caplen, caplen, data, fields[:, 2])
            yield Batch(records, offsets, ts_ns, caplen, caplen.copy(), self.linktype,
                        self.snaplen)
