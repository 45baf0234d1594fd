"""The C pick of an indexed query's candidates (archive/native_pick.py, csrc/querypick.c) gives
what numpy's way in select.py gives: the same records kept, timestamps and wire lengths, and
the same refusal of an index that does not describe the file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pushcap.archive import select
from pushcap.archive.native_pick import native_pick
from pushcap.capture.batch import RECORD_HEADER_BYTES

needs_c = pytest.mark.skipif(native_pick() is None, reason="the C library is not built")
PLAIN = Path("data.pcap")


def records(count: int, nano: bool, seed: int = 3) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A pcap body of `count` records (some spanning pages): (bytes, offsets, caplen)."""
    rng = np.random.default_rng(seed)
    parts, offsets, caplens, at = [], [], [], 24
    for i in range(count):
        caplen = int(rng.choice([0, 60, 1514, 5000, 9000]))
        fraction = int(rng.integers(0, 1_000_000_000 if nano else 1_000_000))
        header = struct.pack("<IIII", 1_700_000_000 + i // 4, fraction, caplen, caplen + i)
        parts.append(header + bytes(rng.integers(0, 256, caplen, dtype=np.uint8)))
        offsets.append(at)
        caplens.append(caplen)
        at += RECORD_HEADER_BYTES + caplen
    return bytes(24) + b"".join(parts), np.array(offsets), np.array(caplens)


def numpy_way(buffer, offsets, caplen, nano, start_ns, end_ns):
    head = select._headers(buffer, offsets)
    ts = head[:, 0] * 1_000_000_000 + head[:, 1] * (1 if nano else 1000)
    keep = np.flatnonzero((ts >= start_ns) & (ts < end_ns))
    return keep, ts[keep], head[keep, 3]


@needs_c
@pytest.mark.parametrize("nano", [True, False])
def test_the_c_pick_keeps_what_numpy_keeps(nano: bool) -> None:
    data, offsets, caplen = records(400, nano)
    rows = np.sort(np.random.default_rng(5).choice(len(offsets), 150, replace=False))
    windows = [(0, 2**62), (1_700_000_010 * 10**9 + 5, 1_700_000_060 * 10**9),
               (1_800_000_000 * 10**9, 1_900_000_000 * 10**9)]
    for start_ns, end_ns in windows:
        got = native_pick().pick(data, offsets[rows], caplen[rows], nano, start_ns, end_ns)
        want = numpy_way(data, offsets[rows], caplen[rows], nano, start_ns, end_ns)
        for mine, theirs in zip(got, want, strict=True):
            assert mine.tolist() == theirs.tolist()


@needs_c
def test_the_c_pick_refuses_an_index_that_does_not_describe_the_file() -> None:
    data, offsets, caplen = records(50, True)
    pick = native_pick().pick
    wrong = caplen.copy()
    wrong[7] += 1
    assert pick(data, offsets, wrong, True, 0, 2**62) is None
    beyond = offsets.copy()
    beyond[-1] = len(data) - RECORD_HEADER_BYTES + 1
    assert pick(data, beyond, caplen, True, 0, 2**62) is None
    assert pick(data, np.array([-1]), np.array([0]), True, 0, 2**62) is None
    with pytest.raises(select.StaleIndex):
        select._pick_chunk(data, offsets, wrong, True, None, 0, 2**62, PLAIN)


@pytest.mark.parametrize("use_c", [True, False])
def test_pick_chunk_alike_with_and_without_the_library(use_c: bool, monkeypatch) -> None:
    if use_c and native_pick() is None:
        pytest.skip("the C library is not built")
    if not use_c:
        monkeypatch.setattr(select, "native_pick", lambda: None)
    data, offsets, caplen = records(300, True)
    start_ns, end_ns = 1_700_000_020 * 10**9, 1_700_000_050 * 10**9
    at, ts, kept_caplen = select._pick_chunk(data, offsets, caplen, True, None, start_ns,
                                             end_ns, PLAIN)
    keep, want_ts, _ = numpy_way(data, offsets, caplen, True, start_ns, end_ns)
    assert at.tolist() == offsets[keep].tolist()
    assert ts.tolist() == want_ts.tolist()
    assert kept_caplen.tolist() == caplen[keep].tolist()
    wrong = caplen.copy()
    wrong[0] += 1
    with pytest.raises(select.StaleIndex):
        select._pick_chunk(data, offsets, wrong, True, None, start_ns, end_ns, PLAIN)
