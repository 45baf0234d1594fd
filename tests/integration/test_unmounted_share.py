"""A target whose Path lies below a declared, unmounted share never writes there.

FMADIO's example pushes to /mnt/remote0/push/; with the share not mounted, writing would fill
the root file system. The test declares a folder as a mount point in a test fstab (`[push]
fstab`), starts the daemon with traffic flowing while nothing is mounted there: nothing may
appear in that folder, status must say why, a target on a plain folder beside it writes as
usual. Then the test mounts a tmpfs there: the waiting target resumes and, since its packets
waited in the ring, its files hold every packet sent, from before the mount too.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from oracle import read_pcap
from service_harness import Daemon

from pushcap.push.mount_guard import covering, fstab_mount_points, mounted_points

pytestmark = pytest.mark.integration


def test_fstab_and_mountinfo_are_read_as_the_system_writes_them():
    fstab = ("# <file system> <mount point> <type>\n"
             "UUID=1234 / ext4 defaults 0 1\n"
             "nas:/export /mnt/remote0 nfs defaults 0 0\n"
             "/dev/sdb1 none swap sw 0 0\n"
             "nas:/x /mnt/with\\040space nfs defaults 0 0\n")
    assert fstab_mount_points(fstab) == ["/mnt/remote0", "/mnt/with space"]
    mountinfo = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                 "40 22 0:40 / /mnt/with\\040space rw - nfs nas:/x rw\n")
    assert mounted_points(mountinfo) == {"/", "/mnt/with space"}
    points = ["/mnt/remote0", "/mnt", "/mnt/remote01"]
    assert covering("/mnt/remote0/push/all", points) == "/mnt/remote0"
    assert covering("/mnt/remote01x/all", points) == "/mnt"
    assert covering("/data/push/all", points) is None


@pytest.fixture
def share(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "share"
    point.mkdir()
    yield point
    subprocess.run(["umount", str(point)], capture_output=True)


def test_an_unmounted_share_is_not_written_until_it_is_mounted(tmp_path, share, udp_port):
    plain = tmp_path / "plain"
    (tmp_path / "fstab").write_text(f"nas:/export {share} nfs defaults 0 0\n")
    lua = f"""
return {{ Target = {{
  {{ Desc = "nas", Mode = "File", Path = "{share}/push/all", Split = "--split-time 60e9",
     FilterBPF = "udp and dst port {udp_port}" }},
  {{ Desc = "local", Mode = "File", Path = "{plain}/all", Split = "--split-time 60e9",
     FilterBPF = "udp and dst port {udp_port}" }},
}} }}
"""
    daemon = Daemon(tmp_path, lua, toml_extra=f'[push]\nfstab = "{tmp_path / "fstab"}"\n'
                    f'mount_units = "{tmp_path / "no-units"}"\n')
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    try:
        for _ in range(200):
            sock.sendto(b"seq%08d" % sent, ("127.0.0.1", udp_port))
            sent += 1
        daemon.wait_packets("local", sent, "the plain folder's target writes as usual")
        daemon.wait_log("event=target_waiting target=nas")
        nas = next(t for t in daemon.status()["targets"] if t["desc"] == "nas")
        assert nas["failing"] and "is not mounted" in nas["last_error"]
        assert nas.get("packets", 0) == 0
        assert list(share.iterdir()) == []  # nothing below the mount point, not even a folder
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(share)],
                       check=True, capture_output=True)
        daemon.wait_log("event=target_resumed target=nas")
        for _ in range(100):
            sock.sendto(b"seq%08d" % sent, ("127.0.0.1", udp_port))
            sent += 1
        daemon.wait_packets("nas", sent, "every packet, the ones that waited in the ring too")
    finally:
        assert daemon.stop() == 0, daemon.text()

    def seqs(folder) -> list[int]:
        return [int(p[3][-8:]) for f in sorted(folder.glob("all_*.pcap"))
                for p in read_pcap(f).packets]

    assert seqs(share / "push") == list(range(sent))
    assert seqs(plain) == list(range(sent))
