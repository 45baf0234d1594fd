"""Keep and Index on a File target, on a tmpfs each test mounts: every retention rule deletes the
oldest published files (and their indexes) and nothing else, a file still waiting to be
delivered survives, the figures reach status and /metrics, and an index a crash left hidden (or
never wrote) is rebuilt at the next start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from oracle import read_pcap
from waiting import wait_until

from pushcap.archive.index_file import IndexReader
from pushcap.archive.layout import index_part, index_path
from pushcap.archive.retention import free_percent
from pushcap.capture.source import PcapFileSource
from pushcap.config.lua import load_targets
from pushcap.push.target import Series
from pushcap.supervisor.metrics import render_metrics
from pushcap.supervisor.replay import replay

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                       reason="needs root to mount a tmpfs"),
]


class _LuaTrue:
    def __str__(self) -> str:
        return "true"


def disk(tmp_path: Path, size: str) -> Path:
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True, capture_output=True, timeout=30)
    return where


@pytest.fixture
def tmpfs(tmp_path):
    mounted: list[Path] = []

    def mount(size: str = "32m") -> Path:
        mounted.append(disk(tmp_path / str(len(mounted)), size) if mounted else
                       disk(tmp_path, size))
        return mounted[-1]

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def target_fields(out: Path, keep: str | None = None, split: str = "--split-time 1e9",
                  index: bool = True) -> dict:
    fields = {"Desc": "kept", "Mode": "File", "Path": str(out / "all"), "Split": split}
    if keep:
        fields["Keep"] = keep
    if index:
        fields["Index"] = _LuaTrue()
    return fields


def published(out: Path) -> list[Path]:
    return sorted(out.glob("all_*.pcap"))


def run_replay(trace: Path, write_lua, fields: dict):
    summary = replay(trace, load_targets(write_lua([fields])))
    return summary.series[0]


def test_keep_files(tmpfs, gen_trace, write_lua):
    out = tmpfs()
    series = run_replay(gen_trace(16_000, seed=11, rate_pps=4000.0), write_lua,
                        target_fields(out, "--keep-files 2"))
    files = published(out)
    assert [f.name for f in files] == ["all_1700000002-1700000003.pcap",
                                       "all_1700000003-1700000004.pcap"]
    indexes = sorted(p.name for p in (out / ".pushcap-index").iterdir())
    assert indexes == [f.name + ".parquet" for f in files]  # the deleted files' went too
    status = series.status()
    assert status["retention_deleted_files"] == 2 and status["archive_files"] == 2
    assert status["retention_deleted_bytes"] > 0 and status["indexed_files"] == 4
    assert 1.0 < status["archive_span_s"] <= 2.0
    metrics = render_metrics({"interfaces": {}, "reloads": 0, "targets": [
        {"desc": "kept", "interface": "x", "mode": "File", **status}]})[0].decode()
    assert "pushcap_target_retention_deleted_files_total" in metrics
    assert 'pushcap_target_archive_files{interface="x",mode="File",target="kept"} 2.0' in metrics


def test_keep_bytes_counts_files_and_indexes(tmpfs, gen_trace, write_lua):
    out = tmpfs()
    trace = gen_trace(16_000, seed=11, rate_pps=4000.0)
    limit = int(trace.stat().st_size * 0.6)  # about two of the four one-second files
    run_replay(trace, write_lua, target_fields(out, f"--keep-bytes {limit}"))
    files = published(out)
    kept = sum(f.stat().st_size + index_path(f).stat().st_size for f in files)
    assert kept <= limit and len(files) == 2
    assert files[-1].name == "all_1700000003-1700000004.pcap"


def test_keep_time_deletes_what_is_older(tmpfs, gen_trace, write_lua):
    out = tmpfs()
    run_replay(gen_trace(8_000, seed=11, rate_pps=4000.0), write_lua, target_fields(out))
    old = published(out)
    two_days_ago = time.time() - 2 * 86400
    for f in old:
        os.utime(f, (two_days_ago, two_days_ago))
    later = gen_trace(8_000, seed=12, rate_pps=4000.0)
    shifted = out.parent / "later.pcap"
    _shift(later, shifted, 3600)
    run_replay(shifted, write_lua, target_fields(out, "--keep-time 86400e9"))
    names = [f.name for f in published(out)]
    assert names == ["all_1700003600-1700003601.pcap", "all_1700003601-1700003602.pcap"]
    assert not any(index_path(f).exists() for f in old)


def _shift(src: Path, dst: Path, seconds: int) -> None:
    """A copy of a µs pcap whose timestamps are `seconds` later (header by header)."""
    import struct

    raw = bytearray(src.read_bytes())
    at = 24
    while at + 16 <= len(raw):
        sec, _, caplen, _ = struct.unpack_from("<IIII", raw, at)
        struct.pack_into("<I", raw, at, sec + seconds)
        at += 16 + caplen
    dst.write_bytes(bytes(raw))


def test_keep_free_keeps_a_floor_of_free_space(tmpfs, gen_trace, write_lua):
    out = tmpfs("4m")
    trace = gen_trace(7_000, seed=13)  # ~4 MB: more than the disk holds
    fields = target_fields(out, "--keep-free 50", "--split-byte 400e3")
    fields["FileName"] = "--filename-epoch-nsec"  # names in time order
    series = run_replay(trace, write_lua, fields)
    files = published(out)
    assert free_percent(out) >= 50
    assert series.status()["retention_deleted_files"] >= 3
    assert series.stats.lost_packets == 0  # the disk never filled
    last = read_pcap(files[-1]).packets[-1]
    assert last == read_pcap(trace).packets[-1]  # the newest file is kept


def test_a_file_pending_delivery_is_never_deleted(tmpfs, gen_trace, write_lua):
    out = tmpfs()
    run_replay(gen_trace(11_000, seed=11, rate_pps=4000.0), write_lua, target_fields(out))
    old = published(out)
    assert len(old) == 3
    (target,) = load_targets(write_lua([target_fields(out, "--keep-files 1")]))
    trace = out.parent / "later.pcap"
    _shift(gen_trace(11_000, seed=14, rate_pps=4000.0), trace, 60)
    source = PcapFileSource(trace)
    series = Series(target, "x", out / "all", source.linktype, source.snaplen)
    series.hold_delivery()  # as while a slow compressor or a predecessor delivers
    series.start(at_launch=False)
    for batch in source.batches():
        series.consume(batch)
    series.end_file()
    pending = sorted(out.glob(".all.*.part"))
    assert len(pending) == 3
    wait_until(lambda: len(published(out)) == 1, 30, "retention of the old files")
    assert published(out) == [old[-1]]
    assert sorted(out.glob(".all.*.part")) == pending  # waiting for delivery: untouched
    series.open_delivery()
    series.close()
    (newest,) = published(out)
    assert newest.name == "all_1700000062-1700000063.pcap"
    assert read_pcap(newest).packets[-1] == read_pcap(trace).packets[-1]
    assert index_path(newest).exists() and not index_path(old[-1]).exists()


def test_an_index_a_crash_left_hidden_is_rebuilt_at_start(tmpfs, gen_trace, write_lua):
    out = tmpfs()
    fields = target_fields(out)
    run_replay(gen_trace(12_000, seed=11, rate_pps=4000.0), write_lua, fields)
    files = published(out)
    before = IndexReader(index_path(files[0])).flows()["packets"].tolist()
    index_path(files[0]).rename(index_part(files[0]))  # the crash came before the rename
    index_path(files[1]).unlink()  # ... or before it was written
    orphan = index_path(out / "all_1699999999-1700000000.pcap")
    orphan.write_bytes(b"left by a crash between a file's deletion and its index's")
    (target,) = load_targets(write_lua([fields]))
    series = Series(target, "x", out / "all", 1, 262144)
    series.start(at_launch=True)
    try:
        wait_until(lambda: index_path(files[0]).exists() and index_path(files[1]).exists()
                   and not index_part(files[0]).exists() and not orphan.exists(), 30,
                   "the indexes rebuilt")
    finally:
        series.close()
    assert IndexReader(index_path(files[0])).flows()["packets"].tolist() == before
