"""`pushcap query` against tcpdump: the packets of a window that a filter selects from an archive.

An archive is made by replaying a trace into a File target with `Index = true`; the oracle runs
`tcpdump -r F FILTER` over each of the window's files (tests/oracle.py), cuts the result to the
window and orders it by timestamp (stably: ties keep file order). The query must give exactly
that, for filters the index can narrow and for filters it cannot, over generated traces and the
real captures, with and without an index, and with a file gone during the query.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from oracle import PCAPS_DIR, OracleError, assert_same_packets, read_pcap, tcpdump_select

from pushcap.archive.index_file import IndexReader
from pushcap.archive.layout import index_path
from pushcap.archive.query import ArchiveQuery, QueryError
from pushcap.config.lua import load_targets
from pushcap.supervisor.replay import replay

pytestmark = pytest.mark.integration

REAL_FILES = ["tcpreplay-test.pcap", "tcpreplay-test-nano.pcap", "ultrasurf-vlan.pcap",
              "vlan-mixed-tagged-untagged.pcap", "http_ipv6.pcap", "tcp-snaplen68.pcap",
              "dns_fragmented.pcap", "kakaotalk-sll.pcap", "ocs-rawip.pcap",
              "nfsv3-bigendian.pcap", "bittorrent_transmission.pcapng"]
ALL_TIME = (0, 1 << 62)


class _LuaTrue:
    """Lua's `true` for conftest's write_lua (which quotes strings and str()s the rest)."""

    def __str__(self) -> str:
        return "true"


LUA_TRUE = _LuaTrue()


def archive(trace: Path, out: Path, write_lua, split: str = "--split-time 1e9") -> list[Path]:
    lua = write_lua([{"Desc": "arc", "Mode": "File", "Path": str(out / "arc"), "Split": split,
                      "Index": LUA_TRUE}])
    replay(trace, load_targets(lua))
    files = sorted(out.glob("arc_*.pcap"))
    assert files and all(index_path(f).exists() for f in files)
    return files


def expected(files: list[Path], bpf: str | None, window, tmp: Path):
    """tcpdump over each file, cut to the window, stably ordered by timestamp."""
    packets = []
    for f in files:
        packets.extend(p for p in tcpdump_select(f, bpf, tmp / "oracle.pcap").packets
                       if window[0] <= p[0] < window[1])
    return sorted(packets, key=lambda p: p[0])


def run_query(files, bpf, window, tmp: Path, notes=None):
    query = ArchiveQuery(files, window[0], window[1], bpf, notes)
    out = tmp / "query.pcap"
    from pushcap.capture.batch import pcap_file_header

    with out.open("wb") as f:
        f.write(pcap_file_header(query.linktype, query.snaplen, query.nano))
        for batch in query.batches():
            f.write(memoryview(batch.records).cast("B"))
    return read_pcap(out).packets, query.stats


def busiest(files: list[Path], family: int = 4):
    """An address of a modest flow share, a VLAN id and a port, from the index."""
    flows = IndexReader(index_path(files[0])).flows()
    v4 = np.flatnonzero((flows["ip_version"] == family) & flows["exact"])
    order = np.argsort(flows["packets"][v4])
    row = v4[order[len(order) // 2]]
    host = socket.inet_ntoa(flows["src_raw"][row][:4].tobytes())
    other = socket.inet_ntoa(flows["dst_raw"][v4[order[-1]]][:4].tobytes())
    tagged = np.flatnonzero(flows["vlan"] >= 0)
    vlan = int(flows["vlan"][tagged[0]]) if len(tagged) else None
    return host, other, vlan


@pytest.fixture(scope="module")
def generated(tmp_path_factory, gen_trace):
    out = tmp_path_factory.mktemp("archive")
    lua_dir = tmp_path_factory.mktemp("lua")

    def write_lua(targets):
        (target,) = targets
        path = lua_dir / "push.lua"
        path.write_text("return { Target = { { " + ", ".join(
            f'{k} = {v if v is LUA_TRUE else chr(34) + v + chr(34)}' for k, v in target.items())
            + " } } }\n")
        return path

    trace = gen_trace(40_000, seed=3, rate_pps=4000.0)
    files = archive(trace, out, write_lua)
    assert len(files) >= 8
    first = read_pcap(files[0]).packets[0][0]
    return files, first


def narrowable(host, other, vlan):
    filters = [f"host {host}", f"host {host} or {other}", "tcp port 80 or 443",
               f"net {host.rsplit('.', 2)[0]}.0.0/16 and udp", "udp port 53", "icmp", "ip6",
               f"src {host} and tcp"]
    if vlan is not None:
        filters.append(f"vlan {vlan} and host {other}")
    return filters


NOT_NARROWABLE = ["not tcp", "tcp[13] & 2 != 0", "greater 1000", "arp or udp"]


def test_generated_archive_every_filter(generated, tmp_path):
    files, first = generated
    host, other, vlan = busiest(files)
    window = (first + 2_500_000_000, first + 6_500_000_000)
    for bpf in [*narrowable(host, other, vlan), *NOT_NARROWABLE, None]:
        got, stats = run_query(files, bpf, window, tmp_path)
        want = expected(files, bpf, window, tmp_path)
        assert_same_packets(got, want)
        assert stats.files_outside >= len(files) - 6, bpf  # outside the window: not opened
    # a narrow filter reads a small share of the archive through the indexes
    _, stats = run_query(files, f"host {host}", ALL_TIME, tmp_path)
    assert stats.files_indexed == len(files) and stats.files_scanned == 0
    assert stats.bytes_read < stats.archive_bytes / 4, stats


def test_a_file_without_index_is_scanned(generated, tmp_path):
    files, _ = generated
    host, _, _ = busiest(files)
    index = index_path(files[1])
    moved = tmp_path / "index.parquet"
    index.rename(moved)
    try:
        got, stats = run_query(files, f"host {host}", ALL_TIME, tmp_path)
    finally:
        moved.rename(index)
    assert stats.files_scanned == 1 and stats.files_indexed == len(files) - 1
    assert_same_packets(got, expected(files, f"host {host}", ALL_TIME, tmp_path))


def test_a_file_deleted_during_the_query_is_skipped_with_a_note(tmp_path, gen_trace,
                                                                 write_lua):
    files = archive(gen_trace(12_000, seed=5, rate_pps=4000.0), tmp_path / "a", write_lua)
    notes: list[str] = []
    query = ArchiveQuery(files, *ALL_TIME, "udp", notes.append)
    files[0].unlink()  # retention's doing, between the plan and the read
    got = [p for b in query.batches() for p in range(len(b))]
    assert query.stats.files_missing == 1
    assert any(files[0].name in n and "deleted" in n for n in notes), notes
    assert len(got) == len(expected(files[1:], "udp", ALL_TIME, tmp_path))


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_captures(name, tmp_path, write_lua):
    files = archive(PCAPS_DIR / name, tmp_path / "a", write_lua, "--split-time 10e9")
    packets = [p for f in files for p in read_pcap(f).packets]
    ts = sorted(p[0] for p in packets)
    middle = (ts[len(ts) // 4], ts[3 * len(ts) // 4] + 1)
    filters = [None, "tcp", "udp port 53", "ip6", "vlan", "icmp or arp", "not tcp",
               "tcp port 80 and not host 1.2.3.4"]
    v4 = IndexReader(index_path(files[0])).flows()
    rows = np.flatnonzero(v4["ip_version"] == 4)
    if len(rows):
        filters.append(f"host {socket.inet_ntoa(v4['src_raw'][rows[0]][:4].tobytes())}")
    tried = 0
    for bpf in filters:
        for window in (ALL_TIME, middle):
            try:
                want = expected(files, bpf, window, tmp_path)
            except Exception:  # noqa: BLE001 - not a filter for this link type (tcpdump says)
                continue
            got, _ = run_query(files, bpf, window, tmp_path)
            assert_same_packets(got, want)
            tried += 1
    assert tried >= 6


def test_query_command_writes_a_pcap(generated, tmp_path, write_lua):
    files, first = generated
    host, _, _ = busiest(files)
    lua = write_lua([{"Desc": "arc", "Mode": "File", "Path": str(files[0].parent / "arc"),
                      "Split": "--split-time 1e9", "Index": LUA_TRUE}])
    from pushcap.archive.layout import target_series

    (target,) = load_targets(lua)
    assert sorted(target_series(target, "eth0", False).paths()) == files
    assert target_series(target, "eth0", True).paths() == []  # `<Path>_eth0_...`: none here
    start, end = (first + 1_000_000_000) / 1e9, (first + 5_000_000_000) / 1e9
    out = tmp_path / "q.pcap"
    proc = subprocess.run([sys.executable, "-m", "pushcap", "query", "--lua", str(lua),
                           "--target", "arc", "--start", f"{start:.9f}", "--end", f"{end:.9f}",
                           "-w", str(out), "host", host], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "through their index" in proc.stderr
    window = (int(round(start * 1e9)), int(round(end * 1e9)))
    assert_same_packets(read_pcap(out).packets, expected(files, f"host {host}", window,
                                                         tmp_path))
    piped = subprocess.run([sys.executable, "-m", "pushcap", "query", "--dir",
                            str(files[0].parent), "--start", f"{start:.9f}", "--end",
                            f"{end:.9f}", "--quiet", f"host {host}"], capture_output=True,
                           timeout=120)
    assert piped.returncode == 0 and piped.stdout == out.read_bytes()


def test_random_filters_agree_with_tcpdump(generated, tmp_path):
    """Seeded random and/or/not combinations of the primitives the index knows and some it
    does not: the analysis must never hide a packet tcpdump selects."""
    import random

    files, first = generated
    host, other, vlan = busiest(files)
    atoms = [f"host {host}", f"host {other}", "tcp", "udp", "port 53", "tcp port 80",
             f"net {host.rsplit('.', 1)[0]}.0/24", "icmp", "ip6", "portrange 1-1023",
             "greater 500", "arp", f"src {other}", "ip proto 17"]
    rng = random.Random(20)
    window = (first + 1_000_000_000, first + 4_000_000_000)
    tried = 0
    for _ in range(14):
        expression = rng.choice(atoms)
        for _ in range(rng.randint(1, 3)):
            term = rng.choice(atoms)
            if rng.random() < 0.25:
                term = f"not {term}"
            if rng.random() < 0.3:
                expression = f"({expression})"
            expression = f"{expression} {rng.choice(['and', 'or'])} {term}"
        if vlan is not None and rng.random() < 0.3:
            expression = f"vlan {vlan} and {expression}"
        try:
            want = expected(files, expression, window, tmp_path)
        except OracleError:  # e.g. "expression rejects all packets": tcpdump refuses it too
            with pytest.raises(QueryError):
                run_query(files, expression, window, tmp_path)
            continue
        got, _ = run_query(files, expression, window, tmp_path)
        assert_same_packets(got, want)
        tried += 1
    assert tried >= 8


def test_remote_archive_reads_indexes_then_byte_ranges(generated, tmp_path):
    """`--remote` over rclone (its local backend here): the same pcap as `--dir`, fetched as
    the index objects plus the candidate records' byte ranges."""
    files, first = generated
    host, _, _ = busiest(files)
    window = [f"{(first + 1_000_000_000) / 1e9:.9f}", f"{(first + 5_000_000_000) / 1e9:.9f}"]
    outputs = []
    for where in (["--dir", str(files[0].parent)], ["--remote", f":local:{files[0].parent}"]):
        out = tmp_path / f"{where[0][2:]}.pcap"
        proc = subprocess.run([sys.executable, "-m", "pushcap", "query", *where, "--start",
                               window[0], "--end", window[1], "-w", str(out), f"host {host}"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and len(read_pcap(tmp_path / "remote.pcap").packets) > 0


def test_remote_fetches_only_the_candidates_byte_ranges(generated):
    """Through its index, a remote file is fetched as the byte ranges of its candidate
    records: the local stand-in is a sparse file holding a small share of the object."""
    from pushcap.archive.remote import remote_files

    files, first = generated
    host, _, _ = busiest(files)
    with remote_files(f":local:{files[0].parent}", None, first, first + (1 << 40),
                      f"host {host}") as local:
        assert [p.name for p in local] == [f.name for f in files]
        for path in local:
            info = path.stat()
            assert info.st_size == (files[0].parent / path.name).stat().st_size
            assert info.st_blocks * 512 < info.st_size / 4, path.name
            assert index_path(path).exists()


def test_a_compressed_indexed_archive_reads_at_most_what_it_holds(tmp_path, write_lua):
    """A gzip-compressed, indexed file is decompressed whole to be picked from: the bytes read
    are its size on disk and its index, never more than the archive holds (the summary said
    "read 0.5 MB of 0.3 MB (158.56%)"); and the packets are tcpdump's."""
    trace = PCAPS_DIR / "http-bro.org.pcap"
    lua = write_lua([{"Desc": "gz", "Mode": "File", "Path": str(tmp_path / "gz"),
                      "Split": "--split-time 60e9", "Index": LUA_TRUE, "PipeCmd": "gzip -c",
                      "Decap": False}])
    replay(trace, load_targets(lua))
    files = sorted(tmp_path.glob("gz_*.pcap.gz"))
    assert files and all(index_path(f).exists() for f in files)
    got, stats = run_query(files, "tcp", ALL_TIME, tmp_path)
    want = tcpdump_select(trace, "tcp", tmp_path / "oracle.pcap").packets
    assert_same_packets(got, sorted(want, key=lambda p: p[0]))
    assert stats.files_indexed == len(files) and stats.files_scanned == 0
    indexes = sum(index_path(f).stat().st_size for f in files)
    assert 0 < stats.bytes_read <= stats.archive_bytes + indexes, stats
