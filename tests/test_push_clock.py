"""The clock a push thread closes time-split files by.

On a quiet link the wall clock must end a window with no packet after it; while the push thread
is behind the ring, the wall clock is already past windows whose packets it has still to read,
and closing by it would put those packets into the next window's file.
"""

from __future__ import annotations

import time

from engine_harness import S, batch_of, engine_with
from oracle import read_pcap

from pushcap.config.model import NamingRule, PushMode, SplitKind, SplitRule, TargetConfig
from pushcap.supervisor.target_lane import push_clock_ns


def one_second_files(tmp_path):
    """An engine with one File target split every second, its output folder and its ring."""
    out = tmp_path / "out"
    config = TargetConfig(1, "t", PushMode.FILE, str(out / "t"), SplitRule(SplitKind.TIME, S),
                          NamingRule("--filename-epoch-nsec"), None)
    engine = engine_with(tmp_path, config)
    return engine, out, engine.rings["eth0"]


def test_a_lagging_push_thread_keeps_each_packet_in_its_window(tmp_path):
    engine, out, ring = one_second_files(tmp_path)
    base = 1_600_000_000 * S  # long past: the wall clock is beyond every window here
    step = S // 100
    # 100 batches in window 0 (more than one read takes), then 20 in window 1.
    stamps = [base + i * step for i in range(120)]
    for ts in stamps:
        ring.append(batch_of([ts], [100]))
    ring.close()
    [lane] = engine.lanes("eth0")
    lane.run()  # its cursor is at the ring's start: it reads all 120 batches, then closes
    files = sorted(out.glob("t_*.pcap"))
    assert [f.name for f in files] == [f"t_{base}.pcap", f"t_{base + S}.pcap"]
    in_first = [p[0] for p in read_pcap(files[0]).packets]
    in_second = [p[0] for p in read_pcap(files[1]).packets]
    assert in_first == [ts for ts in stamps if ts < base + S]
    assert in_second == [ts for ts in stamps if ts >= base + S]


def test_a_quiet_link_closes_its_window_by_the_wall_clock(tmp_path):
    engine, out, ring = one_second_files(tmp_path)
    base = 1_600_000_000 * S
    cursor = ring.cursor()
    ring.append(batch_of([base + 5], [100]))
    engine.push_step("eth0", cursor.read(), base + 10)
    assert not list(out.glob("t_*.pcap"))  # window still open
    engine.push_step("eth0", cursor.read(), base + 3 * S)  # caught up, nothing new: wall clock
    engine.consumers["eth0"][0].finish()
    assert [f.name for f in out.glob("t_*.pcap")] == [f"t_{base}.pcap"]


def test_packets_late_to_the_ring_stay_in_their_window(tmp_path, monkeypatch):
    """The ring itself is 2.5 s behind the wire (a backlog in libpcap's buffer, a busy capture
    thread) while the push thread keeps up with it: windows close by packet time carried on by
    the wall clock, not by the wall clock alone, which would close them 2.5 s early."""
    engine, out, ring = one_second_files(tmp_path)
    wall = [1_700_000_000 * S]
    monkeypatch.setattr(time, "time_ns", lambda: wall[0])  # the ring's and the engine's clock
    lag_ns = 2_500_000_000
    cursor = ring.cursor()
    sent = []
    for _ in range(60):  # 6 s, a poll every 100 ms
        stamps = [wall[0] - lag_ns + i * 10_000_000 for i in range(10)]
        sent += stamps
        ring.append(batch_of(stamps, [100] * 10))
        engine.push_step("eth0", cursor.read(), push_clock_ns(cursor))
        wall[0] += 100_000_000
    engine.consumers["eth0"][0].finish()
    files = sorted(out.glob("t_*.pcap"))
    held = {}
    for f in files:
        start = int(f.stem.split("_")[1])
        held[start] = [p[0] for p in read_pcap(f).packets]
    assert sum(map(len, held.values())) == len(sent)
    for start, stamps in held.items():
        assert all(start <= ts < start + S for ts in stamps), start
