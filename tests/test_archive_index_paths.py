"""The three ways an index's content is gathered give the same index: fed by the series as it
writes (index_feed), one C pass over the mapped file (mapped_keys), and the capture reader's
batches (keys.FileKeys, here on its numpy path). And the Parquet file pushcap writes itself
(parquet_out) reads back in pyarrow as the content it was written from."""

from __future__ import annotations

import dpkt
import numpy as np
import pyarrow.parquet as pq
import pytest
from oracle import PCAPS_DIR

import pushcap.archive.build as build
from pushcap import defaults
from pushcap.archive.index_file import IndexReader
from pushcap.archive.index_meta import IndexMeta
from pushcap.archive.index_write import write_index
from pushcap.archive.keys import FileKeys
from pushcap.archive.layout import index_path
from pushcap.archive.mapped_keys import mapped_keys
from pushcap.archive.native_keys import native_keys
from pushcap.capture.source import PcapFileSource
from pushcap.config.lua import load_targets
from pushcap.supervisor.replay import replay

needs_c = pytest.mark.skipif(native_keys() is None, reason="the C library is not built")
FIELDS = ("first_ts", "last_ts", "packets", "bytes", "rec_offset", "rec_caplen")
CLASSIC = ["tcpreplay-test.pcap", "tcpreplay-test-nano.pcap", "ultrasurf-vlan.pcap",
           "vlan-mixed-tagged-untagged.pcap", "http_ipv6.pcap", "tcp-snaplen68.pcap",
           "dns_fragmented.pcap", "kakaotalk-sll.pcap", "ocs-rawip.pcap", "tls-sll2.pcap",
           "dns-ipv6-rawip.pcap", "viber_mobile.pcap", "http-bro.org.pcap"]


class _LuaTrue:
    def __str__(self) -> str:
        return "true"


def by_batches(path):
    source = PcapFileSource(path)
    keys = FileKeys(source.linktype, native=False)
    for batch in source.batches():
        keys.add(batch, source.end_offset - len(batch.records))
    return keys.finish()


def same(a, b) -> bool:
    return a.keys.tobytes() == b.keys.tobytes() and all(
        np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS)


@needs_c
@pytest.mark.parametrize("name", CLASSIC)
def test_the_mapped_pass_gathers_what_the_batches_do(name):
    content, packets, first_ts, last_ts = mapped_keys(PCAPS_DIR / name)
    reference = by_batches(PCAPS_DIR / name)
    assert same(content, reference)
    assert packets == content.records == int(reference.packets.sum())
    assert (first_ts, last_ts) == (int(reference.first_ts.min()), int(reference.last_ts.max()))


@needs_c
def test_the_mapped_pass_leaves_a_cut_file_to_the_batches(tmp_path, gen_trace):
    trace = gen_trace(3_000, seed=5)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(trace.read_bytes()[:-7])
    assert mapped_keys(cut) is None
    assert mapped_keys(trace) is not None


def test_the_parquet_file_reads_back_as_written(tmp_path, gen_trace, monkeypatch):
    monkeypatch.setattr(defaults, "INDEX_ROW_GROUP_RECORDS", 4096)
    trace = gen_trace(20_000, seed=3)
    content = by_batches(trace)
    out = tmp_path / "i.parquet"
    write_index(content, IndexMeta(1, 1, 65535, False, content.records, 0, 0), out)
    table = pq.read_table(out)
    assert table.num_rows == len(content.keys)
    assert pq.ParquetFile(out).metadata.num_row_groups > 1  # row groups cut the lists
    assert np.array_equal(table.column("packets").to_numpy(), content.packets)
    assert np.array_equal(table.column("first_ts").cast("int64").to_numpy(), content.first_ts)
    for name in ("rec_offset", "rec_caplen"):
        values = table.column(name).combine_chunks().values.to_numpy()
        assert np.array_equal(values, getattr(content, name))
    vlan = table.column("vlan").to_pylist()
    assert vlan == [None if v == 0xFFFF else v for v in content.keys["vlan0"].tolist()]
    assert table.column("exact").to_pylist() == [bool(e) for e in content.keys["exact"]]
    assert IndexReader(out).meta.packets == content.records


@needs_c
@pytest.mark.parametrize("bpf", [None, "tcp"])
def test_a_fed_index_is_the_index_of_its_file(tmp_path, gen_trace, write_lua, monkeypatch, bpf):
    """A replay's indexes come from the series' feed (the file is not read again), and are
    what building them from the published files gives."""
    read_again = []
    monkeypatch.setattr(build, "mapped_keys", lambda path: read_again.append(path))
    out = tmp_path / "out"
    fields = {"Desc": "fed", "Mode": "File", "Path": str(out / "all"),
              "Split": "--split-byte 2000000", "Index": _LuaTrue()}
    if bpf:
        fields["FilterBPF"] = bpf
    replay(gen_trace(12_000, seed=9), load_targets(write_lua([fields])))
    files = sorted(out.glob("all_*.pcap"))
    assert len(files) > 2 and not read_again
    for data in files:
        content, figures = build._gather(data, native=False)
        reference = tmp_path / "reference.parquet"
        write_index(content, IndexMeta(data.stat().st_size, *figures), reference)
        assert pq.read_table(index_path(data)).equals(pq.read_table(reference))
        assert IndexReader(index_path(data)).meta == IndexReader(reference).meta


@needs_c
def test_a_file_beyond_the_feeds_bound_is_indexed_from_the_file(tmp_path, gen_trace, write_lua,
                                                                 monkeypatch):
    """A feed holds at most INDEX_FEED_MAX_RECORDS records (bounded memory on a busy link): a
    file with more is indexed by the pass over the published file, to the same index; a file
    within the bound is still indexed from its feed."""
    monkeypatch.setattr(defaults, "INDEX_FEED_MAX_RECORDS", 2_500)
    read_again = []
    real_mapped_keys = build.mapped_keys
    monkeypatch.setattr(build, "mapped_keys",
                        lambda path: read_again.append(path.name) or real_mapped_keys(path))
    out = tmp_path / "out"
    fields = {"Desc": "bounded", "Mode": "File", "Path": str(out / "all"),
              "Split": "--split-byte 2000000", "Index": _LuaTrue()}
    replay(gen_trace(12_000, seed=9), load_targets(write_lua([fields])))
    files = sorted(out.glob("all_*.pcap"))
    packets = {f.name: sum(1 for _ in dpkt.pcap.Reader(f.open("rb"))) for f in files}
    over = sorted(name for name, n in packets.items() if n > 2_500)
    assert over and len(over) < len(files), packets  # files beyond the bound, and within it
    assert sorted(read_again) == over
    for data in files:
        content, figures = build._gather(data, native=False)
        reference = tmp_path / "reference.parquet"
        write_index(content, IndexMeta(data.stat().st_size, *figures), reference)
        assert pq.read_table(index_path(data)).equals(pq.read_table(reference))
