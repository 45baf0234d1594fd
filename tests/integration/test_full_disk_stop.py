"""A daemon whose disk fills up and recovers (a small tmpfs the test mounts and fills): status
says when the last error happened, and no `.part` file outlives a clean stop (issue 17, item 5).

A compressed target cannot make its compressed copy on a full disk, so finishing a file that
holds packets fails; it is finished again once there is room (before its next file, and at the
stop). A part that still cannot be finished at the stop holds packets: it is kept, named in the
log, never deleted.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from oracle import read_pcap
from service_harness import Daemon, free_port
from waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                       reason="needs root to mount a tmpfs"),
]

UDP_HEADERS = 14 + 20 + 8


@pytest.fixture
def small_disk(tmp_path):
    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)],
                   check=True, capture_output=True, timeout=30)
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no page left; the file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def send(port: int, tag: bytes, count: int) -> list[bytes]:
    payloads = [tag + b"-%04d" % i for i in range(count)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for payload in payloads:
            s.sendto(payload, ("127.0.0.1", port))
    return payloads


def start(tmp_path: Path, disk: Path) -> tuple[Daemon, int]:
    port = free_port(socket.SOCK_DGRAM)
    bpf = f"udp and dst port {port}"
    lua = f"""
return {{ Target = {{
  {{ Desc = "z", Mode = "File", Path = "{disk}/z", Split = "--split-time 1e9",
     PipeCmd = "gzip -c", FileSuffix = ".pcap.gz", FilterBPF = "{bpf}" }},
  {{ Desc = "p", Mode = "File", Path = "{disk}/p", Split = "--split-time 1e9",
     FilterBPF = "{bpf}" }},
}} }}
"""
    return Daemon(tmp_path, lua), port


def entry(daemon: Daemon, desc: str) -> dict:
    return next(t for t in daemon.status()["targets"] if t["desc"] == desc)


def fill_while_a_compressed_file_is_open(daemon: Daemon, port: int, disk: Path
                                         ) -> tuple[list[bytes], Path]:
    """20 datagrams into both targets' open files, then the disk full before they end."""
    first = send(port, b"first", 20)
    wait_until(lambda: entry(daemon, "z").get("packets", 0) >= 20
               and entry(daemon, "p").get("packets", 0) >= 20, 20, "both targets to write")
    filler = fill(disk)
    daemon.wait_log("event=file_finish_failed target=z")
    return first, filler


def payloads_of(files: list[Path], scratch: Path) -> list[bytes]:
    got = []
    for f in sorted(files):
        if f.name.endswith(".gz"):
            plain = scratch / f.name.removesuffix(".gz")
            plain.write_bytes(gzip.decompress(f.read_bytes()))
            f = plain
        got += [p[3][UDP_HEADERS:] for p in read_pcap(f).packets]
    return got


def test_a_file_unfinished_for_lack_of_room_is_finished_once_there_is_room(tmp_path,
                                                                           small_disk):
    daemon, port = start(tmp_path, small_disk)
    try:
        first, filler = fill_while_a_compressed_file_is_open(daemon, port, small_disk)
        send(port, b"lost", 10)  # no room: lost, counted
        wait_until(lambda: entry(daemon, "z").get("lost_packets", 0) >= 10, 20,
                   "the datagrams sent while full to be counted lost")
        filler.unlink()  # room again
        last = send(port, b"last", 10)
        wait_until(lambda: entry(daemon, "z").get("packets", 0) >= 30, 20,
                   "the compressed target to write again")
        figures = wait_until(lambda: (e := entry(daemon, "z")).get("last_error_age_s", 0) >= 1.5
                             and e, 20, "the last error to age: it stopped")
        assert "No space left" in figures["last_error"], figures
        assert figures["last_error_at"].endswith("Z"), figures
    finally:
        assert daemon.stop() == 0, daemon.text()
    left = sorted(p.name for p in small_disk.iterdir() if p.name.startswith("."))
    assert left == [], daemon.text()
    assert payloads_of(list(small_disk.glob("z_*.pcap.gz")), tmp_path) == first + last, \
        daemon.text()
    assert payloads_of(list(small_disk.glob("p_*.pcap")), tmp_path) == first + last, \
        daemon.text()


def test_a_part_that_cannot_be_finished_at_the_stop_is_kept_and_named(tmp_path, small_disk):
    daemon, port = start(tmp_path, small_disk)
    try:
        first, _ = fill_while_a_compressed_file_is_open(daemon, port, small_disk)
    finally:
        assert daemon.stop() == 0, daemon.text()
    kept = sorted(small_disk.glob(".z.*.part"))
    assert len(kept) == 1 and f"event=part_kept target=z interface=lo file={kept[0]}" \
        in daemon.text(), daemon.text()
    assert [p[3][UDP_HEADERS:] for p in read_pcap(kept[0]).packets] == first
    others = sorted(p.name for p in small_disk.iterdir() if p.name.startswith("."))
    assert others == [kept[0].name], daemon.text()  # no part without a packet is left
