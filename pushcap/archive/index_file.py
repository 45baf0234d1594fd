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
flows it wants. DuckDB, Spark, Trino or Athena read the flow rows without pushcap. This module
reads an index; `index_write` writes it (without pyarrow), `index_meta` holds what both share.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pushcap.archive.index_meta import (  # noqa: F401 - where the index's readers import them
    FLOW_COLUMNS,
    FORMAT_VERSION,
    METADATA_KEY,
    RECORD_COLUMNS,
    IndexMeta,
    IndexUnusable,
)


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

    def record_lists(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every flow's records at once, for a reader that keeps them in memory (the daemon's
        query cache): (starts, offsets, caplen), flow i's records being offsets[starts[i]:
        starts[i + 1]] (ascending) and their captured lengths, flows in `flows()`' order."""
        table = self._file.read(columns=list(RECORD_COLUMNS), use_threads=False)
        self._count(range(len(self._group_rows)), RECORD_COLUMNS)
        offsets = table.column("rec_offset").combine_chunks()
        caplen = table.column("rec_caplen").combine_chunks()
        starts = offsets.offsets.to_numpy().astype(np.int64)
        return starts, offsets.values.to_numpy(), caplen.values.to_numpy()


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
