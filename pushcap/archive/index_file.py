"""One data file's index: a Parquet file of its flows, each with the offsets of its records.

Columns, one row per flow (VLAN tags, addresses, protocol and ports as libpcap's filters read
them, see keys_numpy.py): `vlan`, `inner_vlan` (null without a tag), `ethertype`, `ip_version`
(4, 6, null for other frames), `protocol`, `src`, `dst` (text), `src_port`, `dst_port`,
`first_ts`, `last_ts` (UTC timestamps, ns), `packets`, `bytes` (on the wire), `exact` (false:
a filter could read this flow's packets differently, so a query always reads them), then
pushcap's own: `src_raw`, `dst_raw` (16 bytes, IPv4 in the first 4; for ARP and RARP the
protocol addresses libpcap's `host` tests) and `rec_offset`,
`rec_caplen` (lists: where each record of the flow starts in the data file, in file order, and
its captured length). The file's own figures (data file size, link type, snaplen, timestamp
unit, packets, first and last timestamp) are in the schema's metadata under `pushcap.index`.

Row groups hold about defaults.INDEX_ROW_GROUP_RECORDS records each, so a query reads the
scalar columns of every flow (small) and the record lists of only the row groups holding the
flows it wants. DuckDB, Spark, Trino or Athena read the flow rows without pushcap.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pushcap import defaults
from pushcap.archive.keys import IndexData
from pushcap.archive.keys_numpy import NO_VLAN

METADATA_KEY = b"pushcap.index"
FORMAT_VERSION = 1
RECORD_COLUMNS = ("rec_offset", "rec_caplen")
FLOW_COLUMNS = ("vlan", "inner_vlan", "ethertype", "ip_version", "protocol", "src_port",
                "dst_port", "first_ts", "last_ts", "packets", "exact", "src_raw", "dst_raw")


class IndexUnusable(Exception):
    """An index cannot be read (missing, partial, another version); the query scans instead."""


@dataclass(frozen=True)
class IndexMeta:
    """The figures of the data file an index describes."""

    data_size: int
    linktype: int
    snaplen: int
    nano: bool
    packets: int
    first_ts: int  # the smallest timestamp in the file (0 without packets)
    last_ts: int  # the largest

    def to_json(self) -> bytes:
        return json.dumps({"version": FORMAT_VERSION, **self.__dict__}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> IndexMeta:
        fields = json.loads(raw)
        if fields.pop("version", None) != FORMAT_VERSION:
            raise IndexUnusable("an index of another format version")
        return cls(**fields)


def _address_text(raw: np.ndarray, family: np.ndarray) -> pa.Array:
    """Addresses as text (null for frames that are not IP), IPv4 in one vectorized step."""
    text = np.full(len(family), None, dtype=object)
    v4 = np.flatnonzero(family == 4)
    if len(v4):
        octets = [pa.array(raw[v4, i]).cast(pa.string()) for i in range(4)]
        text[v4] = pc.binary_join_element_wise(*octets, ".").to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(family == 6):  # per IPv6 flow, not per packet
        text[i] = socket.inet_ntop(socket.AF_INET6, raw[i].tobytes())
    return pa.array(text, type=pa.string())


def _vlan(values: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.int32), mask=values == NO_VLAN)


def flow_table(data: IndexData) -> pa.Table:
    keys = data.keys
    family = keys["family"]
    not_ip = family == 0
    ts_type = pa.timestamp("ns", tz="UTC")
    list_offsets = np.zeros(len(keys) + 1, dtype=np.int32)
    np.cumsum(data.packets, out=list_offsets[1:])
    raw_type = pa.binary(16)
    return pa.table({
        "vlan": _vlan(keys["vlan0"]),
        "inner_vlan": _vlan(keys["vlan1"]),
        "ethertype": pa.array(keys["ethertype"].astype(np.int32)),
        "ip_version": pa.array(family, type=pa.uint8(), mask=not_ip),
        "protocol": pa.array(keys["proto"], type=pa.uint8(), mask=not_ip),
        "src": _address_text(keys["src"], family),
        "dst": _address_text(keys["dst"], family),
        "src_port": pa.array(keys["sport"].astype(np.int32), mask=not_ip),
        "dst_port": pa.array(keys["dport"].astype(np.int32), mask=not_ip),
        "first_ts": pa.array(data.first_ts, type=ts_type),
        "last_ts": pa.array(data.last_ts, type=ts_type),
        "packets": pa.array(data.packets),
        "bytes": pa.array(data.bytes),
        "exact": pa.array(keys["exact"].astype(bool)),
        "src_raw": pa.FixedSizeBinaryArray.from_buffers(
            raw_type, len(keys), [None, pa.py_buffer(np.ascontiguousarray(keys["src"]))]),
        "dst_raw": pa.FixedSizeBinaryArray.from_buffers(
            raw_type, len(keys), [None, pa.py_buffer(np.ascontiguousarray(keys["dst"]))]),
        "rec_offset": pa.ListArray.from_arrays(list_offsets, data.rec_offset),
        "rec_caplen": pa.ListArray.from_arrays(list_offsets, data.rec_caplen),
    })


def _row_groups(packets: np.ndarray) -> list[tuple[int, int]]:
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


def write_index(data: IndexData, meta: IndexMeta, out: Path) -> None:
    """Write the index to `out` (created, fsynced): the caller renames it into place."""
    table = flow_table(data)
    table = table.replace_schema_metadata({METADATA_KEY: meta.to_json()})
    encodings = {f"{name}.list.element": "DELTA_BINARY_PACKED" for name in RECORD_COLUMNS}
    dictionary = [n for n in table.column_names if n not in RECORD_COLUMNS]
    with out.open("wb") as f:
        with pq.ParquetWriter(f, table.schema, compression=defaults.INDEX_COMPRESSION,
                              use_dictionary=dictionary, column_encoding=encodings) as writer:
            for start, stop in _row_groups(data.packets) or [(0, 0)]:
                writer.write_table(table.slice(start, stop - start), row_group_size=stop - start
                                   or 1)
        f.flush()
        os.fsync(f.fileno())


class IndexReader:
    """An index opened for a query: its figures, its flows, the records of chosen flows."""

    def __init__(self, path: Path | str | pa.NativeFile) -> None:
        try:
            self._file = pq.ParquetFile(path)
            raw = (self._file.schema_arrow.metadata or {}).get(METADATA_KEY)
        except (OSError, pa.ArrowException) as exc:
            raise IndexUnusable(f"unreadable index: {exc}") from exc
        if raw is None:
            raise IndexUnusable("not a pushcap index")
        self.meta = IndexMeta.from_json(raw)
        metadata = self._file.metadata
        self.bytes_read = metadata.serialized_size + 8  # the footer, and what is read next
        self._group_rows = np.array([metadata.row_group(i).num_rows
                                     for i in range(metadata.num_row_groups)], dtype=np.int64)

    def flows(self, columns: tuple[str, ...] = FLOW_COLUMNS) -> dict[str, np.ndarray]:
        """Scalar columns of every flow as numpy arrays (nulls as -1 for VLANs, else 0)."""
        table = self._file.read(columns=list(columns), use_threads=False)
        self._count(range(len(self._group_rows)), columns)
        out: dict[str, np.ndarray] = {}
        for name in columns:
            column = table.column(name).combine_chunks()
            if name in ("src_raw", "dst_raw"):
                buffer = column.buffers()[1]
                out[name] = np.frombuffer(buffer, dtype=np.uint8, count=16 * len(column),
                                          offset=16 * column.offset).reshape(-1, 16)
            elif pa.types.is_timestamp(column.type):
                out[name] = column.cast(pa.int64()).to_numpy()
            elif pa.types.is_boolean(column.type):
                out[name] = column.to_numpy(zero_copy_only=False)
            else:
                out[name] = column.fill_null(-1 if "vlan" in name else 0).to_numpy(
                    zero_copy_only=False)
        return out

    def _count(self, groups, columns) -> None:
        """Add what reading `columns` of row groups `groups` costs (their compressed chunks)."""
        metadata = self._file.metadata
        names = [metadata.schema.column(i).path.split(".")[0]
                 for i in range(metadata.num_columns)]
        wanted = [i for i, name in enumerate(names) if name in columns]
        for g in groups:
            group = metadata.row_group(int(g))
            self.bytes_read += sum(group.column(i).total_compressed_size for i in wanted)

    def records(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, caplen) of every record of flow rows `rows` (ascending), in file order."""
        if not len(rows):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        group_start = np.concatenate(([0], np.cumsum(self._group_rows)))
        row_group = np.searchsorted(group_start, rows, side="right") - 1
        groups = np.unique(row_group)
        table = self._file.read_row_groups([int(g) for g in groups], columns=list(RECORD_COLUMNS),
                                           use_threads=False)
        self._count(groups, RECORD_COLUMNS)
        # the rows of the groups read are numbered from 0 in `table`
        base = np.concatenate(([0], np.cumsum(self._group_rows[groups])))
        local = rows - group_start[row_group] + base[np.searchsorted(groups, row_group)]
        offsets = _take_lists(table.column("rec_offset").combine_chunks(), local)
        caplen = _take_lists(table.column("rec_caplen").combine_chunks(), local)
        order = np.argsort(offsets, kind="stable")
        return offsets[order], caplen[order].astype(np.int64)


def _take_lists(column: pa.ListArray, rows: np.ndarray) -> np.ndarray:
    """The values of lists `rows` of a list column, one after the other (numpy, no loop)."""
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy()
    starts, ends = offsets[rows], offsets[rows + 1]
    lengths = ends - starts
    if not lengths.sum():
        return np.zeros(0, values.dtype)
    # positions: for each list, starts[i] .. ends[i]-1
    first = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return values[first + np.arange(int(lengths.sum()))]
