"""A minimal Parquet writer: what an archive index needs and nothing more.

Writing an index with pyarrow cost more than finding its keys: importing pyarrow (~0.08 s of
CPU once per process) and its writer (~0.05-0.1 s per million records, most of it per column
chunk and per value bookkeeping). An index is a few flat columns and two list columns, written
once and never appended to, so the file is laid out here directly: one data page (v1, PLAIN
or, for the record lists, DELTA_BINARY_PACKED from C; uncompressed, no statistics) per column
and row group, levels as the RLE/bit-packing hybrid,
and the footer in Thrift's compact protocol (parquet-format's parquet.thrift). pyarrow, DuckDB
and every other reader read it as they read pyarrow's own (tests/test_archive_duckdb.py).

Columns are flat (REQUIRED or OPTIONAL) or a list of REQUIRED items (`required group NAME
(LIST) { repeated group list { required TYPE element } }`, a list never empty), the layout
pyarrow writes for `list<element: T not null>`.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import BinaryIO

MAGIC = b"PAR1"

# parquet.thrift enums
BOOLEAN, INT32, INT64, BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY = 0, 1, 2, 6, 7
REQUIRED, OPTIONAL, REPEATED = 0, 1, 2
PLAIN, RLE, DELTA_BINARY_PACKED = 0, 3, 5
UTF8, LIST, UINT_8 = 0, 3, 11  # converted types
DATA_PAGE = 0
UNCOMPRESSED = 0

# Thrift compact protocol types
_TRUE, _FALSE, _BYTE, _I32, _I64, _BINARY, _LIST, _STRUCT = 1, 2, 3, 5, 6, 8, 9, 12
_RAW = -1  # (type, its value already encoded), see `_fields`


@dataclass(frozen=True)
class Field:
    """One top-level column. `logical`: a LogicalType union as (field id, struct fields), see
    `string`, `uint8`, `timestamp_ns_utc`; `listed`: a list of `kind` items."""

    name: str
    kind: int
    optional: bool = False
    listed: bool = False
    type_length: int = 0
    converted: int | None = None
    logical: tuple | None = None


STRING_TYPE = (1, [])
UINT8_TYPE = (10, [(1, _BYTE, 8), (2, _FALSE, None)])
TIMESTAMP_NS_UTC_TYPE = (8, [(1, _TRUE, None), (2, _STRUCT, [(3, _STRUCT, [])])])


@dataclass
class Page:
    """A column's values in one row group: `values` (PLAIN bytes of the present values);
    `present` (OPTIONAL columns: the rows' def levels, bit-packed LSB first, one bit a row);
    `list_starts` (list columns: the items' rep levels, bit-packed, 0 where a list begins);
    `count`: values (items for a list column, rows otherwise); `encoding`: of `values`, PLAIN
or DELTA_BINARY_PACKED."""

    count: int
    values: bytes | memoryview
    present: bytes | None = None
    list_starts: bytes | None = None
    encoding: int = PLAIN


class ParquetOut:
    """Writes `fields` to `out` one row group at a time; `close()` writes the footer."""

    def __init__(self, out: BinaryIO, fields: list[Field], metadata: dict[str, str]) -> None:
        self._out = out
        self._fields = fields
        self._metadata = metadata
        self._groups: list[list] = []
        self._rows = 0
        self._at = len(MAGIC)
        out.write(MAGIC)

    def row_group(self, rows: int, pages: list[Page]) -> None:
        """One row group of `rows` rows: a page per field, in `fields` order."""
        chunks, size = [], 0
        for field, page in zip(self._fields, pages, strict=True):
            body = _levels(field, page)
            page_size = len(body) + len(page.values)
            header = _struct([(1, _I32, DATA_PAGE), (2, _I32, page_size), (3, _I32, page_size),
                              (5, _STRUCT, [(1, _I32, page.count), (2, _I32, page.encoding),
                                            (3, _I32, RLE), (4, _I32, RLE)])])
            start = self._at
            self._out.write(header)
            self._out.write(body)
            self._out.write(page.values)
            length = len(header) + page_size
            self._at += length
            size += length
            # ColumnMetaData: its fields 1-4 (type, encodings, path, codec) are the field's
            meta = _chunk_head(field, page.encoding) + _fields(
                [(5, _I64, page.count), (6, _I64, length), (7, _I64, length), (9, _I64, start)],
                4) + b"\0"
            chunks.append(_struct([(2, _I64, start), (3, _RAW, (_STRUCT, meta))]))
        self._groups.append(_RawStructs(chunks, size, rows))
        self._rows += rows

    def close(self) -> None:
        footer = _struct([
            (1, _I32, 1),
            (2, _LIST, (_STRUCT, _schema(self._fields))),
            (3, _I64, self._rows),
            (4, _RAW, (_LIST, _list_head(len(self._groups), _STRUCT) + b"".join(
                _struct([(1, _RAW, (_LIST, _list_head(len(g.chunks), _STRUCT)
                                    + b"".join(g.chunks))),
                         (2, _I64, g.size), (3, _I64, g.rows)])
                for g in self._groups))),
            (5, _LIST, (_STRUCT, [[(1, _BINARY, k.encode()), (2, _BINARY, v.encode())]
                                  for k, v in self._metadata.items()])),
            (6, _BINARY, b"pushcap"),
        ])
        self._out.write(footer)
        self._out.write(struct.pack("<I", len(footer)))
        self._out.write(MAGIC)


@dataclass
class _RawStructs:
    """A row group's ColumnChunk structs, encoded, and its figures."""

    chunks: list[bytes]
    size: int
    rows: int


def _chunk_head(field: Field, encoding: int) -> bytes:
    """Fields 1-4 of a column's ColumnMetaData (the same in every row group)."""
    return _chunk_head_of(field.name, field.kind, field.listed, encoding)


@functools.cache
def _chunk_head_of(name: str, kind: int, listed: bool, encoding: int) -> bytes:
    path = [name, "list", "element"] if listed else [name]
    return _fields([(1, _I32, kind), (2, _LIST, (_I32, [encoding, RLE])),
                    (3, _LIST, (_BINARY, [p.encode() for p in path])),
                    (4, _I32, UNCOMPRESSED)], 0)


def _levels(field: Field, page: Page) -> bytes:
    """The page's repetition and definition levels (each with its 4-byte length)."""
    if field.listed:  # rep levels bit-packed; def levels: every item is there (one RLE run)
        rep = _bit_packed(page.list_starts, page.count)
        define = _varint(page.count << 1) + b"\x01"
        return (struct.pack("<I", len(rep)) + rep + struct.pack("<I", len(define)) + define)
    if field.optional:
        define = _bit_packed(page.present, page.count)
        return struct.pack("<I", len(define)) + define
    return b""


def _bit_packed(bits: bytes | None, count: int) -> bytes:
    """One bit-packed run of `count` 1-bit levels (`bits`, LSB first, ceil(count / 8) bytes)."""
    groups = (count + 7) // 8
    return _varint(groups << 1 | 1) + bytes(bits or b"")[:groups]


def _schema(fields: list[Field]) -> list[list]:
    out = [[(4, _BINARY, b"schema"), (5, _I32, len(fields))]]
    for f in fields:
        leaf = [(1, _I32, f.kind)]
        if f.type_length:
            leaf.append((2, _I32, f.type_length))
        if f.listed:
            out.append([(3, _I32, REQUIRED), (4, _BINARY, f.name.encode()), (5, _I32, 1),
                        (6, _I32, LIST), (10, _STRUCT, [(3, _STRUCT, [])])])
            out.append([(3, _I32, REPEATED), (4, _BINARY, b"list"), (5, _I32, 1)])
            out.append(leaf + [(3, _I32, REQUIRED), (4, _BINARY, b"element")])
            continue
        leaf += [(3, _I32, OPTIONAL if f.optional else REQUIRED), (4, _BINARY, f.name.encode())]
        if f.converted is not None:
            leaf.append((6, _I32, f.converted))
        if f.logical is not None:
            leaf.append((10, _STRUCT, [(f.logical[0], _STRUCT, f.logical[1])]))
        out.append(leaf)
    return out


# --- Thrift compact protocol --------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _struct(fields: list[tuple]) -> bytes:
    """A struct of (field id, type, value) in ascending id order; booleans as _TRUE/_FALSE
    with no value; _RAW: (type, the value already encoded)."""
    return _fields(fields, 0) + b"\0"


def _list_head(size: int, element: int) -> bytes:
    return bytes([size << 4 | element]) if size < 15 else bytes([0xF0 | element]) + _varint(size)


def _fields(fields: list[tuple], last: int) -> bytes:
    """Struct fields after field `last`, without the struct's end."""
    out = bytearray()
    for fid, kind, value in fields:
        if kind == _RAW:
            kind, raw = value
        else:
            raw = None
        delta = fid - last
        if 0 < delta <= 15:
            out.append(delta << 4 | kind)
        else:
            out.append(kind)
            out += _zigzag(fid)
        last = fid
        out += raw if raw is not None else _value(kind, value)
    return bytes(out)


def _value(kind: int, value) -> bytes:
    if kind in (_TRUE, _FALSE):
        return b""
    if kind == _BYTE:
        return bytes([value & 0xFF])
    if kind in (_I32, _I64):
        return _zigzag(value)
    if kind == _BINARY:
        return _varint(len(value)) + value
    if kind == _STRUCT:
        return _struct(value)
    if kind == _LIST:
        element, items = value
        return _list_head(len(items), element) + b"".join(_value(element, i) for i in items)
    raise ValueError(f"thrift type {kind}")
