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
Here a file's header is read and the file cut into windows; where a window lies in memory is
window_buffers.py, how a window becomes a Batch is window_batches.py.
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
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

from pushcap import defaults
from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch
from pushcap.capture.linktypes import linktype_refusal, max_caplen
from pushcap.capture.pcap_rules import (
    FileRules,
    Lengths,
    RuleReader,
    adjusted_snaplen,
    corrupt_record,
    lengths_rule,
)
from pushcap.capture.window_batches import WindowBatcher
from pushcap.capture.window_buffers import MappedFile, ReadBuffer, map_read_only

log = logging.getLogger("pushcap.capture")

PCAPNG_SHB = 0x0A0D0D0A


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


def _byte_order_and_unit(path: Path, magic: bytes) -> tuple[str, bool]:
    """A classic pcap file's byte order ("<" or ">") and whether its timestamps are in
    nanoseconds, as its magic number says."""
    magic_le = struct.unpack("<I", magic)[0]
    if magic_le in (defaults.PCAP_MAGIC_US, defaults.PCAP_MAGIC_NS):
        return "<", magic_le == defaults.PCAP_MAGIC_NS
    magic_be = struct.unpack(">I", magic)[0]
    if magic_be not in (defaults.PCAP_MAGIC_US, defaults.PCAP_MAGIC_NS):
        raise SourceError(f"{path}: not a pcap or pcapng file (magic {magic.hex()})")
    return ">", magic_be == defaults.PCAP_MAGIC_NS


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
        self._order, self._nano = _byte_order_and_unit(path, header[:4])
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
        # The windows' walk stops before a record longer than the snaplen too: from there
        # libpcap's rules apply.
        self._windows = WindowBatcher(self._order, self._nano, batch_packets,
                                      min(self._max_caplen, self.snaplen), self.linktype,
                                      self.snaplen)

    def batches(self, reuse_buffer: bool = False) -> Iterator[Batch]:
        """The file's packets, batch by batch.

        reuse_buffer: read every window into one buffer (`ReadBuffer`), so a batch's records
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
            mapped = map_read_only(fd, size) if self._order == "<" and self._mapped else None
            buffer = ReadBuffer() if reuse_buffer and mapped is None else None
            yield from self._walk(fd, size, mapped, buffer)

    def _walk(self, fd: int, size: int, mapped: MappedFile | None,
              buffer: ReadBuffer | None) -> Iterator[Batch]:
        """Cut the file into windows of whole records, each window one Batch.

        Each record is read once: in place in the mapping, or straight into the batch's buffer.
        Where each record starts is found by the C walk (`native_walk`) or, where it was not
        built, by `walk.record_starts` (vectorized); libpcap is not needed to walk the file.
        """
        windows = self._windows
        position = 24
        window = defaults.READ_FIRST_WINDOW_BYTES
        while position < size:
            length = min(window, size - position)
            if mapped is not None:
                region, batch = windows.map(mapped.view[position:position + length],
                                            mapped.scratch)
            else:
                region, batch = windows.read(fd, position, length, buffer)
            if batch is None:
                caplen = windows.caplen_at(region) if length >= RECORD_HEADER_BYTES else 0
                if caplen > self._max_caplen:
                    raise corrupt_record(self.path, position, caplen, self._max_caplen)
                if caplen > self.snaplen:  # libpcap cuts it to the snaplen
                    yield from self._read_by_rules(fd, position, size)
                    return
                if position + length >= size:
                    break  # a cut record at the end of the file
                # One record larger than the window: read exactly that record next time.
                window = max(window, RECORD_HEADER_BYTES + windows.caplen_at(region))
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

