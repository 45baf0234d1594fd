"""kill -9 in the middle of a file, then a restart, under a steady sequence-numbered stream: the
only packets lost are those sent while no daemon ran; the crashed file is repaired and published
at the restart, and no packet appears twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packet_accounting import Window, assert_accounted, read_target
from seq_stream import RATE_PPS, file_target, lua_file, newest_seq, scaled
from waiting import wait_until

pytestmark = pytest.mark.timeout(scaled(180, 1200))

KILLS = int(scaled(2, 8))
MARGIN_S = 0.5  # what a crash may lose from before it: not yet read from libpcap, not written
PHASE_PACKETS = int(scaled(7500, 30000))  # packets a daemon writes before it is killed


def test_kill9_mid_file_loses_only_the_downtime(seq_link, start_sender, start_daemon, tmp_path):
    out = tmp_path / "out"
    lua = lua_file(file_target("seq", out / "seq", seq_link.bpf, split="--split-time 4e9"))
    daemon = start_daemon(lua)
    sender = start_sender()
    windows: list[Window] = []
    for kill in range(KILLS):
        wait_until(lambda d=daemon: d.target("seq").get("packets", 0) >= PHASE_PACKETS, 60,
                   f"{PHASE_PACKETS} packets written before kill {kill + 1}")
        # The open file has packets in it (mid-file): the crash leaves its `.part`.
        wait_until(lambda d=daemon: d.target("seq").get("current_file"), 10, "an open file")
        killed_at = daemon.kill9()
        parts = sorted(out.glob(".seq*.part"))
        assert parts, f"kill -9 left no .part in {sorted(p.name for p in out.iterdir())}"
        daemon = start_daemon(lua)  # returns once it logged event=started: capturing again
        windows.append(Window(killed_at, daemon.seen_at("event=started"),
                              f"kill -9 #{kill + 1} to restart"))
        repaired = re.findall(r"event=repair_done target=seq \S+ file=(\S+) packets=(\d+)",
                              daemon.text())
        assert repaired and all(Path(f).exists() and int(n) for f, n in repaired), \
            f"the crashed file was not published at the restart: {daemon.text()}"
    wait_until(lambda: daemon.target("seq").get("packets", 0) >= PHASE_PACKETS, 60,
               "traffic after the last restart")
    sent = sender.stop()
    wait_until(lambda: newest_seq(out, sender.run_id) == sent - 1, 30,
               f"the last datagram sent ({sent - 1}) in the files")
    final = daemon.target("seq")
    assert daemon.stop() == 0, daemon.text()
    assert not list(out.glob(".*.part")), "a clean stop left temporaries"
    assert sender.on_wire() == sent, "the wire carried what the sender counted"
    assert final.get("lost_packets", 0) == 0 and final.get("errors", 0) == 0, final
    seqs = read_target("seq", out.glob("seq_*.pcap"), sender.run_id, sent)
    assert_accounted(seqs, sender.times(), windows, MARGIN_S)
    downtime_s = sum(w.end - w.start + 2 * MARGIN_S for w in windows)
    assert len(seqs.missing) <= downtime_s * RATE_PPS * 1.2, (len(seqs.missing), windows)
