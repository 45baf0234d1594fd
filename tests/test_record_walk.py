"""The vectorized record walk of pcap files equals the plain sequential walk, for any content.

Payloads are filled with bytes that look like record headers on purpose: a wrong guess may only
cost speed, never move a record boundary.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from walk_helpers import make_region, sequential

from pushcap.capture import source as source_module
from pushcap.capture import window_buffers
from pushcap.capture.source import PcapFileSource
from pushcap.capture.walk import record_starts


@pytest.mark.parametrize("seed", range(60))
def test_lanes_equal_the_sequential_walk(seed):
    rng = np.random.default_rng(seed)
    order = "<" if seed % 2 else ">"
    region = make_region(rng, order, int(rng.integers(1, 400)), evil=seed % 3 == 0)
    cut = int(rng.integers(0, 40)) if seed % 4 == 0 else 0  # a record cut at the end
    region = bytearray(region[:len(region) - cut] if cut < len(region) else region)
    needle = bytes(region[1:4]) if order == "<" else bytes(region[0:3])
    offsets, end = record_starts(region, order, (needle, 1 if order == "<" else 0))
    want_offsets, want_end = sequential(bytes(region), order)
    assert offsets.tolist() == want_offsets and end == want_end


def test_a_reused_read_buffer_yields_the_same_batches(tmp_path, monkeypatch):
    """Replay reads every window of a big-endian file into one buffer (a little-endian one is
    mapped): each batch, while it is current, holds what a batch with a buffer of its own holds
    (also when one record outgrows the buffer)."""
    rng = np.random.default_rng(7)
    region = make_region(rng, ">", 3000, evil=False)
    path = tmp_path / "t.pcap"
    path.write_bytes(struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + region)
    fresh = [(b.records.tobytes(), b.ts_ns.tolist(), b.caplen.tolist())
             for b in PcapFileSource(path, 100).batches()]
    seen = [(b.records.tobytes(), b.ts_ns.tolist(), b.caplen.tolist())
            for b in PcapFileSource(path, 100).batches(reuse_buffer=True)]
    assert seen == fresh and len(fresh) > 10
    original = source_module.ReadBuffer
    monkeypatch.setattr(source_module, "ReadBuffer", lambda: original(4096))  # < most windows
    seen = [(b.records.tobytes(), b.ts_ns.tolist(), b.caplen.tolist())
            for b in PcapFileSource(path, 100).batches(reuse_buffer=True)]
    assert seen == fresh


def test_batches_kept_after_their_pages_were_dropped_still_read_right(tmp_path, monkeypatch):
    """A mapped file's pages behind the reader are unmapped (the RSS stays small); a batch
    still held reads its records back from the page cache, unchanged, and the file itself is
    never written."""
    rng = np.random.default_rng(8)
    region = make_region(rng, "<", 3000, evil=False)
    path = tmp_path / "t.pcap"
    original = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + region
    path.write_bytes(original)
    monkeypatch.setattr(window_buffers, "_DROP_BYTES", 8192)
    dropped = []
    real_madvise = window_buffers.mmap.mmap.madvise

    class Spy(window_buffers.mmap.mmap):
        def madvise(self, option, start=0, length=None):
            dropped.append((option, start, length))
            return real_madvise(self, option, start, length)

    monkeypatch.setattr(window_buffers.mmap, "mmap", Spy)
    kept = list(PcapFileSource(path, 100).batches(reuse_buffer=True))
    assert len(dropped) > 10 and all(o == window_buffers.mmap.MADV_DONTNEED for o, _, _ in dropped)
    assert b"".join(bytes(b.records) for b in kept) == region
    assert path.read_bytes() == original
