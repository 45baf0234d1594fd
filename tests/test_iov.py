"""writev of many slices through a numpy-built iovec array: the file holds exactly the slices,
in order; short writes continue where the kernel stopped; bad offsets never become pointers."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pushcap.capture import iov
from pushcap.capture.iov import writev_slices


def random_slices(rng: np.random.Generator, size: int, count: int):
    cuts = np.sort(rng.choice(size + 1, size=2 * count, replace=True))
    return cuts[0::2], cuts[1::2]


@pytest.mark.parametrize("count", [1, 3, iov.IOV_MAX, iov.IOV_MAX + 1, 5000])
def test_file_holds_the_slices_in_order(tmp_path, count):
    rng = np.random.default_rng(count)
    data = rng.integers(0, 256, 200_000, dtype=np.uint8)
    starts, ends = random_slices(rng, len(data), count)
    path = tmp_path / "out"
    with path.open("wb") as f:
        written = writev_slices(f.fileno(), data, starts, ends)
    want = b"".join(data[a:b].tobytes() for a, b in zip(starts, ends, strict=True))
    assert path.read_bytes() == want
    assert written == len(want)


def test_bytes_buffers_work_too(tmp_path):
    path = tmp_path / "out"
    with path.open("wb") as f:
        writev_slices(f.fileno(), b"0123456789", np.array([8, 0, 3]), np.array([10, 2, 3]))
    assert path.read_bytes() == b"8901"


@pytest.mark.parametrize("starts, ends", [([-1], [3]), ([0], [11]), ([5], [4]),
                                          ([2**63 - 1], [2**63 - 1]), ([1], [2**63 - 3])])
def test_slices_outside_the_buffer_are_refused(tmp_path, starts, ends):
    with (tmp_path / "out").open("wb") as f, pytest.raises(ValueError):
        writev_slices(f.fileno(), b"0123456789", np.array(starts), np.array(ends))


def test_errors_name_the_cause():
    read_end, write_end = os.pipe()
    os.close(write_end)
    with pytest.raises(OSError) as info:
        writev_slices(read_end, b"abc", np.array([0]), np.array([3]))  # a pipe's read end
    os.close(read_end)
    assert info.value.errno is not None


@pytest.mark.parametrize("written, want_first, want_rest", [
    (0, 0, [5, 7, 9]), (4, 0, [1, 7, 9]), (5, 1, [7, 9]), (6, 1, [6, 9]), (12, 2, [9]),
    (21, 3, []),
])
def test_a_short_write_continues_inside_the_slice_it_stopped_in(written, want_first, want_rest):
    table = np.zeros(3, dtype=iov.IOVEC)
    table["base"] = [1000, 2000, 3000]
    table["len"] = [5, 7, 9]
    if written == 0:
        with pytest.raises(OSError):
            iov._advance(table, 0, 3, written)
        return
    first = iov._advance(table, 0, 3, written)
    assert first == want_first
    assert table["len"][first:].tolist() == want_rest
    if want_rest and want_rest[0] != [5, 7, 9][first]:  # moved inside a slice
        assert table["base"][first] == [1000, 2000, 3000][first] + ([5, 7, 9][first] -
                                                                    want_rest[0])


def test_gather_copies_slices_of_several_buffers_back_to_back():
    first, second = b"abcdefgh", np.frombuffer(b"0123456789", dtype=np.uint8)
    table = np.concatenate([iov.slices(first, np.array([6, 0]), np.array([2, 3])),
                            iov.slices(second, np.array([9, 1]), 1)])
    assert iov.gather(table).tobytes() == b"ghabc91"


def test_records_built_by_the_kernel_equal_joined_ones():
    """build_records through the memfd equals the plain bytes.join it replaces, also with
    threads building at once (each has its own scratch file)."""
    from pushcap.capture import batch as batch_module

    def case(seed: int) -> tuple[bytes, bytes]:
        rng = np.random.default_rng(seed)
        caplen = rng.integers(0, 1600, 3000).astype(np.int64)
        gaps = rng.integers(0, 5, 3000)
        offsets = np.cumsum(caplen + gaps) - caplen - gaps
        data = rng.integers(0, 256, int(offsets[-1] + caplen[-1]), dtype=np.uint8).tobytes()
        ts = rng.integers(0, 2**62, 3000)
        wire = caplen + rng.integers(0, 3, 3000)
        built, _ = batch_module.build_records(ts, caplen, wire, data, offsets)
        headers = np.empty((3000, 4), dtype="<u4")
        headers[:, 0], headers[:, 1] = ts // 10**9, ts % 10**9
        headers[:, 2], headers[:, 3] = caplen, wire
        return bytes(built), batch_module._joined(headers, data, offsets, caplen)

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        for built, joined in pool.map(case, range(12)):
            assert built == joined


def test_packet_slices_outside_the_data_are_refused():
    from pushcap.capture.batch import build_records
    with pytest.raises(ValueError):
        build_records(np.array([1]), np.array([10]), np.array([10]), b"short", np.array([0]))


@pytest.mark.parametrize("start, length", [(2**63 - 1, 2), (1, 2**63 - 4), (11, 0)])
def test_offsets_that_would_overflow_are_refused(start, length):
    with pytest.raises(ValueError):
        iov.slices(b"0123456789", np.array([start]), np.array([length]))
