"""A live batch's records built in C hold exactly what the records of a pcap file written packet
by packet with `struct` hold, equal the fallback's (numpy headers gathered through a memfd), and
a libpcap table that points outside its packets is refused without a byte read past them."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pushcap.capture import live_pcapy_reader
from pushcap.capture.live_pcapy_reader import PcapyLiveReader
from pushcap.capture.native_records import native_records
from pushcap.capture.source import SourceError


def libpcap_chunks(rng: np.random.Generator, sizes: list[int]) -> list[tuple[bytes, bytes]]:
    """Chunks shaped like pcapy-ng's next_batch(): packets back to back (in a shuffled order
    within the chunk, with gaps, so offsets are really read), and (sec, usec, offset, caplen)."""
    chunks = []
    for size in sizes:
        lengths = rng.integers(0, 1515, size)
        order = rng.permutation(size)
        gaps = rng.integers(0, 5, size)
        starts = np.zeros(size, dtype=np.int64)
        position = 0
        for i in order:
            position += int(gaps[i])
            starts[i] = position
            position += int(lengths[i])
        data = rng.integers(0, 256, position, dtype=np.uint8).tobytes()
        meta = b"".join(struct.pack("=IIII", 1_700_000_000 + int(rng.integers(0, 3)),
                                    int(rng.integers(0, 1_000_000)), int(s), int(n))
                        for s, n in zip(starts, lengths, strict=True))
        chunks.append((data, meta))
    return chunks


def expected_records(chunks: list[tuple[bytes, bytes]]) -> tuple[bytes, list[int], list[int]]:
    """The oracle: each packet's record written with struct, one by one."""
    out, offsets, ts = bytearray(), [], []
    for data, meta in chunks:
        for sec, usec, start, caplen in struct.iter_unpack("=IIII", meta):
            offsets.append(len(out))
            ts.append(sec * 10**9 + usec * 1000)
            out += struct.pack("<IIII", sec, usec * 1000, caplen, caplen)
            out += data[start:start + caplen]
    return bytes(out), offsets, ts


def stand_in() -> PcapyLiveReader:
    """pcapy-ng's reader (the C capture builds its records itself), with no handle and nothing
    to wait for: only its chunks are made a batch."""
    return PcapyLiveReader("fake0", None, -1, 8192, 0, 1, 262144, None, None)


def test_the_builder_is_built_and_loads():
    """`make setup` builds it; without it live batches fall back to the slower memfd gather."""
    assert native_records() is not None


@pytest.mark.parametrize("sizes", [[1], [3, 0, 5], [200], [17, 1, 64, 9]])
def test_records_equal_the_struct_oracle_and_the_fallback(sizes, monkeypatch):
    chunks = libpcap_chunks(np.random.default_rng(len(sizes) * 100 + sum(sizes)), sizes)
    want, want_offsets, want_ts = expected_records(chunks)
    batch = stand_in().batch(chunks)
    assert batch.records.tobytes() == want
    assert batch.offsets.tolist() == want_offsets
    assert batch.ts_ns.tolist() == want_ts
    lengths = [n for _, meta in chunks for *_, n in struct.iter_unpack("=IIII", meta)]
    assert batch.caplen.tolist() == lengths == batch.wirelen.tolist()
    monkeypatch.setattr(live_pcapy_reader, "native_records", lambda: None)
    fallback = stand_in().batch(chunks)
    assert bytes(fallback.records) == want
    assert fallback.offsets.tolist() == want_offsets


@pytest.mark.parametrize("bad", ["offset", "caplen"])
def test_a_row_pointing_outside_its_packets_is_refused(bad):
    data = bytes(100)
    rows = [(1, 0, 0, 10), (1, 1, 40, 60)]  # 70 bytes in all: within the 100 handed over
    rows[1] = (1, 1, 90, 60) if bad == "offset" else (1, 1, 40, 61)
    meta = b"".join(struct.pack("=IIII", *row) for row in rows)
    with pytest.raises(SourceError, match="fake0: libpcap meta row 1 points outside"):
        stand_in().batch([(data, meta)])


def test_a_table_claiming_more_bytes_than_it_came_with_is_refused_before_any_allocation():
    """8192 rows of caplen 2**32-1 would size a 32 TiB buffer if the table were trusted."""
    meta = struct.pack("=IIII", 1, 0, 0, 0xFFFFFFFF) * 8192
    with pytest.raises(SourceError, match="claims more packet bytes than it handed over"):
        stand_in().batch([(bytes(100), meta)])
