"""The unit that moves through pushcap: a batch of packets as ready-to-write pcap records.

`records` holds the packets exactly as they appear in a little-endian pcap file: for each packet
a 16-byte header (ts_sec u32, ts fraction u32, caplen u32, wirelen u32) followed by caplen bytes.
The fraction is in nanoseconds (magic 0xa1b23c4d) for live capture and pcapng, and in the input
file's own unit for a classic pcap file (`nano`): a replay then writes the input's records without
rewriting a byte, as `tcpdump -r IN -w OUT` does. Writing a run of consecutive selected packets
to a file is therefore one slice and one write; the per-packet int64 columns give random access
for filters, splitting and triggers without a Python object per packet.
"""

from __future__ import annotations

import struct

from pushcap import defaults

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:  # numpy is imported where it is used: a replay never needs it (see `columns`)
    import numpy as np

RECORD_HEADER_BYTES = 16
PCAP_FILE_HEADER = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, dlt
PCAP_FILE_HEADER_BYTES = PCAP_FILE_HEADER.size


def pcap_file_header(linktype: int, snaplen: int, nano: bool = True) -> bytes:
    """The 24-byte header every pushcap output file starts with (LE; `nano`: the records'
    timestamp fraction is in ns, else µs; see `Batch.nano`)."""
    magic = defaults.PCAP_MAGIC_NS if nano else defaults.PCAP_MAGIC_US
    return PCAP_FILE_HEADER.pack(magic, 2, 4, 0, 0, snaplen, linktype)


class Batch:
    """Packets of one interface in arrival order.

    offsets[i] is where packet i's 16-byte record header starts in `records`; its data starts at
    offsets[i] + 16 and is caplen[i] bytes long. ts_ns is int64 nanoseconds since the epoch.
    `seq` is the ring sequence number (set by the ring; 0 outside one). `nano`: the headers in
    `records` hold a nanosecond fraction (else microseconds; ts_ns is in ns either way).

    The per-packet columns may be given as numpy int64 arrays or as int64 memoryviews (a replay
    builds them without numpy, see `native_walk`); `offsets`, `ts_ns`, `caplen` and `wirelen`
    always read as numpy arrays (a memoryview is wrapped, without a copy, on first use), while
    `columns` hands them over as given, to the C code that needs no numpy. A batch is never
    modified once it exists (the wrapping only caches a view of the same memory).
    """

    __slots__ = ("records", "_offsets", "_ts_ns", "_caplen", "_wirelen", "linktype", "snaplen",
                 "seq", "nano")

    def __init__(self, records, offsets, ts_ns, caplen, wirelen, linktype: int, snaplen: int,
                 seq: int = 0, nano: bool = True) -> None:
        self.records = records  # uint8 buffer: bytes, bytearray, memoryview or numpy array
        self._offsets, self._ts_ns, self._caplen, self._wirelen = offsets, ts_ns, caplen, wirelen
        self.linktype = linktype
        self.snaplen = snaplen
        self.seq = seq
        self.nano = nano

    def __repr__(self) -> str:
        return (f"Batch({len(self)} packets, {self.nbytes} bytes, linktype={self.linktype}, "
                f"seq={self.seq})")

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def offsets(self) -> np.ndarray:
        return self._array("_offsets")

    @property
    def ts_ns(self) -> np.ndarray:
        return self._array("_ts_ns")

    @property
    def caplen(self) -> np.ndarray:
        return self._array("_caplen")

    @property
    def wirelen(self) -> np.ndarray:
        return self._array("_wirelen")

    @property
    def columns(self) -> tuple:
        """(offsets, ts_ns, caplen, wirelen) as given: int64 arrays or memoryviews."""
        return self._offsets, self._ts_ns, self._caplen, self._wirelen

    def _array(self, slot: str) -> np.ndarray:
        value = getattr(self, slot)
        if isinstance(value, memoryview):
            import numpy as np

            value = np.frombuffer(value, dtype=np.int64)
            setattr(self, slot, value)
        return value

    @property
    def nbytes(self) -> int:
        """Size of the pcap records (what a writer copies out)."""
        return len(self.records)

    @property
    def memory_bytes(self) -> int:
        """What holding this batch costs: the records plus the per-packet arrays."""
        return len(self.records) + sum(memoryview(a).nbytes for a in self.columns)

    def rows(self, start: int, stop: int) -> Batch:
        """Packets start..stop-1 (sharing this batch's buffer)."""
        if start == 0 and stop >= len(self):
            return self
        part = slice(start, stop)
        return Batch(self.records, *(column[part] for column in self.columns), self.linktype,
                     self.snaplen, self.seq, self.nano)

    def tail(self, start: int) -> Batch:
        """The packets from `start` on."""
        return self.rows(start, len(self))

    def with_seq(self, seq: int) -> Batch:
        return Batch(self.records, *self.columns, self.linktype, self.snaplen, seq, self.nano)


def build_records(ts_ns: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
                  data: bytes | memoryview | np.ndarray, data_offsets: np.ndarray
                  ) -> tuple[bytes | np.ndarray, np.ndarray]:
    """Interleave 16-byte pcap headers with packet data taken from `data` at `data_offsets`.

    Returns (records, record_offsets). See `records_from_slices`.
    """
    from pushcap.capture import iov

    records, record_offsets = records_from_slices(ts_ns, caplen, wirelen,
                                                  iov.slices(data, data_offsets, caplen))
    if records is None:
        records = _joined(_headers(ts_ns, caplen, wirelen), data, data_offsets, caplen)
    return records, record_offsets


def records_from_slices(ts_ns: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
                        packets: np.ndarray) -> tuple[bytes | np.ndarray | None, np.ndarray]:
    """Records for packets given as an iovec table (`iov.slices`, one entry per packet, from
    one buffer or several, kept alive by the caller during the call).

    The headers come from numpy; headers and packet bytes are then copied back to back by the
    kernel from one iovec array (`iov.gather`), so nothing runs per packet in Python. Records
    are None where the kernel cannot do that (no memfd): `build_records` then joins in Python.
    """
    import numpy as np

    from pushcap.capture import iov

    n = len(caplen)
    if n == 0:
        return b"", np.zeros(0, dtype=np.int64)
    headers = _headers(ts_ns, caplen, wirelen)
    record_sizes = caplen.astype(np.int64) + RECORD_HEADER_BYTES
    record_offsets = np.zeros(n, dtype=np.int64)
    np.cumsum(record_sizes[:-1], out=record_offsets[1:])
    table = np.empty(2 * n, dtype=iov.IOVEC)
    table[0::2] = iov.slices(headers, np.arange(n, dtype=np.int64) * RECORD_HEADER_BYTES,
                             RECORD_HEADER_BYTES)
    table[1::2] = packets
    return iov.gather(table), record_offsets


def _headers(ts_ns: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray) -> np.ndarray:
    """The 16-byte record headers (ts_sec, ts_nsec, caplen, wirelen; little-endian) as rows."""
    import numpy as np

    headers = np.empty((len(caplen), 4), dtype="<u4")
    headers[:, 0] = ts_ns // 1_000_000_000
    headers[:, 1] = ts_ns % 1_000_000_000
    headers[:, 2] = caplen
    headers[:, 3] = wirelen
    return headers


def _joined(headers: np.ndarray, data, data_offsets: np.ndarray, caplen: np.ndarray) -> bytes:
    """`build_records` without memfd: one bytes.join of memoryview slices (slower: a Python
    object per header and per packet)."""
    n = len(caplen)
    header_bytes = memoryview(headers.tobytes())
    view = memoryview(data).cast("B")
    parts = [None] * (2 * n)
    parts[0::2] = map(header_bytes.__getitem__, map(slice, range(0, n * RECORD_HEADER_BYTES,
                                                                 RECORD_HEADER_BYTES),
                                                     range(RECORD_HEADER_BYTES,
                                                           (n + 1) * RECORD_HEADER_BYTES,
                                                           RECORD_HEADER_BYTES)))
    ends = (data_offsets + caplen).tolist()
    parts[1::2] = map(view.__getitem__, map(slice, data_offsets.tolist(), ends))
    return b"".join(parts)
