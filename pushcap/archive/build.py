"""Build the index of one published data file, from the file (just written: in the page cache).

The file is read with pushcap's own capture reader (mapped, walked in C), its packets' keys and
flows gathered batch by batch (`keys.FileKeys`), and the index written hidden, fsynced and
renamed to its place (`layout.index_path`) after its data file is published: a reader never
sees half an index, and an index never points at a file that is not there yet. Only files
whose records lie in the file as the reader hands them over can be indexed (classic
little-endian pcap, as pushcap writes); any other file is left without an index and a query
scans it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pushcap.archive.datafile import codec_of, uncompressed
from pushcap.archive.index_file import IndexMeta, write_index
from pushcap.archive.keys import FileKeys
from pushcap.archive.layout import index_dir, index_part, index_path
from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES, RECORD_HEADER_BYTES
from pushcap.capture.source import PcapFileSource, SourceError

log = logging.getLogger("pushcap.archive")


class NotIndexable(Exception):
    """The file cannot be indexed (not a little-endian classic pcap as pushcap writes)."""


def build_index(data: Path, native: bool = True) -> IndexMeta:
    """Write the index of `data` beside it; its figures. Raises NotIndexable, SourceError or
    OSError (a part written meanwhile is removed)."""
    size = data.stat().st_size
    codec = codec_of(data)
    with uncompressed(data, codec) as plain:
        contents, meta = _gather(plain, native)
    meta = IndexMeta(size, *meta)
    index_dir(data.parent).mkdir(exist_ok=True)
    part = index_part(data)
    try:
        write_index(contents, meta, part)
        os.rename(part, index_path(data))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return meta


def _gather(plain: Path, native: bool):
    try:
        source = PcapFileSource(plain)
    except SourceError as exc:
        raise NotIndexable(str(exc)) from exc
    with plain.open("rb") as f:
        if f.read(4) not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            raise NotIndexable(f"{plain.name}: not a little-endian classic pcap file")
    keys = FileKeys(source.linktype, native)
    packets, expected_end, first_ts, last_ts, nano = 0, PCAP_FILE_HEADER_BYTES, None, None, True
    for batch in source.batches():
        start = source.end_offset - len(batch.records)
        if start != expected_end:
            raise NotIndexable(f"{plain.name}: records not where the file holds them")
        expected_end = source.end_offset
        if int(batch.offsets[-1]) + RECORD_HEADER_BYTES + int(batch.caplen[-1]) \
                != len(batch.records):
            raise NotIndexable(f"{plain.name}: records cut to the snaplen on reading")
        keys.add(batch, start)
        packets += len(batch)
        low, high = int(batch.ts_ns.min()), int(batch.ts_ns.max())
        first_ts = low if first_ts is None else min(first_ts, low)
        last_ts = high if last_ts is None else max(last_ts, high)
        nano = batch.nano
    if not packets:
        with plain.open("rb") as f:
            nano = f.read(4) == b"\x4d\x3c\xb2\xa1"
    return keys.finish(), (source.linktype, source.snaplen, nano, packets, first_ts or 0,
                           last_ts or 0)
