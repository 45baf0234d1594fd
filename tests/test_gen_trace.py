"""tools/gen_trace.py makes the traces other tests trust, so check it against the oracles.

Counts come from tcpdump (what a BPF selects) and capinfos (whether the file is valid); the
per-packet checks use tests/oracle.py's reader, which shares no code with the generator.
"""

from __future__ import annotations

import time
from pathlib import Path

import gen_trace as generator
import pytest
from oracle import capinfos_ok, read_pcap, tcpdump_select

PACKETS = 20_000


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    """One µs trace shared by the read-only checks below."""
    path = tmp_path_factory.mktemp("gen") / "trace.pcap"
    generator.generate(path, PACKETS, seed=7)
    return path


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"
    generator.generate(a, 70_000, seed=3)  # more than one chunk, so chunk carry-over is covered
    generator.generate(b, 70_000, seed=3)
    generator.generate(c, 70_000, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_capinfos_counts_every_packet(trace: Path) -> None:
    assert capinfos_ok(trace) == PACKETS


def test_file_header_is_classic_le_ethernet(trace: Path) -> None:
    raw = trace.read_bytes()[:4]
    assert raw == bytes.fromhex("d4c3b2a1")
    cap = read_pcap(trace)
    assert (cap.linktype, cap.snaplen, cap.nano, cap.truncated) == (1, 262144, False, False)
    assert len(cap.packets) == PACKETS


def test_protocol_mix_by_tcpdump(trace: Path, tmp_path: Path) -> None:
    """Every class is present, and the untagged classes plus `vlan` account for every packet.

    tcpdump's `tcp`, `udp`, `icmp`, `arp` look at the untagged ethertype only, so tagged frames
    are counted once, by `vlan`; the sum proves the generator writes no unparseable frame.
    """
    counts = {
        bpf: len(tcpdump_select(trace, bpf, tmp_path / "sel.pcap").packets)
        for bpf in ("tcp", "udp", "vlan", "ip6", "icmp or icmp6", "port 53", "arp",
                    "vlan and (tcp or udp)")
    }  # fmt: skip
    print(counts)
    assert all(n > 0 for n in counts.values()), counts
    assert (
        counts["tcp"] + counts["udp"] + counts["icmp or icmp6"] + counts["arp"] + counts["vlan"]
        == PACKETS
    )
    assert 0.50 < counts["tcp"] / PACKETS < 0.65
    assert 0.20 < counts["udp"] / PACKETS < 0.35
    assert 0.05 < counts["vlan"] / PACKETS < 0.20
    assert counts["port 53"] < counts["udp"]


def test_many_flows_that_repeat(trace: Path) -> None:
    """Hundreds to thousands of 5-tuples, each seen several times on average."""
    flows: dict[bytes, int] = {}
    for _ts, _cap, _wire, data in read_pcap(trace).packets:
        off = 18 if data[12:14] == b"\x81\x00" else 14
        ethertype = data[off - 2 : off]
        if ethertype == b"\x08\x00":
            key = data[off + 9 : off + 10] + data[off + 12 : off + 20] + data[off + 20 : off + 24]
        elif ethertype == b"\x86\xdd":
            key = data[off + 6 : off + 7] + data[off + 8 : off + 40] + data[off + 40 : off + 44]
        else:
            continue
        flows[key] = flows.get(key, 0) + 1
    assert 300 <= len(flows) <= 10_000
    assert sum(flows.values()) / len(flows) >= 3


def test_sizes_and_timestamps(trace: Path) -> None:
    packets = read_pcap(trace).packets
    wirelens = [p[2] for p in packets]
    assert min(wirelens) == 60
    assert max(wirelens) >= 1400
    assert all(p[1] == p[2] == len(p[3]) for p in packets)
    assert len({w // 100 for w in wirelens}) >= 14  # spread over the range, not two spikes
    ts = [p[0] for p in packets]
    assert ts[0] == generator.DEFAULT_START_NS
    assert all(a <= b for a, b in zip(ts, ts[1:], strict=False))
    assert all(t % 1000 == 0 for t in ts)  # a µs file has no sub-µs digits
    mean_gap_s = (ts[-1] - ts[0]) / (len(ts) - 1) / 1e9
    assert 0.5 / 20_000 < mean_gap_s < 2 / 20_000


def test_nano_has_sub_microsecond_digits(tmp_path: Path) -> None:
    path = tmp_path / "nano.pcap"
    generator.generate(path, 2000, seed=5, nano=True, rate_pps=1000.0)
    assert path.read_bytes()[:4] == bytes.fromhex("4d3cb2a1")
    cap = read_pcap(path)
    assert cap.nano
    ts = [p[0] for p in cap.packets]
    assert sum(t % 1000 != 0 for t in ts) > 0.9 * len(ts)
    assert all(a <= b for a, b in zip(ts, ts[1:], strict=False))
    assert 1.5 < (ts[-1] - ts[0]) / 1e9 < 2.5
    assert capinfos_ok(path) == 2000


def test_snaplen_cuts_caplen_keeps_wirelen(tmp_path: Path) -> None:
    path = tmp_path / "snap.pcap"
    generator.generate(path, 3000, seed=2, snaplen=96)
    cap = read_pcap(path)
    assert cap.snaplen == 96
    assert all(p[1] == min(p[2], 96) == len(p[3]) for p in cap.packets)
    assert any(p[2] > 96 for p in cap.packets)
    assert capinfos_ok(path) == 3000


def test_cli_matches_module(tmp_path: Path) -> None:
    via_cli, via_module = tmp_path / "cli.pcap", tmp_path / "mod.pcap"
    argv = [str(via_cli), "--packets", "500", "--seed", "9", "--nano"]
    argv += ["--start-epoch", "1600000000.123456789", "--rate-pps", "500"]
    assert generator.main(argv) == 0
    start_ns = 1_600_000_000_123_456_789
    generator.generate(via_module, 500, seed=9, nano=True, start_ns=start_ns, rate_pps=500)
    assert via_cli.read_bytes() == via_module.read_bytes()
    assert read_pcap(via_cli).packets[0][0] == start_ns


def test_zero_packets_is_a_valid_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    generator.generate(path, 0)
    assert path.stat().st_size == 24
    assert capinfos_ok(path) == 0


def test_200k_packets_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "big.pcap"
    started = time.perf_counter()
    generator.generate(path, 200_000, seed=11)
    elapsed = time.perf_counter() - started
    print(f"gen_trace: 200000 packets, {path.stat().st_size} bytes in {elapsed:.2f} s")
    assert elapsed < 60
    assert capinfos_ok(path) == 200_000
