"""The README's DuckDB query over an archive's flow rows runs as printed, without pushcap, and
its answer agrees with the index (issue 20: the flow rows are for any Parquet reader)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pushcap.archive.build import build_index
from pushcap.archive.index_file import IndexReader
from pushcap.archive.layout import index_path

duckdb = pytest.importorskip("duckdb")
README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_duckdb_query_runs_over_the_flow_rows(tmp_path, gen_trace):
    sql = re.search(r"```sql\n(.*?)```", README.read_text(), re.S).group(1)
    assert "/mnt/remote0/push/.pushcap-index/" in sql
    data = [tmp_path / f"all_{1700000000 + i}-{1700000001 + i}.pcap" for i in range(2)]
    for i, path in enumerate(data):
        path.write_bytes(gen_trace(3_000, seed=30 + i).read_bytes())
        build_index(path)
    rows = duckdb.sql(sql.replace("/mnt/remote0/push/", f"{tmp_path}/")).fetchall()
    assert len(rows) == 10
    top_bytes = [r[5] for r in rows]
    assert top_bytes == sorted(top_bytes, reverse=True)
    # the biggest (src, dst, protocol, dst_port) group, from the index by numpy
    totals: dict[tuple, int] = {}
    for path in data:
        flows = IndexReader(index_path(path)).flows()
        table = IndexReader(index_path(path))._file.read(columns=["src", "dst", "bytes"])
        src, dst = table.column("src").to_pylist(), table.column("dst").to_pylist()
        nbytes = table.column("bytes").to_numpy()
        for i in np.flatnonzero(flows["ip_version"] > 0):
            key = (src[i], dst[i], int(flows["protocol"][i]), int(flows["dst_port"][i]))
            totals[key] = totals.get(key, 0) + int(nbytes[i])
    assert top_bytes[0] == max(totals.values())
