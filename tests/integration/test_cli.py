"""The `pushcap` console script: check and replay, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from oracle import PCAPS_DIR, read_pcap

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PUSHCAP = str(Path(__import__("sys").executable).parent / "pushcap")


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([PUSHCAP, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_check_shipped_config_prints_the_targets():
    proc = run("check")
    assert proc.returncode == 0, proc.stderr
    assert "pcap-all" in proc.stdout and "pcap-tcp" in proc.stdout
    assert "out/push/tcp_*.pcap" in proc.stdout and "time 60 s" in proc.stdout
    assert "--filename-epoch-sec-startend" in proc.stdout


def test_check_names_file_target_and_field_of_a_bad_filter(tmp_path):
    lua = (REPO / "etc/push_realtime.lua").read_text().replace('"tcp"', '"tcpp"')
    (tmp_path / "push_realtime.lua").write_text(lua)
    proc = run("check", "--lua", str(tmp_path / "push_realtime.lua"), "--config",
               str(REPO / "etc/pcapdaemon.toml"))
    assert proc.returncode == 1
    line = next(i for i, text in enumerate(lua.splitlines(), 1) if 'FilterBPF = "tcpp"' in text)
    want = f'push_realtime.lua:{line}: target 2 "pcap-tcp": FilterBPF "tcpp": syntax error'
    assert want in proc.stderr


def test_replay_prints_a_summary_and_writes_the_files(tmp_path):
    lua = tmp_path / "push.lua"
    lua.write_text('return { Target = { { Desc = "all", Mode = "File", Path = "o/all", '
                   'Split = "--split-byte 1e5", FileName = "--filename-epoch-nsec" } } }')
    src = PCAPS_DIR / "viber_mobile.pcap"
    proc = run("replay", str(src), "--lua", str(lua), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    files = sorted((tmp_path / "o").glob("all_*.pcap"))
    written = sum(len(read_pcap(f).packets) for f in files)
    assert written == 10701
    assert "read 10701 packets" in proc.stdout
    assert f"all: packets=10701 files={len(files)}" in proc.stdout


def test_replay_leaves_a_running_daemons_temporaries_alone(tmp_path):
    """A daemon writing into the same folder has open `.part` files (and compression
    temporaries) that look like a crash's leftovers: a replay must not publish or delete them."""
    lua = tmp_path / "push.lua"
    lua.write_text('return { Target = { { Desc = "all", Mode = "File", Path = "o/all", '
                   'PipeCmd = "gzip -c", FileSuffix = ".pcap.gz" } } }')
    (tmp_path / "o").mkdir()
    open_part = tmp_path / "o" / ".all.1616334600000000000.part"
    compressing = tmp_path / "o" / ".all.1616334500000000000.part.ztmp"
    open_part.write_bytes((PCAPS_DIR / "viber_mobile.pcap").read_bytes()[:5000])
    compressing.write_bytes(b"\x1f\x8b in progress")
    proc = run("replay", str(PCAPS_DIR / "viber_mobile.pcap"), "--lua", str(lua), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert open_part.read_bytes() == (PCAPS_DIR / "viber_mobile.pcap").read_bytes()[:5000]
    assert compressing.read_bytes() == b"\x1f\x8b in progress"
    assert len(list((tmp_path / "o").glob("all_*.pcap.gz"))) >= 1  # the replay's own files


def test_check_refuses_an_rclone_remote_that_is_not_configured(tmp_path):
    lua = tmp_path / "push.lua"
    lua.write_text('return { Target = { { Desc = "s3", Mode = "rclone", '
                   'Path = "nosuchremote:bucket/all" } } }')
    env_free = tmp_path / "rclone.conf"
    env_free.write_text("")
    toml = tmp_path / "d.toml"
    toml.write_text(f'[[interface]]\nname = "lo"\n[rclone]\nconfig = "{env_free}"\n')
    proc = run("check", "--lua", str(lua), "--config", str(toml), cwd=tmp_path)
    assert proc.returncode == 1
    assert "nosuchremote" in proc.stderr


def test_check_shows_flows_and_rclone_targets(tmp_path):
    lua = tmp_path / "push.lua"
    lua.write_text('return { Target = { { Desc = "f", Mode = "flows", '
                   'Path = "udp://127.0.0.1:10518", Interval = 5 }, '
                   '{ Desc = "s3", Mode = "rclone", Path = ":s3,provider=Minio:bucket/all", '
                   'PipeCmd = "gzip -c -1" } } }')
    proc = run("check", "--lua", str(lua), "--config", str(REPO / "etc/pcapdaemon.toml"),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "udp://127.0.0.1:10518 every 5 s" in proc.stdout
    assert ":s3" in proc.stdout and ".pcap.gz" in proc.stdout


def test_malformed_pcapng_is_a_clear_error_not_a_traceback(tmp_path):
    import struct

    data = bytearray((PCAPS_DIR / "pcapng-multi-interface.pcapng").read_bytes())
    pos = 0
    while pos < len(data):  # find the first enhanced packet block and name a missing interface
        btype, length = struct.unpack_from("<II", data, pos)
        if btype == 6:
            struct.pack_into("<I", data, pos + 8, 7)
            break
        pos += length
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(bytes(data))
    lua = tmp_path / "push.lua"
    lua.write_text('return { Target = { { Desc = "all", Mode = "File", Path = "o/all" } } }')
    proc = run("replay", str(bad), "--lua", str(lua), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "names interface 7" in proc.stderr


@pytest.mark.parametrize("count", ["0", "99999999999"])
def test_replay_refuses_a_batch_of_no_or_of_too_many_packets(tmp_path, count):
    """0 looped for ever; a huge count sized the batch arrays into a MemoryError traceback."""
    proc = run("replay", str(PCAPS_DIR / "viber_mobile.pcap"), "--batch-packets", count,
               cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"--batch-packets: must be 1 to 1048576, not {count}" in proc.stderr


def test_check_refuses_an_interface_this_host_does_not_have(tmp_path):
    """`run` could not start: check says so, with the devices libpcap does have."""
    (tmp_path / "d.toml").write_text('[[interface]]\nname = "lo"\n'
                                     '[[interface]]\nname = "nosuch0"\n')
    proc = run("check", "--config", str(tmp_path / "d.toml"))
    assert proc.returncode == 1
    assert "d.toml: [[interface]] nosuch0: no such capture device on this host (libpcap has: " \
        in proc.stderr and "lo" in proc.stderr.split("libpcap has:")[1]


def test_run_names_a_missing_interface_plainly(tmp_path):
    (tmp_path / "d.toml").write_text('[[interface]]\nname = "nosuch0"\n[status]\nport = 0\n')
    proc = run("run", "--config", str(tmp_path / "d.toml"), "--lua",
               str(REPO / "etc/push_realtime.lua"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "pushcap: error: interface nosuch0: no such device" in proc.stderr
    assert "Traceback" not in proc.stderr and "F_GETFL" not in proc.stderr


def test_a_config_that_is_not_text_is_a_clear_error(tmp_path):
    proc = run("check", "--config", str(PCAPS_DIR / "viber_mobile.pcap"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "viber_mobile.pcap: is not UTF-8 text (a TOML file was expected)" in proc.stderr


@pytest.mark.parametrize("kind", ["pipe", "folder"])
def test_replay_of_a_pipe_or_a_folder_says_what_it_needs(tmp_path, kind):
    """It reads at offsets: a pipe read twice gave a bogus 'not a pcap file (magic ...)'."""
    (tmp_path / "r.lua").write_text(
        f'return {{ Target = {{ {{ Desc = "a", Mode = "File", Path = "{tmp_path}/o/a" }} }} }}\n')
    source = tmp_path / "in"
    if kind == "pipe":
        os.mkfifo(source)
    else:
        source.mkdir()
    proc = run("replay", str(source), "--lua", str(tmp_path / "r.lua"), "--quiet",
               cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    what = "a pipe or device, not a regular file" if kind == "pipe" else "a folder"
    assert f"in: is {what}; replay reads a capture file" in proc.stderr
