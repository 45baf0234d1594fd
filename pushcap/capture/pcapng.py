"""pcapng reader that keeps what libpcap's batch API drops: nanoseconds and the wire length.

Blocks are walked in Python, one per packet; pcapng arrives as an interchange file (backfills,
exports), not at line rate, so clarity wins here. A file whose interfaces have different link
types cannot go into one pcap series: packets of interfaces whose link type differs from the
first interface's are skipped and counted, with a warning.

Timestamps are read as libpcap 1.10 reads them for `tcpdump --time-stamp-precision=nano -r IN
-w OUT` (sf-pcapng.c): every `if_tsresol` it accepts (10^-0 .. 10^-19 s, 2^-0 .. 2^-63 s; others
are an error there and here), whole seconds plus `if_tsoffset` cut to the 32 bits a pcap record
holds, and the fraction scaled in 64-bit unsigned arithmetic, which wraps for binary resolutions
finer than 2^-34 s exactly as libpcap's does (`_timestamp_ns`). The snaplen is libpcap's adjusted
one (`pcap_rules.adjusted_snaplen`): 0, as many writers put, reads as the link type's largest.

Damage is found where libpcap finds it: in the blocks themselves (pcapng_blocks.py), a packet
claiming more bytes than its block holds or than the snaplen, an option running past its block,
a link type libpcap does not know. As for a classic pcap file (README, `pushcap replay`), every
packet before the damage is delivered, then SourceError names the block's offset. A block cut by
the end of the file is a file cut short (a warning, as tcpdump's "truncated pcapng dump file").
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pushcap import defaults
from pushcap.capture.batch import Batch, build_records
from pushcap.capture.linktypes import linktype_refusal
from pushcap.capture.pcap_rules import adjusted_snaplen
from pushcap.capture.pcapng_blocks import EPB, IDB, PB, SHB, SPB, Blocks

log = logging.getLogger("pushcap.capture")

OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14
NS_PER_S = 1_000_000_000
_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1
_MAX_TSRESOL_DECIMAL = 19  # libpcap: 10^19 is the largest power of 10 a uint64 holds
_MAX_TSRESOL_BINARY = 63


class _Interface(NamedTuple):
    """What reading an interface's packets takes: its link type and snaplen (as written), its
    timestamp units per second, whether those are a power of 2, and `if_tsoffset` (seconds)."""

    linktype: int
    snaplen: int
    units: int
    binary: bool
    offset_s: int


def _timestamp_ns(ticks: int, interface: _Interface) -> int:
    """A timestamp in ns, exactly as tcpdump --time-stamp-precision=nano writes it.

    libpcap splits the 64-bit count into seconds (plus the offset) and a fraction in unsigned
    64-bit arithmetic; pcap_dump writes the seconds' low 32 bits. A binary fraction is scaled
    as `frac * 10^9 / 2^n`, whose product wraps past 2^64 for n of 35 or more: kept, so that
    the output equals tcpdump's.
    """
    units = interface.units
    sec = (ticks // units + interface.offset_s) & _U32
    frac = ticks % units
    if interface.binary:
        frac = ((frac * NS_PER_S) & _U64) // units
    elif units >= NS_PER_S:
        frac //= units // NS_PER_S
    else:
        frac *= NS_PER_S // units
    return sec * NS_PER_S + frac


class _Columns:
    """The packets of the batch being built, one list per column."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.caplen: list[int] = []
        self.wirelen: list[int] = []
        self.start: list[int] = []

    def add(self, packet: tuple[int, int, int, int]) -> None:
        self.ts.append(packet[0])
        self.caplen.append(packet[1])
        self.wirelen.append(packet[2])
        self.start.append(packet[3])

    def __len__(self) -> int:
        return len(self.ts)


class PcapngFileSource:
    def __init__(self, path: Path, batch_packets: int = defaults.BATCH_PACKETS) -> None:
        from pushcap.capture.source import SourceError

        self.path = path
        self.name = path.name
        self.batch_packets = batch_packets
        self.skipped_packets = 0
        self._data = path.read_bytes()
        self._blocks = Blocks(self._data, path)
        self._interfaces: list[_Interface] = []
        first_idb = self._first_interface()
        if first_idb is None:
            raise SourceError(f"{path}: pcapng file has no interface description block")
        self.linktype, snaplen = first_idb
        if why := linktype_refusal(self.linktype):
            raise SourceError(f"{path}: the first interface description block's {why}")
        self.snaplen = adjusted_snaplen(self.linktype, snaplen)
        self._blocks.take_linktype(self.linktype)

    @property
    def truncated_bytes(self) -> int:
        """The bytes of a block cut by the end of the file (0: the file ends after a block)."""
        return self._blocks.truncated_bytes

    def _first_interface(self) -> tuple[int, int] | None:
        for order, btype, start, _ in self._blocks:
            if btype == IDB:
                linktype, _, snaplen = struct.unpack_from(order + "HHI", self._data, start)
                return linktype, snaplen
        return None

    def _parse_idb(self, order: str, start: int, end: int) -> None:
        linktype, _, snaplen = struct.unpack_from(order + "HHI", self._data, start)
        units, binary, offset_s = 1_000_000, False, 0  # pcapng's default: microseconds
        pos = start + 8
        while pos + 4 <= end:
            code, length = struct.unpack_from(order + "HH", self._data, pos)
            if code == 0:
                break
            if pos + 4 + length > end:  # libpcap: the block "is too short"
                raise self._damage(start, f"an option of {length} bytes at byte {pos} that "
                                   "runs past the block's end")
            if code == OPT_IF_TSRESOL and length >= 1:
                units, binary = self._tsresol(self._data[pos + 4], start)
            elif code == OPT_IF_TSOFFSET and length == 8:
                offset_s = struct.unpack_from(order + "q", self._data, pos + 4)[0]
            pos += 4 + ((length + 3) & ~3)
        self._interfaces.append(_Interface(linktype, snaplen, units, binary, offset_s))

    def _tsresol(self, value: int, start: int) -> tuple[int, bool]:
        """(units per second, whether a power of 2) of an `if_tsresol` value; refused where
        libpcap refuses it (tcpdump -r stops there too)."""
        from pushcap.capture.source import SourceError

        exponent, binary = value & 0x7F, bool(value & 0x80)
        if exponent > (_MAX_TSRESOL_BINARY if binary else _MAX_TSRESOL_DECIMAL):
            raise SourceError(f"{self.path}: the interface description block at byte "
                              f"{start - 8} has if_tsresol {value:#04x}, a resolution of "
                              f"{'2' if binary else '10'}^-{exponent} s, finer than libpcap "
                              "reads")
        return (1 << exponent if binary else 10 ** exponent), binary

    def batches(self, reuse_buffer: bool = False) -> Iterator[Batch]:  # noqa: ARG002
        """The file's packets, batch by batch (each batch has records of its own: pcapng
        records are rebuilt, so `reuse_buffer` has nothing to reuse). Damage ends them with
        SourceError, after the packets before it (the batch being built too)."""
        from pushcap.capture.source import SourceError

        packets = _Columns()
        damage = None
        try:
            for order, btype, start, end in self._blocks:
                if btype == SHB:
                    self._interfaces = []
                elif btype == IDB:
                    self._parse_idb(order, start, end)
                elif btype in (EPB, PB, SPB):
                    packet = self._packet(order, btype, start, end)
                    if packet is None:
                        continue
                    packets.add(packet)
                    if len(packets) >= self.batch_packets:
                        yield self._batch(packets)
                        packets = _Columns()
        except SourceError as exc:
            damage = exc
        if packets:
            yield self._batch(packets)
        if self.skipped_packets:
            log.warning("event=pcapng_skipped file=%s packets=%d reason=link type differs from "
                        "the first interface's", self.name, self.skipped_packets)
        if damage is not None:
            raise damage

    def _packet(self, order: str, btype: int, start: int,
                end: int) -> tuple[int, int, int, int] | None:
        """(ts_ns, caplen, wirelen, data offset) of one packet block, or None when skipped.
        As libpcap: a simple packet block's caplen is its wire length cut to the snaplen; an
        enhanced or obsolete packet block's may not exceed the snaplen; either way the block
        must hold that many bytes."""
        data = self._data
        if btype == SPB:
            if not self._interfaces:
                raise self._damage(start, "a simple packet block before any interface "
                                   "description block")
            first = self._interfaces[0]
            wirelen = struct.unpack_from(order + "I", data, start)[0]
            caplen = min(wirelen, self.snaplen)
            self._check_holds(start, start + 4 + caplen, end, caplen)
            if first.linktype != self.linktype:
                self.skipped_packets += 1
                return None
            return _timestamp_ns(0, first), caplen, wirelen, start + 4  # if_tsoffset, as libpcap
        if btype == EPB:
            iface, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(order + "IIIII", data, start)
        else:
            iface, _, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(order + "HHIIII", data,
                                                                           start)
        body = start + 20
        if iface >= len(self._interfaces):
            raise self._damage(start, f"a packet that names interface {iface}, but only "
                               f"{len(self._interfaces)} are described")
        self._check_holds(start, body + caplen, end, caplen)
        interface = self._interfaces[iface]
        if interface.linktype != self.linktype:
            self.skipped_packets += 1
            return None
        if caplen > self.snaplen:
            raise self._damage(start, f"a packet of {caplen} captured bytes, more than the "
                               f"snaplen of {self.snaplen}")
        return _timestamp_ns((ts_hi << 32) | ts_lo, interface), caplen, wirelen, body

    def _damage(self, start: int, why: str) -> Exception:
        """The error for the block whose body starts at `start`."""
        return self._blocks.damage(start - 8, why)

    def _check_holds(self, start: int, data_end: int, end: int, caplen: int) -> None:
        if data_end > end:
            raise self._damage(start, f"a packet of {caplen} captured bytes, more than the "
                               "block holds")

    def _batch(self, packets: _Columns) -> Batch:
        caplen = np.array(packets.caplen, dtype=np.int64)
        ts_ns = np.array(packets.ts, dtype=np.int64)
        wirelen = np.array(packets.wirelen, dtype=np.int64)
        records, offsets = build_records(ts_ns, caplen, wirelen, self._data,
                                         np.array(packets.start, dtype=np.int64))
        return Batch(records, offsets, ts_ns, caplen, wirelen, self.linktype, self.snaplen)
