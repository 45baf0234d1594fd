"""Replay against tcpdump: each target's files, concatenated, equal `tcpdump -r IN -w - FILTER`.

tcpdump decides which packets a filter selects (tests/oracle.py); our own struct reader decides
what each output file holds. Split boundaries and file names are recomputed here from the packet
timestamps, independently of pushcap's naming code.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from oracle import PCAPS_DIR, assert_same_packets, capinfos_ok, read_pcap, tcpdump_select

from pushcap.config.lua import load_targets
from pushcap.supervisor.replay import replay

pytestmark = pytest.mark.integration

FILTERS = [None, "tcp", "udp port 53", "not host 192.168.1.1", "vlan", "ip6", "icmp or arp",
           "tcp or (vlan and tcp)"]  # the last: what README offers for live VLAN-tagged TCP
REAL_FILES = [
    "tcpreplay-test.pcap", "tcpreplay-test-nano.pcap", "ultrasurf-vlan.pcap",
    "vlan-mixed-tagged-untagged.pcap", "http_ipv6.pcap", "tcp-snaplen68.pcap",
    "tcp-caplen96.pcap", "nfsv3-bigendian.pcap", "dns_fragmented.pcap", "kakaotalk-sll.pcap",
    "ocs-rawip.pcap", "http-mime-truncated.pcap", "viber_mobile.pcap",
    "bittorrent_transmission.pcapng", "pcapng-multi-interface.pcapng",
]


def series_files(prefix: Path) -> list[Path]:
    """Finished files of a series in time order (names start with the epoch second)."""
    files = sorted(prefix.parent.glob(prefix.name + "_*.pcap"),
                   key=lambda p: tuple(int(x) for x in p.stem[len(prefix.name) + 1:]
                                       .replace("_", "-").split("-")))
    assert not list(prefix.parent.glob(".*.part")), "temporary files left behind"
    return files


class LuaLiteral:
    """A Lua expression that conftest.lua_targets writes as it is (`false`, not a string)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def targets_for(out: Path, filters: list[str | None], split: str) -> list[dict]:
    """Targets whose filters see each packet as captured (Decap off), as `tcpdump -r` does;
    test_decap_replay.py holds Decap, FMADIO's default, to tcpdump on the inner frames."""
    return [{"Desc": f"t{i}", "Mode": "File", "Path": str(out / f"t{i}"), "Split": split,
             "FileName": "--filename-epoch-sec-startend" if "time" in split
             else "--filename-epoch-nsec", "FilterBPF": f, "Decap": LuaLiteral("false")}
            for i, f in enumerate(filters)]


def compilable(path: Path, bpf: str | None, tmp: Path):
    try:
        return tcpdump_select(path, bpf, tmp / "oracle.pcap")
    except Exception:  # noqa: BLE001 - the filter does not apply to this link type
        return None


def check_time_series(files: list[Path], split_s: int) -> None:
    for f in files:
        start_s, end_s = (int(x) for x in f.stem.rsplit("_", 1)[1].split("-")[:2])
        assert end_s - start_s == split_s and start_s % split_s == 0, f.name
        packets = read_pcap(f).packets
        assert packets, f"{f.name} is empty"
        assert start_s * 10**9 <= packets[0][0] < end_s * 10**9, f.name
        assert all(p[0] < end_s * 10**9 for p in packets), f"{f.name} holds a later packet"


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_capture_time_split(name, tmp_path, write_lua):
    src = PCAPS_DIR / name
    out = tmp_path / "out"
    expected = {f: compilable(src, f, tmp_path) for f in FILTERS}
    filters = [f for f in FILTERS if expected[f] is not None]  # e.g. no `vlan` on raw IP
    assert len(filters) >= 3
    lua = write_lua(targets_for(out, filters, "--split-time 1e9"))
    summary = replay(src, load_targets(lua))
    assert summary.packets == len(read_pcap(src).packets)
    for i, bpf in enumerate(filters):
        files = series_files(out / f"t{i}")
        got = [p for f in files for p in read_pcap(f).packets]
        assert_same_packets(got, expected[bpf].packets)
        check_time_series(files, 1)
        if files:
            assert read_pcap(files[0]).linktype == expected[bpf].linktype


def test_generated_trace_filters_and_byte_split(tmp_path, write_lua, gen_trace):
    src = gen_trace(60000, seed=7, nano=True)
    out = tmp_path / "out"
    filters = ["tcp", "udp port 53", "not port 22", "vlan and udp", None]
    limit = 300_000
    lua = write_lua(targets_for(out, filters, f"--split-byte {limit}"))
    replay(src, load_targets(lua))
    for i, bpf in enumerate(filters):
        expected = tcpdump_select(src, bpf, tmp_path / "oracle.pcap")
        files = series_files(out / f"t{i}")
        got = []
        for f in files:
            packets = read_pcap(f).packets
            assert f.stat().st_size <= limit or len(packets) == 1, f"{f.name} over the limit"
            assert f.stem.rsplit("_", 1)[1] == str(packets[0][0]), "name is not the first packet"
            got.extend(packets)
        assert len(files) > 1
        assert_same_packets(got, expected.packets)
    capinfos_ok(files[0])


def test_time_split_on_minute_boundaries(tmp_path, write_lua, gen_trace):
    src = gen_trace(30000, seed=3, rate_pps=200.0)  # 150 s of traffic
    out = tmp_path / "out"
    lua = write_lua(targets_for(out, [None], "--split-time 60e9"))
    replay(src, load_targets(lua))
    files = series_files(out / "t0")
    assert len(files) >= 3
    check_time_series(files, 60)
    assert_same_packets([p for f in files for p in read_pcap(f).packets], read_pcap(src).packets)
    for f in files:
        assert capinfos_ok(f) == len(read_pcap(f).packets)


# Time strings are local time, as FMADIO writes them (the replay runs in this process's zone).
NAMING = {
    "--filename-epoch-sec-startend": lambda s: f"{s}-{s + 60}",
    "--filename-epoch-sec": lambda s: f"{s}",
    "--filename-epoch-msec": lambda s: f"{s * 1000}",
    "--filename-timestr-HHMM": lambda s: time.strftime("%Y%m%d_%H%M", time.localtime(s)),
    "--filename-timestr-HHMMSS": lambda s: time.strftime("%Y%m%d_%H%M%S", time.localtime(s)),
    "--filename-tstr-HHMMSS": lambda s: time.strftime("%Y%m%d_%H%M%S", time.localtime(s)),
    "--filename-timestr-HHMMSS_NS": lambda s: time.strftime("%Y%m%d_%H%M%S.000.000.000",
                                                            time.localtime(s)),
}


@pytest.mark.parametrize("mode", sorted(NAMING))
def test_naming_modes_follow_packet_windows(mode, tmp_path, write_lua, gen_trace):
    src = gen_trace(3000, seed=5, rate_pps=10.0)  # 300 s: several one-minute windows
    out = tmp_path / "out"
    lua = write_lua([{"Desc": "n", "Mode": "File", "Path": str(out / "n"),
                      "Split": "--split-time 60e9", "FileName": mode}])
    replay(src, load_targets(lua))
    windows = sorted({p[0] // (60 * 10**9) * 60 for p in read_pcap(src).packets})
    expected = {f"n_{NAMING[mode](w)}.pcap" for w in windows}
    assert {p.name for p in out.glob("n_*.pcap")} == expected


CLASSIC_FILES = [name for name in REAL_FILES if name.endswith(".pcap")]


@pytest.mark.parametrize("name", CLASSIC_FILES)
@pytest.mark.parametrize("bpf", [None, "tcp"])
def test_a_replayed_pcap_file_is_byte_for_byte_what_tcpdump_writes(name, bpf, tmp_path,
                                                                     write_lua):
    """One file per target (a byte split larger than the input) holds exactly the bytes of
    `tcpdump -r IN -w OUT FILTER`: the input's records unconverted, in its timestamp unit
    (tcpdump is told to keep a ns file's unit), little-endian whatever the input's order."""
    src = PCAPS_DIR / name
    reference = tmp_path / "tcpdump.pcap"
    nano = src.read_bytes()[:4] in (bytes.fromhex("4d3cb2a1"), bytes.fromhex("a1b23c4d"))
    cmd = ["tcpdump", *(["--time-stamp-precision=nano"] if nano else []), "-r", str(src),
           "-w", str(reference), *([bpf] if bpf else [])]
    subprocess.run(cmd, capture_output=True, check=False)  # exit 1 on a cut last record
    assert reference.exists()
    lua = write_lua(targets_for(tmp_path / "out", [bpf], "--split-byte 1e12"))
    replay(src, load_targets(lua))
    files = series_files(tmp_path / "out" / "t0")
    want = reference.read_bytes()
    if len(want) == 24:  # tcpdump selected nothing: pushcap writes no file
        assert files == []
        return
    assert [f.read_bytes() == want for f in files] == [True], name
