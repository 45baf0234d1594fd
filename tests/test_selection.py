"""A target's selection, split points and record writes in C (`native_runs`, `BpfFilter.select`)
equal the numpy fallback and a plain Python oracle, and a replay of push targets runs without
numpy (its import was a fifth of a replay's CPU for a million packets, issue 7)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from oracle import PCAPS_DIR

from pushcap.capture import bpf as bpf_module
from pushcap.config.lua import load_targets
from pushcap.push import selection as selection_module
from pushcap.push.native_runs import native_runs
from pushcap.supervisor.replay import replay

REPO = Path(__file__).resolve().parents[1]


def test_the_functions_are_built():
    assert native_runs() is not None


# --- the C functions against a Python oracle --------------------------------------------------
@pytest.mark.parametrize("seed", range(30))
def test_window_end_finds_the_first_packet_of_a_later_window(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    split = int(rng.choice([1, 7, 10**9, 60 * 10**9]))
    ts = np.sort(rng.integers(-5 * split, 5 * split, n)).astype(np.int64)
    if seed % 3 == 0:  # out of order: a clock step
        rng.shuffle(ts)
    idx = None if seed % 2 else np.flatnonzero(rng.random(n) < 0.6).astype(np.int64)
    positions = n if idx is None else len(idx)
    for pos in range(0, positions, max(1, positions // 7)):
        window = int(rng.integers(-6, 6))
        got = native_runs().window_end(ts, idx, pos, positions, split, window)
        at = [p for p in range(pos, positions)
              if int(ts[p if idx is None else idx[p]]) // split > window]
        assert got == (at[0] if at else positions)


@pytest.mark.parametrize(("split", "window"), [
    (2**62, 0), (2**62, 1), (2**63 - 1, 0), (2**63 - 1, -1), (3, -(2**63) // 3 - 5),
    (1, 2**63 - 1), (1, -(2**63)), (7, 2**62)])
def test_window_end_at_the_edges_of_int64(split, window):
    """The window's end is compared, not divided per packet: (window + 1) * split may overflow."""
    ts = [-(2**63), -(2**63) + 1, -1, 0, 1, 2**62, 2**63 - 2, 2**63 - 1]
    got = native_runs().window_end(np.array(ts, dtype=np.int64), None, 0, len(ts), split, window)
    later = [i for i, t in enumerate(ts) if t // split > window]  # Python: exact floor division
    assert got == (later[0] if later else len(ts))


@pytest.mark.parametrize("seed", range(20))
def test_bytes_end_fits_the_budget(seed):
    rng = np.random.default_rng(100 + seed)
    caplen = rng.integers(0, 1600, 200).astype(np.int64)
    idx = None if seed % 2 else np.flatnonzero(rng.random(200) < 0.5).astype(np.int64)
    positions = 200 if idx is None else len(idx)
    budget = int(rng.integers(-10, 40000))
    got = native_runs().bytes_end(caplen, idx, 3, positions, budget)
    sizes = [16 + int(caplen[p if idx is None else idx[p]]) for p in range(3, positions)]
    fit = 3
    while fit - 3 < len(sizes) and sum(sizes[:fit - 3 + 1]) <= budget:
        fit += 1
    assert got == fit


def batch_like(rng, n: int):
    """Records as a batch has them (headers and data back to back), with their offsets."""
    caplen = rng.integers(0, 300, n).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(caplen + 16)[:-1])).astype(np.int64)
    records = rng.integers(0, 256, int((caplen + 16).sum()), dtype=np.uint8).tobytes()
    return records, offsets, caplen


@pytest.mark.parametrize("seed", range(12))
def test_write_records_writes_the_selected_records_in_order(seed, tmp_path):
    rng = np.random.default_rng(200 + seed)
    n = 3000  # more runs than one writev takes (1024)
    records, offsets, caplen = batch_like(rng, n)
    idx = np.flatnonzero(rng.random(n) < 0.5).astype(np.int64) if seed % 3 else None
    positions = n if idx is None else len(idx)
    start, end = int(rng.integers(0, positions // 2)), positions
    out = tmp_path / "out"
    with out.open("wb") as f:
        wrote = native_runs().write_records(f.fileno(), records, offsets, caplen, idx, start,
                                            end)
    chosen = range(start, end) if idx is None else idx[start:end].tolist()
    want = b"".join(records[offsets[i]:offsets[i] + 16 + caplen[i]] for i in chosen)
    assert out.read_bytes() == want and wrote == len(want)


def test_write_records_checks_every_record_and_reports_system_errors(tmp_path):
    rng = np.random.default_rng(3)
    records, offsets, caplen = batch_like(rng, 10)
    runs = native_runs()
    bad = caplen.copy()
    bad[7] += 10**6  # reaches past the buffer
    with open(tmp_path / "x", "wb") as f, pytest.raises(ValueError, match="outside"):
        runs.write_records(f.fileno(), records, offsets, bad, None, 0, 10)
    with pytest.raises(ValueError):  # more positions than packets
        runs.write_records(1, records, offsets, caplen, None, 0, 11)
    read_end, write_end = os.pipe()
    os.close(write_end)
    with pytest.raises(OSError) as info:
        runs.write_records(read_end, records, offsets, caplen, None, 0, 10)
    os.close(read_end)
    assert info.value.errno == 9  # EBADF: a pipe's read end cannot be written


# --- whole targets: C and numpy give the same files ---------------------------------------------
def target_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.pcap"))}


@pytest.mark.parametrize("name", ["tcpreplay-test.pcap", "ultrasurf-vlan.pcap",
                                  "nfsv3-bigendian.pcap", "http_ipv6.pcap"])
def test_native_and_numpy_targets_write_the_same_files(name, tmp_path, write_lua, monkeypatch):
    targets = []
    for i, (split, bpf) in enumerate([("--split-time 1e8", None), ("--split-time 3e8", "tcp"),
                                      ("--split-byte 20000", "udp or icmp"),
                                      ("--split-byte 3000", "not tcp port 80")]):
        targets.append({"Desc": f"t{i}", "Mode": "File", "Path": f"OUT/t{i}", "Split": split,
                        "FileName": "--filename-epoch-nsec", "FilterBPF": bpf})
    results = []
    for native in (True, False):
        out = tmp_path / ("native" if native else "numpy")
        lua = write_lua([{**t, "Path": t["Path"].replace("OUT", str(out))} for t in targets],
                        name=f"{out.name}.lua")
        if not native:
            monkeypatch.setattr(selection_module, "native_runs", lambda: None)
            monkeypatch.setattr(bpf_module, "native_bpf", lambda: None)
        summary = replay(PCAPS_DIR / name, load_targets(lua), batch_packets=37)
        results.append(({f"t{i}": (s.stats.packets, s.stats.files) for i, s in
                          enumerate(summary.series)}, target_files(out)))
    assert results[0] == results[1]
    assert sum(files for _, files in results[0][0].values()) > 4


def test_a_replay_of_push_targets_never_imports_numpy(tmp_path, write_lua):
    """Everything a File target does with a little-endian pcap file runs in C: numpy would cost
    45 ms of CPU at every start (more than tcpdump's whole run on a small file)."""
    lua = write_lua([{"Desc": "all", "Mode": "File", "Path": str(tmp_path / "all"),
                      "Split": "--split-time 1e8", "FileName": "--filename-epoch-nsec",
                      "FilterBPF": None},
                     {"Desc": "tcp", "Mode": "File", "Path": str(tmp_path / "tcp"),
                      "Split": "--split-byte 5000", "FileName": "--filename-epoch-nsec",
                      "FilterBPF": "tcp"}])
    code = textwrap.dedent(f"""
        import sys
        import pushcap.cli
        from pushcap.supervisor.replay import replay
        from pushcap.config.lua import load_targets
        summary = replay({str(PCAPS_DIR / "tcpreplay-test.pcap")!r}, load_targets({str(lua)!r}))
        assert all(s.stats.packets for s in summary.series), summary
        print("numpy" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PUSHCAP_NO_NATIVE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, cwd=REPO, env=env)
    assert (out.returncode, out.stdout.strip()) == (0, "False"), out.stderr


def test_selection_indices_outside_the_batch_are_refused_before_any_read(tmp_path):
    """A selection's indices are checked against the batch in C, never used to read past it."""
    rng = np.random.default_rng(4)
    records, offsets, caplen = batch_like(rng, 10)
    runs = native_runs()
    bad = np.array([1, 2, 10], dtype=np.int64)  # 10: one past the last packet
    with pytest.raises(ValueError):
        runs.window_end(np.arange(10, dtype=np.int64), bad, 0, 3, 100, 0)
    with pytest.raises(ValueError):
        runs.bytes_end(caplen, bad, 0, 3, 10**6)
    with open(tmp_path / "x", "wb") as f, pytest.raises(ValueError):
        runs.write_records(f.fileno(), records, offsets, caplen, bad, 0, 3)
    with pytest.raises(ValueError):
        runs.bytes_end(caplen, None, -1, 3, 10**6)
