"""The packets of one archive file inside a time window that a BPF accepts.

Two ways, one answer (`Picked`: timestamps, and where each record lies in a buffer that holds
it): with a usable index and a filter the index can narrow, only the records of the flows that
may match are read (the data file is mapped; the kernel reads the pages those records lie on);
otherwise the file is scanned with the capture reader. Either way libpcap's own program, run in
C over whole arrays (capture/bpf.py), decides, so the result is what `tcpdump -r FILE FILTER`
selects, cut to the window.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pushcap import defaults
from pushcap.archive.filter_keys import columns_needed, flow_mask
from pushcap.archive.index_file import IndexReader
from pushcap.archive.native_pick import native_pick
from pushcap.capture import iov
from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch
from pushcap.capture.bpf import BpfFilter
from pushcap.capture.source import open_file_source

if TYPE_CHECKING:
    from pushcap.archive.index_cache import CachedIndex


@dataclass
class Picked:
    """Selected records of one file, in file order: record i is buffer[offsets[i]:][:16 +
    caplen[i]] (a pcap record, little-endian header, `nano` tells its timestamp unit)."""

    buffer: object
    offsets: np.ndarray
    ts_ns: np.ndarray
    caplen: np.ndarray
    nano: bool
    bytes_read: int = 0
    records_read: int = 0

    @classmethod
    def empty(cls, nano: bool = True, bytes_read: int = 0) -> Picked:
        zero = np.zeros(0, np.int64)
        return cls(b"", zero, zero, zero, nano, bytes_read)


_HEADER_BYTES = np.arange(RECORD_HEADER_BYTES)


class StaleIndex(Exception):
    """An index does not describe the file as it is (records not where it says)."""


def _window_mask(ts: np.ndarray, start_ns: int, end_ns: int) -> np.ndarray:
    return (ts >= start_ns) & (ts < end_ns)


def pick_indexed(plain: Path, reader: IndexReader | CachedIndex, tree, bpf: BpfFilter | None,
                 start_ns: int, end_ns: int, mapped: mmap.mmap | None = None) -> Picked:
    """Read only the candidate records (those of flows `tree` may accept, and every record
    of a flow not `exact`) of the uncompressed data file `plain`. `mapped`: the file as the
    caller keeps it mapped (the daemon: the pages a query touched stay in its page tables, so
    the next query takes no page fault for them, ~27 µs each on this VM), else it is mapped
    here for this query."""
    flows = reader.flows(columns_needed(tree))
    mask = flow_mask(tree, flows)
    meta = reader.meta
    if not start_ns <= meta.first_ts <= meta.last_ts < end_ns:
        # Only a file the window cuts needs its flows' spans (two more columns to bring in).
        mask &= (flows["last_ts"] >= start_ns) & (flows["first_ts"] < end_ns)
    rows = np.flatnonzero(mask)
    nano = reader.meta.nano
    if not len(rows):
        return Picked.empty(nano, reader.bytes_read)
    offsets, caplen = reader.records(rows)
    if not len(offsets):
        return Picked.empty(nano, reader.bytes_read)
    if mapped is None:
        mapped = map_random(plain)
    if int(offsets[-1]) + RECORD_HEADER_BYTES + int(caplen[-1]) > len(mapped):
        raise StaleIndex(f"{plain.name}: a record beyond the end of the file")
    parts = []
    for at in range(0, len(offsets), defaults.QUERY_CHUNK_RECORDS):
        chunk = slice(at, at + defaults.QUERY_CHUNK_RECORDS)
        parts.append(_pick_chunk(mapped, offsets[chunk], caplen[chunk], nano, bpf,
                                 start_ns, end_ns, plain))
    kept_offsets = np.concatenate([p[0] for p in parts])
    kept_ts = np.concatenate([p[1] for p in parts])
    kept_caplen = np.concatenate([p[2] for p in parts])
    read = reader.bytes_read + int((caplen + RECORD_HEADER_BYTES).sum())
    return Picked(mapped, kept_offsets, kept_ts, kept_caplen, nano, read, len(offsets))


def map_random(plain: Path) -> mmap.mmap:
    """`plain` mapped read-only for reading scattered records."""
    with plain.open("rb") as f:
        size = plain.stat().st_size
        if not size:
            raise StaleIndex(f"{plain.name} is empty")
        mapped = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    # Only the candidates' pages are wanted: no readahead around each (on a disk, that would
    # read most of the file for records a few pages apart).
    mapped.madvise(mmap.MADV_RANDOM)
    return mapped


def _headers(buffer, at: np.ndarray) -> np.ndarray:
    """The 16-byte record headers at `at`, as (n, 4) int64 (their little-endian uint32s)."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    return data[at[:, None] + _HEADER_BYTES].view("<u4").reshape(-1, 4).astype(np.int64)


def _pick_chunk(buffer, at, caplen, nano, bpf, start_ns, end_ns, plain):
    native = native_pick()
    if native is not None:
        picked = native.pick(buffer, at, caplen, nano, start_ns, end_ns)
        if picked is None:
            raise StaleIndex(f"{plain.name}: records not where its index says")
        keep, ts, wirelen = picked
    else:
        head = _headers(buffer, at)
        if not np.array_equal(head[:, 2], caplen):
            raise StaleIndex(f"{plain.name}: records not where its index says")
        ts = head[:, 0] * 1_000_000_000 + head[:, 1] * (1 if nano else 1000)
        keep = np.flatnonzero(_window_mask(ts, start_ns, end_ns))
        ts, wirelen = ts[keep], head[keep, 3]
    if bpf is not None and len(keep):
        batch = Batch(buffer, at[keep], ts, caplen[keep], wirelen, 0, 0, nano=nano)
        chosen = np.asarray(bpf.select(batch), dtype=np.int64)
        keep, ts = keep[chosen], ts[chosen]
    return at[keep], ts, caplen[keep]


def pick_scan(path: Path, bpf: BpfFilter | None, start_ns: int, end_ns: int,
              mapped: bool = True) -> Picked:
    """Read the whole file; the selected records are copied out of each batch. `mapped`
    False: read, not mapped (a file that may be cut shorter meanwhile: capture/source.py)."""
    source = open_file_source(path, mapped=mapped)
    buffers, ts_parts, caplen_parts, nano = [], [], [], True
    for batch in source.batches():
        nano = batch.nano
        inside = _window_mask(batch.ts_ns, start_ns, end_ns)
        if not inside.any():
            continue
        if bpf is not None:
            chosen = np.zeros(len(batch), bool)
            chosen[np.asarray(bpf.select(batch), dtype=np.int64)] = True
            inside &= chosen
        idx = np.flatnonzero(inside)
        if not len(idx):
            continue
        lengths = batch.caplen[idx] + RECORD_HEADER_BYTES
        table = iov.slices(batch.records, batch.offsets[idx], lengths)
        gathered = iov.gather(table)
        if gathered is None:  # no memfd: one copy per record
            view = memoryview(batch.records)
            gathered = np.frombuffer(b"".join(view[o:o + n] for o, n in
                                              zip(batch.offsets[idx].tolist(),
                                                  lengths.tolist(), strict=True)), np.uint8)
        buffers.append(gathered)
        ts_parts.append(batch.ts_ns[idx])
        caplen_parts.append(batch.caplen[idx])
    size = path.stat().st_size
    if not buffers:
        return Picked.empty(nano, size)
    buffer = np.concatenate(buffers)
    caplen = np.concatenate(caplen_parts).astype(np.int64)
    offsets = np.zeros(len(caplen), np.int64)
    np.cumsum(caplen[:-1] + RECORD_HEADER_BYTES, out=offsets[1:])
    return Picked(buffer, offsets, np.concatenate(ts_parts), caplen, nano, size, 0)
