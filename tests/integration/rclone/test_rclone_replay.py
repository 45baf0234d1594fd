"""`pushcap replay --config F`: the file's `[rclone]` drives the rclone targets of a replay."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import DAV_PASSWORD, DAV_USER
from oracle import PCAPS_DIR, read_pcap

from pushcap.push.rclone_remote import rclone_binary

pytestmark = pytest.mark.integration

CAPTURE = PCAPS_DIR / "http-bro.org.pcap"


def replay(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "push.lua").write_text(
        'return { Target = { { Desc = "dav", Mode = "rclone", Path = "viaconf:push/all", '
        'Split = "--split-byte 1e5", FileName = "--filename-epoch-nsec" } } }')
    return subprocess.run([sys.executable, "-m", "pushcap", "replay", str(CAPTURE), "--lua",
                           str(tmp_path / "push.lua"), *extra], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_replay_uses_the_rclone_config_file_named_in_the_toml(tmp_path, webdav_remote):
    """The remote `viaconf:` exists only in the rclone config that `[rclone] config` names:
    with --config every packet arrives on the served remote, without it the remote is unknown."""
    obscured = subprocess.run([str(rclone_binary()), "obscure", DAV_PASSWORD], check=True,
                              capture_output=True, text=True).stdout.strip()
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[viaconf]\ntype = webdav\nurl = {webdav_remote.url}\nvendor = rclone\n"
                    f"user = {DAV_USER}\npass = {obscured}\n")
    toml = tmp_path / "daemon.toml"
    toml.write_text(f'[[interface]]\nname = "lo"\n[rclone]\nconfig = "{conf}"\n'
                    f'spool_dir = "{tmp_path}/spool"\n[ring]\nbatch_packets = 100\n')

    proc = replay(tmp_path, "--config", str(toml))
    assert proc.returncode == 0, proc.stderr
    arrived = webdav_remote.files("push")
    assert arrived and all(name.startswith("all_") for name in arrived)
    packets = [p for name in sorted(arrived) for p in read_pcap_bytes(tmp_path, name,
                                                                        arrived[name])]
    assert packets == read_pcap(CAPTURE).packets
    assert (tmp_path / "spool").is_dir() and not (tmp_path / "out").exists()
    assert "in 8 batches" in proc.stdout  # [ring] batch_packets: 751 packets, 100 a read
    assert DAV_PASSWORD not in proc.stdout + proc.stderr and obscured not in proc.stderr

    for leftover in (tmp_path / "spool").rglob("*"):  # nothing left to send from the first run
        assert leftover.is_dir()
    without = replay(tmp_path)
    assert without.returncode == 1
    assert "viaconf" in without.stderr and "Traceback" not in without.stderr


def read_pcap_bytes(tmp_path, name: str, data: bytes):
    path = tmp_path / "arrived" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return read_pcap(path).packets
