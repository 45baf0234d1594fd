"""Write one data file's index (the columns index_file.py describes) with `parquet_out`.

The flow columns come from the keys as numpy arrays, the addresses' text from C
(`native_keys.address_text`), the record lists as they are: nothing per packet in Python, and
no pyarrow (its import and writer were half of what an index cost, README "Performance", I1).
Row groups hold about defaults.INDEX_ROW_GROUP_RECORDS records each (a flow is never split),
so a query reads the record lists of only the row groups holding the flows it wants.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import numpy as np

from pushcap import defaults
from pushcap.archive.index_meta import METADATA_KEY, IndexMeta
from pushcap.archive.keys import IndexData
from pushcap.archive.keys_numpy import NO_VLAN
from pushcap.archive.native_keys import address_text, delta_encoded, native_keys
from pushcap.archive.parquet_out import (
    BOOLEAN,
    BYTE_ARRAY,
    DELTA_BINARY_PACKED,
    FIXED_LEN_BYTE_ARRAY,
    INT32,
    INT64,
    STRING_TYPE,
    TIMESTAMP_NS_UTC_TYPE,
    UINT8_TYPE,
    UINT_8,
    UTF8,
    Field,
    Page,
    ParquetOut,
)

FIELDS = [
    Field("vlan", INT32, optional=True),
    Field("inner_vlan", INT32, optional=True),
    Field("ethertype", INT32),
    Field("ip_version", INT32, optional=True, converted=UINT_8, logical=UINT8_TYPE),
    Field("protocol", INT32, optional=True, converted=UINT_8, logical=UINT8_TYPE),
    Field("src", BYTE_ARRAY, optional=True, converted=UTF8, logical=STRING_TYPE),
    Field("dst", BYTE_ARRAY, optional=True, converted=UTF8, logical=STRING_TYPE),
    Field("src_port", INT32, optional=True),
    Field("dst_port", INT32, optional=True),
    Field("first_ts", INT64, logical=TIMESTAMP_NS_UTC_TYPE),
    Field("last_ts", INT64, logical=TIMESTAMP_NS_UTC_TYPE),
    Field("packets", INT64),
    Field("bytes", INT64),
    Field("exact", BOOLEAN),
    Field("src_raw", FIXED_LEN_BYTE_ARRAY, type_length=16),
    Field("dst_raw", FIXED_LEN_BYTE_ARRAY, type_length=16),
    Field("rec_offset", INT64, listed=True),
    Field("rec_caplen", INT32, listed=True),
]


def write_index(data: IndexData, meta: IndexMeta, out: Path) -> None:
    """Write the index to `out` (created, fsynced): the caller renames it into place."""
    columns = _Columns(data)
    with out.open("wb") as f:
        writer = ParquetOut(f, FIELDS, {METADATA_KEY.decode(): meta.to_json().decode()})
        for start, stop in row_groups(data.packets):
            writer.row_group(stop - start, columns.pages(start, stop))
        writer.close()
        f.flush()
        os.fsync(f.fileno())


def row_groups(packets: np.ndarray) -> list[tuple[int, int]]:
    """Flow row ranges of about INDEX_ROW_GROUP_RECORDS records each (a flow is never split)."""
    ends = np.cumsum(packets)
    bounds, start, base = [], 0, 0
    while start < len(packets):
        stop = int(np.searchsorted(ends, base + defaults.INDEX_ROW_GROUP_RECORDS, side="right"))
        stop = max(stop, start + 1)
        bounds.append((start, stop))
        base = int(ends[stop - 1])
        start = stop
    return bounds


class _Columns:
    """The index's columns as PLAIN bytes and levels, cut into row groups (`pages`)."""

    def __init__(self, data: IndexData) -> None:
        keys = data.keys
        self.ip = keys["family"] != 0
        self.vlan = [keys["vlan0"] != NO_VLAN, keys["vlan1"] != NO_VLAN]
        self.flat = {
            "vlan": keys["vlan0"].astype("<i4"), "inner_vlan": keys["vlan1"].astype("<i4"),
            "ethertype": keys["ethertype"].astype("<i4"),
            "ip_version": keys["family"].astype("<i4"), "protocol": keys["proto"].astype("<i4"),
            "src_port": keys["sport"].astype("<i4"), "dst_port": keys["dport"].astype("<i4"),
            "first_ts": data.first_ts.astype("<i8"), "last_ts": data.last_ts.astype("<i8"),
            "packets": data.packets.astype("<i8"), "bytes": data.bytes.astype("<i8"),
            "src_raw": np.ascontiguousarray(keys["src"]),
            "dst_raw": np.ascontiguousarray(keys["dst"]),
        }
        self.exact = keys["exact"] != 0
        self.text = [_text(keys, 0), _text(keys, 1)]
        self.list_ends = np.cumsum(data.packets, dtype=np.int64)
        self.rec_offset = np.ascontiguousarray(data.rec_offset, dtype="<i8")
        self.rec_caplen = np.ascontiguousarray(data.rec_caplen, dtype="<i4")

    def pages(self, start: int, stop: int) -> list[Page]:
        rows = stop - start
        first = int(self.list_ends[start - 1]) if start else 0
        last = int(self.list_ends[stop - 1])
        starts = np.ones(last - first, dtype=bool)
        starts[np.concatenate(([0], self.list_ends[start:stop - 1] - first))] = False
        list_starts = np.packbits(starts, bitorder="little").tobytes()
        pages = []
        for field in FIELDS:
            name = field.name
            if field.listed:
                values = (self.rec_offset if name == "rec_offset" else self.rec_caplen)
                pages.append(_record_page(values[first:last], list_starts))
            elif name in ("src", "dst"):
                offsets, text = self.text[name == "dst"]
                pages.append(Page(rows, text[offsets[start]:offsets[stop]],
                                  present=_bits(self.ip[start:stop])))
            elif name == "exact":
                pages.append(Page(rows, _bits(self.exact[start:stop])))
            else:
                values = self.flat[name][start:stop]
                present = None
                if field.optional:
                    mask = self.vlan[name == "inner_vlan"] if "vlan" in name else self.ip
                    present = mask[start:stop]
                    values = values[present]
                pages.append(Page(rows, np.ascontiguousarray(values).tobytes(),
                                  present=None if present is None else _bits(present)))
        return pages


def _record_page(values: np.ndarray, list_starts: bytes) -> Page:
    """A record list column's page: DELTA_BINARY_PACKED in C (offsets ascend within a flow:
    ~3 bytes a record instead of 8), else PLAIN."""
    functions = native_keys()
    if functions is None:
        return Page(len(values), memoryview(np.ascontiguousarray(values)).cast("B"),
                    list_starts=list_starts)
    return Page(len(values), delta_encoded(functions, values), list_starts=list_starts,
                encoding=DELTA_BINARY_PACKED)


def _bits(flags: np.ndarray) -> bytes:
    return np.packbits(flags, bitorder="little").tobytes()


def _text(keys: np.ndarray, which: int) -> tuple[np.ndarray, bytes]:
    """Addresses as text in PLAIN layout (native_keys.address_text): in C, else one Python
    step per flow (never per packet)."""
    functions = native_keys()
    if functions is not None:
        return address_text(functions, keys, which)
    family, raw = keys["family"].tolist(), keys["dst" if which else "src"]
    parts = []
    for f, address in zip(family, raw, strict=True):
        if f in (4, 6):
            text = socket.inet_ntop(socket.AF_INET if f == 4 else socket.AF_INET6,
                                    address[:4 if f == 4 else 16].tobytes()).encode()
            parts.append(struct.pack("<I", len(text)) + text)
        else:
            parts.append(b"")
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return offsets, b"".join(parts)
