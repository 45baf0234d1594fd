"""The index of the file a series is writing, its keys taken batch by batch as it writes them.

A series that keeps an index hands each run of records it writes to its feed (`add`), in C
(indexfile.c, `ixf_feed`): the keys of packets whose headers the write has just brought into
the cache, a few tens of ns a packet, no Python per packet, no numpy on the packet path. When
the file is finished the feed goes to the keeper with it (`ArchiveKeeper.expect`), and the
index is written from it on the keeper's thread: the file is not read again (mapping and
walking it again was half of what an index cost, README "Performance", I1).

A feed holds at most `defaults.INDEX_FEED_MAX_RECORDS` records: past that it lets go of what it
holds, and the file's index is built from the file, so an index costs bounded memory whatever
the rate and the file's size.

A feed is only trusted for the file it saw whole: any write it missed, a failed key pass, or a
file that is not, byte for byte, what was fed (compressed, cut, rewritten) makes the keeper
build the index from the file instead (`build.build_index`).
"""

from __future__ import annotations

import logging

from pushcap import defaults
from pushcap.archive.native_keys import FilePass, NativeFlows, native_keys
from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES

log = logging.getLogger("pushcap.archive")


class IndexFeed:
    """The keys and records of one file, in the order they were written."""

    def __init__(self, flows: NativeFlows) -> None:
        self._flows: NativeFlows | None = flows
        self._pass: FilePass | None = FilePass(flows)
        self.end = PCAP_FILE_HEADER_BYTES  # where the next record must start
        self.records = 0  # fed so far (see INDEX_FEED_MAX_RECORDS)

    @property
    def usable(self) -> bool:
        return self._pass is not None

    def add(self, batch, idx, start: int, end: int, position: int) -> None:
        """Positions [start, end) of a selection of `batch` (batch indices `idx`, None for
        all), written back to back at `position` of the file. Never raises: a feed that
        cannot follow is dropped (the index is then built from the file)."""
        if self._pass is None:
            return
        self.records += end - start
        if self.records > defaults.INDEX_FEED_MAX_RECORDS:
            log.info("event=index_feed_full records=%d (the index is built from the file)",
                     self.records)
            self.close()
            return
        try:
            if position != self.end:
                raise ValueError(f"records written at {position}, the feed is at {self.end}")
            self.end = self._pass.feed(batch, idx, start, end, position)
        except (MemoryError, ValueError) as exc:
            log.warning("event=index_feed_dropped error=%r (the index is built from the file)",
                        str(exc))
            self.close()

    def content(self):
        """(IndexData, packets, first_ts, last_ts): the file's index content (keeper thread)."""
        from pushcap.archive.keys import IndexData
        from pushcap.archive.keys_numpy import KEY_DTYPE

        keys, first_ts, last_ts, packets, nbytes = self._flows.export(KEY_DTYPE)
        offsets, caplen = self._pass.grouped(len(keys))
        content = IndexData(keys, first_ts, last_ts, packets, nbytes, offsets, caplen)
        if not len(keys):
            return content, 0, 0, 0
        return content, len(offsets), int(first_ts.min()), int(last_ts.max())

    def close(self) -> None:
        if self._pass is not None:
            self._pass.close()
            self._flows.close()
            self._pass = self._flows = None


def new_feed(linktype: int) -> IndexFeed | None:
    """A feed for a file of `linktype`, or None where the C library was not built."""
    functions = native_keys()
    if functions is None:
        return None
    try:
        return IndexFeed(NativeFlows(functions, linktype & 0x0FFFFFFF))
    except MemoryError:
        return None
