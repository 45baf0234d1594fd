"""A live handle read through pcapy-ng, batch by batch, where the C capture was not built
(live.py).

pcapy-ng's `next_batch()` hands over many packets per call (their bytes and a table of
timestamps, offsets and lengths); the records of a batch are assembled from that in one C pass
(`native_records`; without the library, by the kernel: `batch.records_from_slices`). Python
waits for packets in select(), and for more of a trickle once, so trickles are coalesced into
batches of thousands.
"""

from __future__ import annotations

import select
import threading

import numpy as np
import pcapy

from pushcap import defaults
from pushcap.capture import iov
from pushcap.capture.batch import Batch, build_records, records_from_slices
from pushcap.capture.native_records import native_records
from pushcap.capture.source import SourceError
from pushcap.capture.wake import Wake


class PcapyLiveReader:
    """One pcapy-ng handle read for `LiveSource`. What it reads comes as chunks of (packet
    bytes, meta table) as `next_batch()` returns them; `batch` makes them one Batch. The first
    error libpcap reports is kept in `error`, for the source to raise after the packets read
    before it (packets taken from libpcap exist nowhere else)."""

    def __init__(self, name: str, handle, fd: int, batch_packets: int, poll_timeout_ms: int,
                 linktype: int, snaplen: int, stop: threading.Event, wake: Wake) -> None:
        """`stop`: the source stops (no coalescing wait then); `wake`: a waiting trigger ends
        the coalescing wait (`LiveSource.hurry`)."""
        self.name = name
        self.fd = fd
        self.batch_packets = batch_packets
        self.linktype = linktype
        self.snaplen = snaplen
        self.error: SourceError | None = None
        self._handle = handle
        self._poll_timeout_s = poll_timeout_ms / 1000
        self._stop = stop
        self._wake = wake

    def turn(self, full: bool) -> tuple[list, int, bool]:
        """`LiveSource.batches`' turn: wait for packets (not when the last turn stopped
        `full`), take what is ready and, when that is only a trickle, what arrives within
        `PCAPY_COALESCE_MS` once. (the chunks, their packets, whether it stopped full: more may be
        waiting, read on at once)."""
        if not full:
            select.select([self.fd], [], [], self._poll_timeout_s)
        chunks = self.drain(self.batch_packets)
        packets = _count(chunks)
        if 0 < packets < self.batch_packets // 4 and not self._stop.is_set() \
                and self.error is None:
            self._coalesce_wait()
            self.drain(self.batch_packets - packets, chunks)
            packets = _count(chunks)
        return chunks, packets, packets >= self.batch_packets

    def _coalesce_wait(self) -> None:
        """The wait for more of a trickle: `PCAPY_COALESCE_MS`, or until a waiting trigger
        hurries it (`LiveSource.hurry`)."""
        select.select([self._wake.fd], [], [], defaults.PCAPY_COALESCE_MS / 1000)
        self._wake.clear()

    def drain(self, limit: int, chunks: list[tuple[bytes, bytes]] | None = None
              ) -> list[tuple[bytes, bytes]]:
        """(packet bytes, meta) chunks from libpcap, added to `chunks` (the batch gathered so
        far), until it has nothing ready or `limit` more packets are taken, without waiting."""
        chunks = [] if chunks is None else chunks
        while limit > 0:
            try:
                data, meta = self._handle.next_batch(limit)
            except pcapy.PcapError as exc:
                if self.error is None:
                    self.error = SourceError(f"interface {self.name}: {exc}")
                    self.error.__cause__ = exc
                break
            if not meta:
                break
            chunks.append((data, meta))
            limit -= len(meta) // 16  # a row: sec, usec, offset, caplen (u32)
        return chunks

    def batch(self, chunks: list) -> Batch:
        """One Batch from libpcap's chunks: the packets of every chunk go into the records
        straight from the chunk's buffer (no join of the chunks first)."""
        builder = native_records()
        if builder is not None:
            try:
                records, offsets, ts_ns, caplen = builder.from_chunks(chunks)
            except ValueError as exc:
                raise SourceError(f"interface {self.name}: {exc}") from exc
            return Batch(records, offsets, ts_ns, caplen, caplen.copy(), self.linktype,
                         self.snaplen)
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

    def stats(self) -> tuple[int, int, int]:
        """libpcap's (received, dropped by the kernel, dropped by the interface)."""
        return self._handle.stats()

    def close(self) -> None:
        try:
            self._handle.close()
        except pcapy.PcapError:  # already closed
            pass


def _count(chunks: list[tuple[bytes, bytes]]) -> int:
    """Packets in what `drain` gathered."""
    return sum(len(meta) for _, meta in chunks) // 16
