"""The record walk in C equals the sequential walk, and a file read with it gives exactly the
batches the numpy walk gives (big-endian header rewrite included), for every pcap flavour."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from walk_helpers import make_region, sequential

from pushcap.capture import window_batches
from pushcap.capture.native_walk import native_walk
from pushcap.capture.source import PcapFileSource, SourceError

MAGIC_US, MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D


def test_the_library_is_built_and_loads():
    """`make setup` builds it; without it replay silently falls back to the slower numpy walk."""
    assert native_walk() is not None


@pytest.mark.parametrize("seed", range(40))
def test_native_walk_equals_the_sequential_walk(seed):
    rng = np.random.default_rng(1000 + seed)
    order = "<" if seed % 2 else ">"
    region = make_region(rng, order, int(rng.integers(1, 400)), evil=seed % 3 == 0)
    cut = int(rng.integers(1, 40)) if seed % 4 == 0 else 0  # a record cut at the end
    region = region[:max(0, len(region) - cut)]
    want_offsets, want_end = sequential(region, order)
    limit = len(want_offsets) if seed % 5 else max(1, len(want_offsets) // 2)  # batch limit
    want_offsets = want_offsets[:limit]
    if limit < len(sequential(region, order)[0]):
        want_end = sequential(region, order)[0][limit]
    buf = np.frombuffer(bytearray(region), dtype=np.uint8)
    count, end, offsets, ts_ns, caplen, wirelen = native_walk().walk(buf, order == ">", False,
                                                                      limit)
    assert (count, end) == (len(want_offsets), want_end)
    assert offsets.tolist() == want_offsets
    fields = [struct.unpack_from(order + "IIII", region, o) for o in want_offsets]
    assert ts_ns.tolist() == [sec * 10**9 + usec * 1000 for sec, usec, _, _ in fields]
    assert caplen.tolist() == [f[2] for f in fields]
    assert wirelen.tolist() == [f[3] for f in fields]
    rewritten = bytes(buf)
    for o, field in zip(want_offsets, fields, strict=True):  # little-endian, unit kept
        assert struct.unpack_from("<IIII", rewritten, o) == field
    if order == "<":
        assert rewritten == bytes(region)  # a little-endian region is only read


def pcap_file(path, order: str, nano: bool, region: bytes) -> None:
    magic = MAGIC_NS if nano else MAGIC_US
    path.write_bytes(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1) + region)


def batches(path, batch_packets: int) -> list:
    return [(b.records.tobytes(), b.offsets.tolist(), b.ts_ns.tolist(), b.caplen.tolist(),
             b.wirelen.tolist()) for b in PcapFileSource(path, batch_packets).batches()]


@pytest.mark.parametrize("seed", range(10))
def test_a_walk_resumed_chunk_by_chunk_equals_one_walk(seed):
    """Replay walks each chunk as it is read: records cut by a chunk's end are resumed."""
    rng = np.random.default_rng(2000 + seed)
    order = "<" if seed % 2 else ">"
    region = make_region(rng, order, int(rng.integers(50, 400)), evil=seed % 3 == 0)
    whole = native_walk().walk(np.frombuffer(bytearray(region), dtype=np.uint8), order == ">",
                               False, 10**6)
    buf = np.frombuffer(bytearray(region), dtype=np.uint8)
    walk = native_walk().window(buf, order == ">", False, 10**6)
    available = 0
    while available < len(region):
        available = min(len(region), available + int(rng.integers(1, 3000)))
        walk.advance(available)
    end, *arrays = walk.result()
    assert (walk.count, end) == whole[:2]
    assert [a.tolist() for a in arrays] == [a.tolist() for a in whole[2:]]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1000, 1 << 20])
def test_files_read_alike_with_either_walk(tmp_path, monkeypatch, order, nano, chunk_bytes):
    rng = np.random.default_rng(5)
    region = make_region(rng, order, 2500, evil=True)
    region += struct.pack(order + "IIII", 1, 2, 262144, 262144) + b"x" * 262144  # > a window
    region += region[:50]  # a record cut at the end of the file
    path = tmp_path / "t.pcap"
    pcap_file(path, order, nano, region)
    monkeypatch.setattr(window_batches, "CHUNK_BYTES", chunk_bytes)
    with_c = batches(path, 300)
    monkeypatch.setattr(window_batches, "native_walk", lambda: None)
    with_numpy = batches(path, 300)
    assert with_c == with_numpy
    assert sum(len(b[1]) for b in with_c) == len(sequential(region, order)[0]) > 2500


def test_the_walk_refuses_buffers_it_must_not_write_or_read_past():
    data = struct.pack("<IIII", 1, 2, 4, 4) + b"abcd"
    with pytest.raises(ValueError):  # a big-endian region is rewritten: read-only is refused
        native_walk().window(np.frombuffer(data, dtype=np.uint8), True, False, 10)
    read_only = native_walk().window(np.frombuffer(data, dtype=np.uint8), False, False, 10)
    assert not read_only.advance(len(data)) and read_only.count == 1
    walk = native_walk().window(np.frombuffer(bytearray(data), dtype=np.uint8), False, False, 10)
    with pytest.raises(ValueError):
        walk.advance(len(data) + 1)
    assert not walk.advance(len(data)) and walk.count == 1


@pytest.mark.parametrize("batch_packets", [300, 5000])  # 5000: the record is inside a window
@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
def test_a_record_longer_than_libpcap_allows_is_corruption_named_by_its_offset(
        tmp_path, monkeypatch, native, order, batch_packets):
    """tcpdump -r stops there ("invalid packet capture length"); copied on, the record made an
    output file libpcap cannot read. The packets before it are all delivered first."""
    rng = np.random.default_rng(9)
    good = make_region(rng, order, 700, evil=False)
    tail = struct.pack(order + "IIII", 1, 2, 262145, 262145) + b"x" * 262145
    path = tmp_path / "t.pcap"
    pcap_file(path, order, False, good + tail + good)
    if not native:
        monkeypatch.setattr(window_batches, "native_walk", lambda: None)
    got = []
    with pytest.raises(SourceError, match=rf"t.pcap: the record at offset {24 + len(good)} "
                       r"claims 262145 captured bytes, more than libpcap's limit of 262144"):
        for batch in PcapFileSource(path, batch_packets).batches():
            got.append(len(batch))
    assert sum(got) == len(sequential(good, order)[0]) == 700


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
def test_a_microsecond_field_of_a_second_or_more_carries_into_the_seconds(
        tmp_path, monkeypatch, native, order):
    """ts_ns carries usec 5,000,000 into the seconds (as 5e9 ns it once wrapped at 2**32 in a
    rewritten header); the header itself is kept as the file has it."""
    record = struct.pack(order + "IIII", 100, 5_000_000, 4, 4) + b"abcd"
    path = tmp_path / "t.pcap"
    pcap_file(path, order, False, record * 3)
    if not native:
        monkeypatch.setattr(window_batches, "native_walk", lambda: None)
    (batch,) = list(PcapFileSource(path, 300).batches())
    assert batch.ts_ns.tolist() == [105 * 10**9] * 3
    # The header keeps the file's own fields (as `tcpdump -r IN -w OUT` copies them).
    assert [struct.unpack_from("<II", batch.records, int(o)) for o in batch.offsets] == \
        [(100, 5_000_000)] * 3 and not batch.nano


def walk_until(region: bytes, limit: int) -> tuple[list[int], int]:
    """The sequential walk, stopping as pcap_walk does: at a cut record, before a record
    claiming more than libpcap's 262144 bytes, or after `limit` records."""
    offsets, pos = [], 0
    while len(offsets) < limit and pos + 16 <= len(region):
        caplen = struct.unpack_from("<I", region, pos + 8)[0]
        if caplen > 262144 or pos + 16 + caplen > len(region):
            break
        offsets.append(pos)
        pos += 16 + caplen
    return offsets, pos


def chained_fakes(rng, packets: int) -> bytes:
    """Records whose payloads are chains of fake, empty, entirely plausible records: a lane
    guessing a start inside one walks fake records until it falls back onto the real chain,
    so it lands on the next lane's start having recorded records that do not exist."""
    ts = 1_700_000_000
    parts = []
    for _ in range(packets):
        fakes = int(rng.integers(0, 120))
        payload = struct.pack("<IIII", ts, 5, 0, 0) * fakes
        parts.append(struct.pack("<IIII", ts, int(rng.integers(0, 10**6)), len(payload),
                                 len(payload)) + payload)
    return b"".join(parts)


@pytest.mark.parametrize("seed", range(60))
def test_the_lanes_walk_equals_the_sequential_walk(seed):
    """A mapped region is walked in 16 lanes from guessed starts: guesses fooled by payloads
    full of fake headers (evil), a record cut at the end, an oversized record in the middle and
    a batch limit anywhere must all give exactly the sequential walk's records and end."""
    rng = np.random.default_rng(3000 + seed)
    region = (make_region(rng, "<", int(rng.integers(300, 3000)), evil=seed % 3 == 1)
              if seed % 3 else chained_fakes(rng, int(rng.integers(300, 3000))))
    if seed % 4 == 1:  # a record libpcap would refuse, somewhere inside
        at = walk_until(region, 10**9)[0][int(rng.integers(1, 250))]
        region = (region[:at] + struct.pack("<IIII", 1, 2, 300000, 300000) + bytes(300000)
                  + region[at:])
    if seed % 5 == 2:
        region = region[:len(region) - int(rng.integers(1, 40))]  # a record cut at the end
    limit = [10**6, int(rng.integers(1, 2000)), 1][seed % 3]
    want_offsets, want_end = walk_until(region, limit)
    buf = np.frombuffer(region, dtype=np.uint8)  # read-only, as a mapping is
    walk = native_walk().window(buf, False, seed % 2 == 0, limit)
    walk.walk_in_lanes(bytearray(3 * 8 * (len(region) // 16 + 17)))
    end, offsets, ts_ns, caplen, wirelen = walk.result()
    assert (walk.count, end) == (len(want_offsets), want_end)
    assert offsets.tolist() == want_offsets
    fields = [struct.unpack_from("<IIII", region, o) for o in want_offsets]
    unit = 1 if seed % 2 == 0 else 1000
    assert ts_ns.tolist() == [sec * 10**9 + frac * unit for sec, frac, _, _ in fields]
    assert caplen.tolist() == [f[2] for f in fields]
    assert wirelen.tolist() == [f[3] for f in fields]


def test_the_lanes_walk_walks_plainly_with_too_little_scratch():
    rng = np.random.default_rng(77)
    region = make_region(rng, "<", 2000, evil=True)
    walk = native_walk().window(np.frombuffer(region, dtype=np.uint8), False, False, 10**6)
    walk.walk_in_lanes(bytearray(64))
    assert walk.result()[1].tolist() == walk_until(region, 10**6)[0]
