"""A throttled target beside a healthy one: one target writes to a disk slower than the traffic
(a FUSE file system whose writes take time, slow_fs.py), the other to a normal disk. The slow
one falls behind the ring and loses packets; those losses are its own (its status
`lost_packets`, a log line with its Desc) and the healthy target loses none.

Expected to fail while every target of an interface shares one push thread: the slow disk then
holds the healthy target up too, and both lose what the ring evicted.
"""

from __future__ import annotations

import re

import pytest
from packet_accounting import Window, assert_accounted, read_target
from seq_stream import RATE_PPS, file_target, lua_file, newest_seq, scaled
from waiting import wait_until

pytestmark = pytest.mark.timeout(scaled(180, 900))

SECONDS = scaled(8, 60)  # of traffic
# The stream is ~470 KB/s as pcap records (3,000 datagrams of 142 bytes + 16 bytes of record
# header a second): a quarter of it gets through.
SLOW_BYTES_PER_S = 120_000
RING = "max_seconds = 1\n"  # one second of lag and the slow target starts losing


def test_a_slow_target_loses_alone_and_says_so(seq_link, start_sender, start_daemon, slow_disk,
                                               tmp_path):
    out, slow = tmp_path / "out", slow_disk(SLOW_BYTES_PER_S)
    daemon = start_daemon(lua_file(file_target("healthy", out / "healthy", seq_link.bpf),
                                   file_target("slow", slow / "slow", seq_link.bpf)),
                          ring_extra=RING)
    sender = start_sender()
    wait_until(lambda: sender.sent >= SECONDS * RATE_PPS, SECONDS + 30,
               f"{SECONDS:g} s of traffic")
    sent = sender.stop()
    wait_until(lambda: newest_seq(out, sender.run_id) == sent - 1, 30,
               "the healthy target to write the last datagram sent")
    wait_until(lambda: newest_seq(slow, sender.run_id) == sent - 1, 60,
               "the slow target to catch up with the last datagram sent")
    status = {desc: daemon.target(desc) for desc in ("healthy", "slow")}
    assert daemon.stop() == 0, daemon.text()
    text = daemon.text()
    assert sender.on_wire() == sent, "the wire carried what the sender counted"
    times = sender.times()
    healthy = read_target("healthy", out.glob("healthy_*.pcap"), sender.run_id, sent)
    assert_accounted(healthy, times)
    assert status["healthy"].get("lost_packets", 0) == 0, status["healthy"]
    lagging = read_target("slow", slow.glob("slow_*.pcap"), sender.run_id, sent)
    assert_accounted(lagging, times, [Window(times[0], times[-1], "a slow disk, all along")])
    assert len(lagging.missing) > 0, "the disk was not slow enough to lose anything"
    assert status["slow"].get("lost_packets") == len(lagging.missing), (
        f"status counts {status['slow'].get('lost_packets')} lost, the files miss "
        f"{len(lagging.missing)}: {status['slow']}")
    assert re.search(r"target=slow\b.*(missed|lost)_packets=[1-9]", text), \
        f"no log line gives the slow target's losses with its Desc:\n{text}"
    assert not list(out.glob(".*.part")) and not list(slow.glob(".*.part"))
