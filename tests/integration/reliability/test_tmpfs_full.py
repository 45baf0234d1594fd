"""A disk that fills up under traffic: one target writes to a 2 MiB tmpfs the test mounts, another
to the normal disk. The healthy target loses nothing; the full one loses only while there is no
room, counts exactly those losses in its status `lost_packets`, and resumes once an operator
moved its files away. (test_disk_full.py covers a series' torn writes; this is the daemon.)"""

from __future__ import annotations

import shutil
import time

import pytest
from packet_accounting import Window, assert_accounted, read_target
from seq_stream import RATE_PPS, file_target, lua_file, newest_seq, scaled
from waiting import wait_until

pytestmark = pytest.mark.timeout(scaled(180, 900))

CYCLES = int(scaled(1, 4))  # fill up, stay full, make room
FULL_S = scaled(2, 15)  # of traffic while the disk is full


def test_full_disk_loses_only_while_full_and_counts_it(seq_link, start_sender, start_daemon,
                                                       tmpfs, tmp_path):
    out, archive = tmp_path / "out", tmp_path / "archive"
    archive.mkdir()
    daemon = start_daemon(lua_file(
        file_target("healthy", out / "healthy", seq_link.bpf),
        file_target("full", tmpfs / "full", seq_link.bpf, split="--split-time 1e9")))
    sender = start_sender()

    def full(key: str) -> int:
        return daemon.target("full").get(key) or 0

    windows: list[Window] = []
    for cycle in range(CYCLES):
        lost = full("lost_packets")
        wait_until(lambda n=lost: full("lost_packets") > n, 60,
                   f"the tmpfs to fill up (cycle {cycle + 1})")
        # Seen within a poll of the first failed write (the margin covers the way from the
        # sender to the write); the error log line is rate-limited, so it cannot say when.
        filled_at = time.time()
        until = sender.sent + FULL_S * RATE_PPS
        wait_until(lambda n=until: sender.sent >= n, FULL_S + 30, f"{FULL_S:g} s full")
        for published in sorted(tmpfs.glob("full_*.pcap")):  # an operator makes room
            shutil.move(published, archive / published.name)
        windows.append(Window(filled_at, time.time(), f"tmpfs full #{cycle + 1}"))
        written = full("packets")
        wait_until(lambda n=written: full("packets") > n + RATE_PPS, 30,
                   "the full target to write again once there is room")
    sent = sender.stop()
    wait_until(lambda: newest_seq(out, sender.run_id) == sent - 1, 30,
               "the healthy target to write the last datagram")
    wait_until(lambda: newest_seq(tmpfs, sender.run_id) == sent - 1, 30,
               "the full target to write the last datagram")
    status = {desc: daemon.target(desc) for desc in ("healthy", "full")}
    assert daemon.stop() == 0, daemon.text()
    assert not list(out.glob(".*.part")) and not list(tmpfs.glob(".*.part"))
    assert sender.on_wire() == sent, "the wire carried what the sender counted"
    times = sender.times()
    healthy = read_target("healthy", out.glob("healthy_*.pcap"), sender.run_id, sent)
    assert_accounted(healthy, times)
    assert status["healthy"]["lost_packets"] == 0, status["healthy"]
    files = [*archive.glob("full_*.pcap"), *tmpfs.glob("full_*.pcap")]
    filled = read_target("full", files, sender.run_id, sent)
    assert_accounted(filled, times, windows)
    assert len(filled.missing) > 0 and status["full"]["errors"] > 0, status["full"]
    assert "event=target_error target=full" in daemon.text()
    assert status["full"]["lost_packets"] == len(filled.missing), (
        f"status counts {status['full']['lost_packets']} lost, the files miss "
        f"{len(filled.missing)}")
