"""A live batch's records built in C (`csrc/pcaprecords.c`) from libpcap's chunks.

pcapy-ng's `next_batch()` returns a chunk: the packets back to back and a table of
(sec, usec, offset, caplen) rows. The batch format wants a 16-byte header before every packet.
The fallback (`batch.records_from_slices`) builds the headers with numpy and lets the kernel
interleave them through a memfd: two copies and two system calls a batch, about 0.23 µs a
packet. The C pass copies each packet once, right after libpcap did, about 0.06 µs a packet
(8192-packet batches of 60-1514 bytes, same machine). Where the library is missing
(`native`), `live_pcapy_reader.py` keeps the fallback; tests/test_native_records.py holds
both to the same records.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from pushcap.capture.batch import RECORD_HEADER_BYTES
from pushcap.capture.native import bind

_I64 = ctypes.c_int64
META_ROW_BYTES = 16  # four native uint32 per packet: sec, usec, offset, caplen


class NativeRecords:
    """The loaded function, with the per-batch bookkeeping around it."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._function = library.pcap_records_from_meta
        self._function.restype = _I64
        self._function.argtypes = [ctypes.c_char_p, _I64, ctypes.c_char_p, _I64,
                                   ctypes.c_void_p, _I64, _I64, ctypes.c_void_p,
                                   ctypes.c_void_p, ctypes.c_void_p]

    def from_chunks(self, chunks: list[tuple[bytes, bytes]]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(records, offsets, ts_ns, caplen) of every packet of `chunks`, in order.

        Raises ValueError if a row points outside its chunk's packet bytes: libpcap's table is
        checked, never trusted, before anything is copied from it.
        """
        counts = [len(meta) // META_ROW_BYTES for _, meta in chunks]
        if any(len(meta) % META_ROW_BYTES for _, meta in chunks):
            raise ValueError("a libpcap meta table is not whole rows")
        packets = sum(counts)
        captured = sum(int(np.frombuffer(meta, dtype=np.uint32)[3::4].sum(dtype=np.int64))
                       for _, meta in chunks)
        if captured > sum(len(data) for data, _ in chunks):  # before sizing anything by it
            raise ValueError("libpcap's meta table claims more packet bytes than it handed over")
        records = np.empty(captured + RECORD_HEADER_BYTES * packets, dtype=np.uint8)
        arrays = np.empty((3, packets), dtype=np.int64)
        rows = [arrays[i].ctypes.data for i in range(3)]
        position, row = 0, 0
        for (data, meta), count in zip(chunks, counts, strict=True):
            step = row * 8
            position = self._function(data, len(data), meta, count, records.ctypes.data,
                                      len(records), position, rows[0] + step, rows[1] + step,
                                      rows[2] + step)
            if position < 0:
                raise ValueError(f"libpcap meta row {row - 1 - position} points outside the "
                                 f"packet bytes of its chunk")
            row += count
        return records, arrays[0], arrays[1], arrays[2]


@functools.cache
def native_records() -> NativeRecords | None:
    """The C builder, or None where the library was not built (see `native`) or predates it
    (a `_native` library left from an older build: `make setup` rebuilds it)."""
    return bind(NativeRecords)
