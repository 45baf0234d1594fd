"""`pushcap query` served by a running `pushcap run` (Stenographer's way) against tcpdump.

An archive is made by replaying a trace into a File target with `Index = true`; then `pushcap
run` captures lo with that same target (its FilterBPF takes nothing lo carries, so it adds no
file) and keeps the archive's indexes in memory. `pushcap query` asks it first: its output must
be what `tcpdump -r F FILTER` selects from each file (cut to the window, stably time ordered,
tests/oracle.py), byte for byte the standalone query's (`--local`), for a target and for a
folder. A folder outside the daemon's targets is read by the command itself (with `--daemon`:
one line, exit 1); a filter libpcap refuses is one line and exit 1, no traceback; a file
deleted between a query's planning and its reading is skipped with a note, as standalone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from oracle import assert_same_packets, read_pcap
from service_harness import Daemon
from test_archive_query import ALL_TIME, LUA_TRUE, archive, busiest, expected

from pushcap.archive.index_cache import IndexCache
from pushcap.archive.query import ArchiveQuery

pytestmark = pytest.mark.integration

SERVED = "served by the daemon"
NOTHING_ON_LO = "udp port 9"


@pytest.fixture
def served(gen_trace, tmp_path, write_lua):
    """(daemon, archive files) : the archive's target run by a daemon on lo."""
    out = tmp_path / "arc"
    out.mkdir()
    files = archive(gen_trace(30_000, seed=5, rate_pps=10_000), out, write_lua)
    lua = (f'return {{ Target = {{ {{ Desc = "arc", Mode = "File", Path = "{out / "arc"}", '
           f'Split = "--split-time 1e9", Index = {LUA_TRUE}, FilterBPF = "{NOTHING_ON_LO}" '
           "} } }\n")
    daemon = Daemon(tmp_path, lua)
    try:
        yield daemon, files
    finally:
        daemon.stop()


def query(daemon: Daemon, *args: str) -> subprocess.CompletedProcess:
    """`pushcap query ARGS` as a user runs it, finding the daemon through --config."""
    return subprocess.run([sys.executable, "-m", "pushcap", "query", "--config",
                           str(daemon.toml), "--start", str(ALL_TIME[0]), "--end",
                           str(ALL_TIME[1] // 10**9), *args], cwd=daemon.tmp,
                          capture_output=True, text=True, timeout=120)


def test_daemon_answers_what_tcpdump_selects(served, tmp_path):
    daemon, files = served
    host, other, _ = busiest(files)
    for bpf in (f"host {host}", f"tcp port 80 or host {other}", "udp"):
        want = expected(files, bpf, ALL_TIME, tmp_path)
        outputs = {}
        for name, where in (("target", ("--lua", str(daemon.lua), "--target", "arc")),
                            ("dir", ("--dir", str(files[0].parent))),
                            ("local", ("--local", "--dir", str(files[0].parent)))):
            out = tmp_path / f"{name}.pcap"
            proc = query(daemon, *where, "-w", str(out), bpf)
            assert proc.returncode == 0, proc.stderr
            assert (SERVED in proc.stderr) == (name != "local"), proc.stderr
            outputs[name] = out.read_bytes()
            assert_same_packets(read_pcap(out).packets, want)
        assert outputs["target"] == outputs["dir"] == outputs["local"], bpf
    assert daemon.status()["query"]["served"] == 6


def test_a_folder_outside_the_targets_is_read_by_the_command(served, tmp_path):
    daemon, files = served
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(files[0], elsewhere)
    out = tmp_path / "out.pcap"
    proc = query(daemon, "--dir", str(elsewhere), "-w", str(out), "udp")
    assert proc.returncode == 0 and SERVED not in proc.stderr, proc.stderr
    assert_same_packets(read_pcap(out).packets,
                        expected([elsewhere / files[0].name], "udp", ALL_TIME, tmp_path))
    proc = query(daemon, "--daemon", "--dir", str(elsewhere), "-w", str(out), "udp")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "not inside a File target's folder" in proc.stderr


def test_errors_are_one_line(served, tmp_path):
    daemon, files = served
    proc = query(daemon, "--daemon", "--dir", str(files[0].parent), "-w",
                 str(tmp_path / "o.pcap"), "host and and")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("pushcap: error: query: ")
    assert "Traceback" not in proc.stderr
    daemon.stop()  # no daemon: --daemon says so; without it the command reads the files
    proc = query(daemon, "--daemon", "--dir", str(files[0].parent), "-w",
                 str(tmp_path / "o.pcap"), "udp")
    assert proc.returncode == 1 and "no daemon answers" in proc.stderr
    assert proc.stderr.count("\n") == 1
    proc = query(daemon, "--dir", str(files[0].parent), "-w", str(tmp_path / "o.pcap"), "udp")
    assert proc.returncode == 0 and SERVED not in proc.stderr, proc.stderr


def test_a_file_deleted_mid_query_is_skipped_from_memory_too(gen_trace, tmp_path, write_lua):
    files = archive(gen_trace(30_000, seed=5, rate_pps=10_000), tmp_path, write_lua)
    cache = IndexCache(1 << 30)
    first = ArchiveQuery(files, *ALL_TIME, "udp", indexes=cache.lookup)
    list(first.batches())  # the files' pages are now mapped by the cache
    notes: list[str] = []
    query = ArchiveQuery(files, *ALL_TIME, "udp", notes.append, indexes=cache.lookup)
    files[1].unlink()
    packets = sum(len(batch) for batch in query.batches())
    assert query.stats.files_missing == 1 and any("deleted while the query ran" in n
                                                 for n in notes)
    assert packets == len(expected([files[0], *files[2:]], "udp", ALL_TIME, tmp_path))
    assert cache.sweep() == 1 and cache.stats()["files"] == len(files) - 1
