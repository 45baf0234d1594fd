"""Every push_realtime.lua of tests/data/fmadio/ (FMADIO's own forms: its documentation's
examples, its config generator's output, its OPRA example's generated targets) passes
`pushcap check` and runs through `pushcap replay`.

The files are kept as FMADIO writes them; only their absolute folders (/mnt/...) are moved under
the test's own folder, and their rclone remotes (s3-fmad:, fmadio-s3:, gdrive:) are rclone
aliases of local folders.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import lz4.frame
import pytest
import zstandard
from encap_packets import INNER_MACS, eth, ipv4, tcp, udp, vlan, vxlan, write_pcap
from oracle import PCAPS_DIR, read_pcap
from test_cli import run

pytestmark = pytest.mark.integration

CORPUS_DIR = Path(__file__).resolve().parents[1] / "data" / "fmadio"
CORPUS = sorted(CORPUS_DIR.glob("*.lua"))
REMOTES = ("s3-fmad", "fmadio-s3", "gdrive")
REAL = PCAPS_DIR / "tcpreplay-test.pcap"  # 179 packets, VLAN- and MPLS-tagged ones among them


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> tuple[Path, int]:
    """A real capture plus what the corpus' filters look for (192.168.1.0/24 TCP, port 80,
    UDP to multicast groups), some of it in a VLAN tag or a VXLAN tunnel: every target takes
    packets. (path, packets)"""
    packets = [p[3] for p in read_pcap(REAL).packets]
    for i, port in enumerate([80, 10001, 16101, 16102, 16103, 16104, 17101, 17102, 17103, 17104]):
        frames = [eth(INNER_MACS[0], INNER_MACS[1], 0x0800,
                      ipv4("192.168.1.5", "192.168.1.6", 6, tcp(40000 + i, port, b"x" * 40))),
                  eth(bytes.fromhex("01005e010101"), INNER_MACS[1], 0x0800,
                      ipv4("192.168.2.5", "239.1.1.1", 17, udp(40000 + i, port, b"y" * 40)))]
        packets += frames + [vlan(f)[0] for f in frames] + [vxlan(f)[0] for f in frames]
    path = tmp_path_factory.mktemp("corpus") / "trace.pcap"
    write_pcap(path, packets)
    return path, len(packets)


def localized(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    """(the config with its /mnt/ folders under tmp_path, pcapdaemon.toml for it)."""
    lua = tmp_path / source.name
    lua.write_text(source.read_text().replace('"/mnt/', f'"{tmp_path}/mnt/')
                   .replace('os.date("/mnt/', f'os.date("{tmp_path}/mnt/'))
    remotes = tmp_path / "rclone.conf"
    remotes.write_text("".join(f"[{name}]\ntype = alias\nremote = {tmp_path}/remote/{name}\n\n"
                               for name in REMOTES))
    for name in REMOTES:
        (tmp_path / "remote" / name).mkdir(parents=True, exist_ok=True)
    toml = tmp_path / "pcapdaemon.toml"
    toml.write_text(f'[[interface]]\nname = "lo"\n[rclone]\nconfig = "{remotes}"\n'
                    f'spool_dir = "{tmp_path}/spool"\n')
    return lua, toml


def test_the_corpus_holds_every_form():
    assert len(CORPUS) >= 15
    text = "\n".join(p.read_text() for p in CORPUS)
    for form in ('"gzip -1 -c"', '" gzip -c "', '"zstd -c -T8"', 'FilterBPF = ""',
                 '"port80 zstd"', '"pcap.gz"', "os.date(", 'push/zstd/"', "Decap = true",
                 "Config.Decap", "Config.FollowStart", "Config.TimeoutRing", "Chunked",
                 "FollowStart", "CPU", "StreamCat", "SplitCmd", "FilterFrame", "ScriptNew"):
        assert form in text, form


@pytest.mark.parametrize("source", CORPUS, ids=[p.stem for p in CORPUS])
def test_check_accepts_it_and_says_each_notice_once(source, tmp_path):
    lua, toml = localized(tmp_path, source)
    proc = run("check", "--lua", str(lua), "--config", str(toml), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"OK: {lua}" in proc.stdout
    notices = [line for line in proc.stdout.splitlines() if line.startswith("notice: ")]
    assert len(notices) == len(set(notices))


@pytest.mark.parametrize("source", CORPUS, ids=[p.stem for p in CORPUS])
def test_replay_runs_it(source, tmp_path, trace):
    path, count = trace
    lua, toml = localized(tmp_path, source)
    proc = run("replay", str(path), "--lua", str(lua), "--config", str(toml), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"read {count} packets" in proc.stdout
    taken = [int(word.split("=")[1]) for word in proc.stdout.split() if word.startswith("packets=")]
    assert taken and all(taken), proc.stdout  # every target took packets
    files = [f for folder in ("mnt", "remote") for f in sorted((tmp_path / folder).rglob("*"))
             if f.is_file()]
    assert sum(len(_packets(f)) for f in files) == sum(taken), proc.stdout
    assert not list(tmp_path.rglob("*.part")), "a temporary file was left"


def _packets(path: Path) -> list:
    """The packets of an output file, decompressed by its suffix."""
    data = path.read_bytes()
    if path.name.endswith((".gz", ".gzip")):
        data = gzip.decompress(data)
    elif path.name.endswith(".lz4"):
        data = lz4.frame.decompress(data)
    elif path.name.endswith((".zst", ".zstd")):
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    plain = path.with_name(path.name + ".plain.pcap")
    plain.write_bytes(data)
    try:
        return read_pcap(plain).packets
    finally:
        plain.unlink()


def test_the_documented_examples_write_what_fmadio_names(tmp_path, trace):
    """Names as FMADIO writes them: `<Path>_<name>`, `<folder>/<name>` for a Path ending in
    "/", the dot added to a FileSuffix without one, a shared Path told apart by Desc."""
    for name in ("11_split_size_suffix_without_dot.lua", "13_multicast_group_generator.lua",
                 "14_dated_folder_pipe_forms.lua", "03_rclone_gzip.lua"):
        lua, toml = localized(tmp_path, CORPUS_DIR / name)
        day = time.strftime("%Y%m%d")
        proc = run("replay", str(trace[0]), "--lua", str(lua), "--config", str(toml),
                   cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    push = tmp_path / "mnt" / "remote0" / "push"
    capture = sorted(push.glob("capture_*.pcap.gz"))  # "pcap.gz", gzip without a PipeCmd
    assert capture and sum(len(_packets(f)) for f in capture) == trace[1]
    dated = sorted((push / day).iterdir())  # os.date(".../%Y%m%d/"), at load
    assert dated and all(f.name[:1].isdigit() and f.name.endswith(".pcap.gz") for f in dated)
    assert sum(len(_packets(f)) for f in dated) == trace[1]
    assert sorted((push / "zstd").iterdir())  # a folder: <time>.pcap.zstd inside it
    opra = tmp_path / "mnt" / "remote0" / "OPRA"
    assert all(f.name.startswith("Multicast_group-") for f in opra.iterdir())
    uploaded = [f for f in (tmp_path / "remote" / "s3-fmad").rglob("*") if f.is_file()]
    assert uploaded and all(f.name.startswith("all_") for f in uploaded)
    assert sum(len(_packets(f)) for f in uploaded) == trace[1]
