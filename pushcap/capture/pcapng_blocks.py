"""The blocks of a pcapng file, walked and checked as libpcap 1.10 checks them (sf-pcapng.c).

`read_block` refuses a block whose length is below 12, not a multiple of 4 or above its largest
block (16 MiB, or for a link type with larger records an EPB of the largest one plus 128 KiB of
options), and one whose trailing length differs from the leading one; each block type's reader
then refuses a block too short for its fixed fields ("block of type N in pcapng dump file is too
short"), and a section header whose byte-order magic is neither order's. A block that the end of
the file cuts is a file cut short ("truncated pcapng dump file"): a warning, not damage. The
checks on the length alone come first, as there: a cut block with a bad length is damage.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path

from pushcap.capture.linktypes import max_caplen

log = logging.getLogger("pushcap.capture")

SHB, IDB, PB, SPB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000002, 0x00000003, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
FIXED_BYTES = {SHB: 16, IDB: 8, EPB: 20, PB: 20, SPB: 4}  # each type's fixed fields
_BLOCK_MIN_BYTES = 12  # type, length and the trailing length
_ORDER_OF_MAGIC = {struct.pack("<I", BYTE_ORDER_MAGIC): "<",
                   struct.pack(">I", BYTE_ORDER_MAGIC): ">"}
_INITIAL_MAX_BLOCK_BYTES = 16 << 20  # libpcap's INITIAL_MAX_BLOCKSIZE
_BLOCK_OPTIONS_BYTES = 131072  # MAX_BLOCKSIZE_FOR_SNAPLEN: the largest EPB plus this


class Blocks:
    """The blocks of `data` (a whole pcapng file): iterate for (byte order, block type, body
    start, body end) of each whole block. `truncated_bytes`: what a cut block left at the end.
    `damage` makes the error for a block any reader of it finds damaged."""

    def __init__(self, data: bytes, path: Path) -> None:
        self._data, self._path = data, path
        self._max_block = _INITIAL_MAX_BLOCK_BYTES  # until the first interface's link type
        self.truncated_bytes = 0

    def take_linktype(self, linktype: int) -> None:
        """The first interface's link type: its largest record raises the largest block."""
        largest_epb = 8 + FIXED_BYTES[EPB] + max_caplen(linktype) + _BLOCK_OPTIONS_BYTES + 4
        self._max_block = max(_INITIAL_MAX_BLOCK_BYTES, largest_epb)

    def __iter__(self) -> Iterator[tuple[str, int, int, int]]:
        data, pos, order = self._data, 0, "<"
        while pos + 8 <= len(data):
            btype = struct.unpack_from(order + "I", data, pos)[0]
            if btype == SHB:  # the same in either order; its byte-order magic says which
                order = _ORDER_OF_MAGIC.get(bytes(data[pos + 8:pos + 12]), order)
            length = struct.unpack_from(order + "I", data, pos + 4)[0]
            self._check_length(pos, length)
            if pos + length > len(data):
                break
            self._check_block(order, btype, pos, length)
            yield order, btype, pos + 8, pos + length - 4
            pos += length
        if pos < len(data):
            self.truncated_bytes = len(data) - pos
            log.warning("event=truncated_capture file=%s stray_bytes=%d", self._path.name,
                        self.truncated_bytes)

    def _check_length(self, pos: int, length: int) -> None:
        if length < _BLOCK_MIN_BYTES:
            why = f"a length of {length}, less than the {_BLOCK_MIN_BYTES} of any block"
        elif length % 4:
            why = f"a length of {length}, which is not a multiple of 4"
        elif length > self._max_block:
            why = f"a length of {length}, more than libpcap's largest of {self._max_block}"
        else:
            return
        raise self.damage(pos, why)

    def _check_block(self, order: str, btype: int, pos: int, length: int) -> None:
        trailer = struct.unpack_from(order + "I", self._data, pos + length - 4)[0]
        if trailer != length:
            raise self.damage(pos, f"a length of {length} but a trailing length of {trailer}")
        fixed = FIXED_BYTES.get(btype, 0)
        if length - _BLOCK_MIN_BYTES < fixed:
            raise self.damage(pos, f"type {btype} and {length - _BLOCK_MIN_BYTES} bytes, too "
                                   f"short for that type's {fixed} bytes of fixed fields")
        magic = bytes(self._data[pos + 8:pos + 12])
        if btype == SHB and magic not in _ORDER_OF_MAGIC:
            raise self.damage(pos, f"a section header whose byte-order magic is {magic.hex()}, "
                                   "neither order's")

    def damage(self, pos: int, why: str) -> Exception:
        """The SourceError for the block at `pos`: what is wrong with it is `why`."""
        from pushcap.capture.source import SourceError

        return SourceError(f"{self._path}: the block at byte {pos} has {why}: the file is "
                           "corrupt from there (the packets before it were read)")
