"""Classic pcap files read by libpcap's rules where they differ from the records as written.

`tcpdump -r IN -w OUT` (libpcap 1.10, sf-pcap.c `pcap_check_header` and `pcap_next_packet`)
does not always copy a record as it stands in the file:
- versions 2.0 to 2.2, and DG/UX's 543.0, hold each record's wire length where 2.3 and later
  hold its captured length, and the other way round: libpcap swaps the two in every record,
  whatever their values. 2.3 files were written both ways: there it swaps them only where the
  captured length would be the larger;
- a record longer than the header's snaplen is cut to the snaplen: its first snaplen bytes are
  kept, its captured length becomes the snaplen, its wire length stays (and the file it writes
  says that snaplen in its header). A snaplen of 0 or above INT_MAX is taken as the largest
  for the link type (`adjusted_snaplen`); any other, however small, is kept. A record longer
  than that largest (`linktypes.max_caplen`: 262144 bytes but for three link types) is
  corruption, not cut.
The fast walk (source.py, csrc/pcapwalk.c) hands a file's records on byte for byte, which is
what every other file needs. Files of the kinds above are rare (1990s captures, broken
writers, fuzzers), so they are read here, record by record in Python (1.3 µs a record; the
C walk takes 0.05), chosen once per file: from the start for a version that swaps lengths, else
from the first record longer than the snaplen (the fast walk stops before it). Ordinary files
never come here.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from pushcap import defaults
from pushcap.capture.batch import RECORD_HEADER_BYTES, Batch
from pushcap.capture.linktypes import max_caplen
from pushcap.config.record import record

_INT_MAX = 0x7FFFFFFF
_READ_BYTES = defaults.WALK_CHUNK_BYTES  # read from the file at a time
_RECORD = struct.Struct("<IIII")  # a record header as pushcap's batches hold it


class Lengths(enum.Enum):
    """Where a version's record header holds the captured and the wire length."""

    AS_WRITTEN = "caplen, then wire length"  # 2.4
    SWAPPED = "wire length, then caplen"  # 2.0-2.2, 543.0
    MAYBE_SWAPPED = "either: the smaller is the caplen"  # 2.3


def lengths_rule(major: int, minor: int) -> Lengths:
    """How libpcap reads the two length fields of a file of this version."""
    if major == 543 or (major == 2 and minor < 3):
        return Lengths.SWAPPED
    if major == 2 and minor == 3:
        return Lengths.MAYBE_SWAPPED
    return Lengths.AS_WRITTEN


def adjusted_snaplen(linktype: int, snaplen: int) -> int:
    """The snaplen libpcap reads a file with, and tcpdump -w writes (`pcap_adjust_snapshot`):
    0 or above INT_MAX becomes the link type's largest; every other value is kept."""
    if snaplen == 0 or snaplen > _INT_MAX:
        return max_caplen(linktype)
    return snaplen


@record(frozen=True)
class FileRules:
    """What reading a file's records takes: its byte order (`<` or `>`), timestamp unit,
    length rule, adjusted snaplen and link type (as the batches carry it)."""

    order: str
    nano: bool
    lengths: Lengths
    snaplen: int
    linktype: int


class RuleReader:
    """The records of a file from `position` on, read one by one as libpcap reads them.

    `position` is always just past the last record handed out (or where the reading started):
    the records a batch holds may be shorter than the file's, so the file's offset is kept
    here. A record cut by the file's end stops the reading (`position` is then before it); a
    record claiming more than libpcap's limit for the link type raises SourceError after every
    record before it was handed out."""

    def __init__(self, fd: int, position: int, size: int, rules: FileRules, path: Path) -> None:
        self.position = position
        self._fd, self._size, self._rules, self._path = fd, size, rules, path
        self._max_caplen = max_caplen(rules.linktype)
        self._data, self._start = b"", position  # the file's bytes [start, start + len(data))

    def batches(self, batch_packets: int) -> Iterator[Batch]:
        while True:
            batch, error = self._batch(batch_packets)
            if batch is not None:
                yield batch
            if error is not None:
                raise error
            if batch is None or len(batch) < batch_packets:
                return

    def _batch(self, batch_packets: int) -> tuple[Batch | None, Exception | None]:
        import numpy as np

        rules = self._rules
        header = struct.Struct(rules.order + "IIII")
        swap_always = rules.lengths is Lengths.SWAPPED
        swap_larger = rules.lengths is Lengths.MAYBE_SWAPPED
        frac_ns = 1 if rules.nano else 1000
        records = bytearray()
        offsets: list[int] = []
        ts_ns: list[int] = []
        caplens: list[int] = []
        wirelens: list[int] = []
        error = None
        position = self.position
        while len(offsets) < batch_packets:
            data_at = position + RECORD_HEADER_BYTES
            if not self._have(position, data_at):
                break
            sec, frac, caplen, wirelen = header.unpack_from(self._data, position - self._start)
            if swap_always or (swap_larger and caplen > wirelen):
                caplen, wirelen = wirelen, caplen
            if caplen > self._max_caplen:
                error = corrupt_record(self._path, position, caplen, self._max_caplen)
                break
            if not self._have(position, data_at + caplen):
                break
            kept = min(caplen, rules.snaplen)
            offsets.append(len(records))
            ts_ns.append(sec * 1_000_000_000 + frac * frac_ns)
            caplens.append(kept)
            wirelens.append(wirelen)
            records += _RECORD.pack(sec, frac, kept, wirelen)
            start = data_at - self._start
            records += self._data[start:start + kept]
            position = data_at + caplen
        self.position = position
        if not offsets:
            return None, error
        columns = [np.array(c, dtype=np.int64) for c in (offsets, ts_ns, caplens, wirelens)]
        return Batch(records, *columns, rules.linktype, rules.snaplen, nano=rules.nano), error

    def _have(self, position: int, end: int) -> bool:
        """Whether the file's bytes up to `end` exist; read them in (keeping those from
        `position` on) if they are not in memory yet."""
        if end > self._size:
            return False
        if end <= self._start + len(self._data):
            return True
        kept = self._data[position - self._start:]
        length = min(self._size - position, max(end - position, _READ_BYTES)) - len(kept)
        more = _pread(self._fd, position + len(kept), length)
        self._data, self._start = kept + more, position
        return True


def _pread(fd: int, offset: int, length: int) -> bytes:
    parts = []
    while length > 0:
        got = os.pread(fd, length, offset)
        if not got:
            from pushcap.capture.source import SourceError

            raise SourceError(f"file shrank while reading at offset {offset}")
        parts.append(got)
        offset += len(got)
        length -= len(got)
    return b"".join(parts)


def corrupt_record(path: Path, position: int, caplen: int, limit: int) -> Exception:
    """The error for a record claiming more than libpcap's limit for the file's link type
    (`limit`): tcpdump -r stops there ("invalid packet capture length"), and copied on, the
    record would make an output file libpcap cannot read."""
    from pushcap.capture.source import SourceError

    return SourceError(f"{path}: the record at offset {position} claims {caplen} captured bytes, "
                       f"more than libpcap's limit of {limit} for its link type: the file is "
                       "corrupt from there (the packets before it were replayed)")
