"""The ring: bounds, cursors, visible loss, and never blocking the writer."""

from __future__ import annotations

import threading
import time

import numpy as np

from pushcap.capture.batch import Batch, build_records
from pushcap.capture.ring import Ring


def make_batch(first_ts_s: float, packets: int, size: int = 100) -> Batch:
    ts = (np.arange(packets) * 1_000_000 + int(first_ts_s * 1e9)).astype(np.int64)
    caplen = np.full(packets, size, dtype=np.int64)
    data = bytes(size * packets)
    records, offsets = build_records(ts, caplen, caplen, data, np.arange(packets) * size)
    return Batch(records, offsets, ts, caplen, caplen.copy(), 1, 65535)


def test_cursor_reads_everything_in_order():
    ring = Ring("x", 1, 65535, max_seconds=60, max_bytes=1 << 30)
    cursor = ring.cursor()
    for i in range(5):
        ring.append(make_batch(i, 10))
    got = cursor.read()
    assert [int(b.ts_ns[0]) for b in got] == [i * 10**9 for i in range(5)]
    assert cursor.read() == [] and cursor.missed_packets == 0


def test_byte_bound_evicts_oldest_and_slow_reader_counts_loss():
    one = make_batch(0, 10)
    ring = Ring("x", 1, 65535, max_seconds=3600, max_bytes=3 * one.memory_bytes)
    slow = ring.cursor()
    for i in range(10):
        ring.append(make_batch(i, 10))
    packets, nbytes, _ = ring.span()
    assert nbytes <= 3 * one.memory_bytes and packets == 30
    got = slow.read()
    assert len(got) == 3 and slow.missed_packets == 70
    assert ring.evicted_packets == 70


def test_time_bound_evicts_batches_older_than_max_seconds():
    ring = Ring("x", 1, 65535, max_seconds=5, max_bytes=1 << 30)
    for i in range(20):
        ring.append(make_batch(i, 2))
    _, _, span_ns = ring.span()
    assert span_ns <= 6 * 10**9
    first = ring.cursor(from_start=True).read(max_batches=1)[0]
    assert int(first.ts_ns[0]) >= 13 * 10**9


def test_reader_waits_for_data_and_sees_close():
    ring = Ring("x", 1, 65535, max_seconds=60, max_bytes=1 << 30)
    cursor = ring.cursor()

    def writer():
        time.sleep(0.2)
        ring.append(make_batch(0, 1))
        ring.close()

    threading.Thread(target=writer).start()
    started = time.monotonic()
    got = cursor.read(timeout_s=5)
    assert len(got) == 1 and time.monotonic() - started < 4
    cursor.read(timeout_s=5)
    assert cursor.closed


def test_a_poke_wakes_a_reader_in_a_long_wait():
    """A lane on a quiet link waits long for a batch (PUSH_QUIET_POLL_S); a reload that posts
    work for it pokes the ring, and the wait ends at once with nothing read."""
    ring = Ring("x", 1, 65535, max_seconds=60, max_bytes=1 << 30)
    cursor = ring.cursor()
    got: list = []
    reader = threading.Thread(target=lambda: got.append(cursor.read(timeout_s=60)), daemon=True)
    reader.start()
    while not ring._cond._waiters:  # the reader is waiting
        time.sleep(0.001)
    ring.poke()
    reader.join(10)
    assert not reader.is_alive() and got == [[]]
    ring.append(make_batch(0, 3))  # and reading goes on as before
    assert [len(b) for b in cursor.read(timeout_s=1)] == [3]


def test_a_poke_while_the_reader_is_busy_is_not_lost():
    """A reload's post can poke while its lane is still stepping (between two reads): the next
    read returns at once instead of waiting out its whole quiet-link wait."""
    ring = Ring("x", 1, 65535, max_seconds=60, max_bytes=1 << 30)
    cursor = ring.cursor()
    ring.append(make_batch(0, 2))
    assert [len(b) for b in cursor.read(timeout_s=60)] == [2]
    ring.poke()  # the reader is busy with the batch it read
    started = time.monotonic()
    assert cursor.read(timeout_s=60) == []
    assert time.monotonic() - started < 30
    assert cursor.read(timeout_s=0.01) == []  # a poke wakes a reader once
