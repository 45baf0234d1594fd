"""Build the index of one published data file, from what its series fed while writing it or
from the file (just written: in the page cache).

A file its series fed whole (`index_feed`) is not read again: its keys were taken as it was
written. Otherwise the file is mapped and walked in C, its packets' keys and flows gathered in
the same pass (`mapped_keys`); a file that pass does not take (and every file where the C
library was not built) is read with pushcap's own capture reader, its keys and flows gathered
batch by batch (`keys.FileKeys`). The index is written hidden, fsynced and
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
from typing import TYPE_CHECKING

from pushcap.archive.datafile import codec_of, uncompressed
from pushcap.archive.index_meta import IndexMeta
from pushcap.archive.index_write import write_index
from pushcap.archive.keys import FileKeys
from pushcap.archive.layout import index_dir, index_part, index_path
from pushcap.archive.mapped_keys import mapped_keys
from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES, RECORD_HEADER_BYTES
from pushcap.capture.source import PcapFileSource, SourceError

if TYPE_CHECKING:
    from pushcap.archive.index_feed import IndexFeed

log = logging.getLogger("pushcap.archive")


class NotIndexable(Exception):
    """The file cannot be indexed (not a little-endian classic pcap as pushcap writes)."""


def build_index(data: Path, native: bool = True, feed: IndexFeed | None = None) -> IndexMeta:
    """Write the index of `data` beside it; its figures. `feed`: what the series fed while it
    wrote the file, used when the file is exactly what was fed (else the file is read). Raises
    NotIndexable, SourceError or OSError (a part written meanwhile is removed)."""
    size = data.stat().st_size
    codec = codec_of(data)
    if feed is not None and feed.usable and codec is None and feed.end == size:
        contents, packets, first_ts, last_ts = feed.content()
        meta = IndexMeta(size, *_header(data)[1:], packets, first_ts, last_ts)
    else:
        with uncompressed(data, codec) as plain:
            contents, figures = _gather(plain, native)
        meta = IndexMeta(size, *figures)
    index_dir(data.parent).mkdir(exist_ok=True)
    part = index_part(data)
    try:
        write_index(contents, meta, part)
        os.rename(part, index_path(data))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return meta


def _header(data: Path) -> tuple[PcapFileSource, int, int, bool]:
    """The file's reader and (link type, snaplen, ns timestamps), as its header says; only
    little-endian classic pcap files are indexed."""
    try:
        source = PcapFileSource(data)
    except SourceError as exc:
        raise NotIndexable(str(exc)) from exc
    with data.open("rb") as f:
        magic = f.read(4)
    if magic not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        raise NotIndexable(f"{data.name}: not a little-endian classic pcap file")
    return source, source.linktype, source.snaplen, magic == b"\x4d\x3c\xb2\xa1"


def _gather(plain: Path, native: bool):
    source, linktype, snaplen, nano_header = _header(plain)
    whole = mapped_keys(plain) if native else None
    if whole is not None:
        contents, packets, first_ts, last_ts = whole
        return contents, (linktype, snaplen, nano_header, packets, first_ts, last_ts)
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
        nano = nano_header
    return keys.finish(), (linktype, snaplen, nano, packets, first_ts or 0, last_ts or 0)
