"""The content of one file's index in C passes over the mapped file (`capture/csrc/indexfile.c`).

What `keys.FileKeys` gathers from the capture reader's batches, gathered here without them: the
file is mapped and walked window by window in C, each window's keys taken while its headers are
in the cache, and the records handed over already grouped by flow. Python runs once per
READ_DROP_BYTES of file (where the pages behind are unmapped, so the process's RSS stays small),
not once per batch; the batch path cost twice as much (README, "Performance", I1).

It serves the files it can read exactly as the batch path would: little-endian classic pcap
whose records hold caplen then wire length (2.4), none longer than the snaplen or than the link
type's largest. Anything else (a cut last record, an oversized one, an older version's swapped
lengths, a file that cannot be mapped) returns None, and the batch path, with the capture
reader's own rules and warnings, reads it.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from pushcap import defaults
from pushcap.archive.keys import IndexData
from pushcap.archive.keys_numpy import KEY_DTYPE
from pushcap.archive.native_keys import FilePass, NativeFlows, native_keys
from pushcap.capture.batch import PCAP_FILE_HEADER_BYTES
from pushcap.capture.linktypes import max_caplen
from pushcap.capture.native import buffer_address
from pushcap.capture.pcap_rules import Lengths, adjusted_snaplen, lengths_rule

# The largest record limit the C pass takes (indexfile.c's IXF_MAX_CAPLEN); above (D-Bus,
# USBPcap, EBHSCR) the batch path reads the file.
MAX_RECORD_LIMIT_BYTES = defaults.MAX_SNAPLEN_BYTES
_STEP_BYTES = defaults.READ_DROP_BYTES


def mapped_keys(path: Path) -> tuple[IndexData, int, int, int] | None:
    """(content, packets, first_ts, last_ts) of `path`'s index, or None for the batch path."""
    functions = native_keys()
    if functions is None:
        return None
    with path.open("rb") as f:
        header = f.read(PCAP_FILE_HEADER_BYTES)
        size = os.fstat(f.fileno()).st_size
        if len(header) < PCAP_FILE_HEADER_BYTES or size <= PCAP_FILE_HEADER_BYTES:
            return None
        magic, major, minor, snaplen, linktype = struct.unpack("<IHH8xII", header)
        limit = min(max_caplen(linktype), adjusted_snaplen(linktype, snaplen))
        if (magic not in (defaults.PCAP_MAGIC_US, defaults.PCAP_MAGIC_NS)
                or lengths_rule(major, minor) is not Lengths.AS_WRITTEN
                or limit > MAX_RECORD_LIMIT_BYTES):
            return None
        try:
            mapped = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            return None
    flows = NativeFlows(functions, linktype & 0x0FFFFFFF)
    walk = FilePass(flows)
    try:
        end = _walk(walk, mapped, size, magic == defaults.PCAP_MAGIC_NS, limit)
        if end != size:
            return None
        keys, first_ts, last_ts, packets, nbytes = flows.export(KEY_DTYPE)
        offsets, caplen = walk.grouped(len(keys))
    finally:
        walk.close()
        flows.close()
        mapped.close()
    content = IndexData(keys, first_ts, last_ts, packets, nbytes, offsets, caplen)
    if not len(keys):
        return content, 0, 0, 0
    return content, len(offsets), int(first_ts.min()), int(last_ts.max())


def _walk(walk: FilePass, mapped: mmap.mmap, size: int, nano: bool, limit: int) -> int:
    """Walk the whole file, unmapping what is behind every _STEP_BYTES; where it stopped."""
    address, _ = buffer_address(mapped)
    position, dropped = PCAP_FILE_HEADER_BYTES, 0
    while position < size:
        stop = min(position + _STEP_BYTES, size)
        end = walk.walk(address, size, position, stop, nano, limit)
        if end < stop:
            return end  # a cut or oversized record
        position = end
        behind = position - position % mmap.PAGESIZE
        if behind > dropped:
            mapped.madvise(mmap.MADV_DONTNEED, dropped, behind - dropped)
            dropped = behind
    return position
