"""A slow target falls behind alone: every target reads the ring through its own lane.

Two File targets on one interface, one of them stalled in every write (a throttled disk); the
ring holds a few batches only. The healthy target must get every packet, the slow one loses what
was evicted before it read it, and that loss is its own: counted in its status (missed and lost
packets, failing) and logged with its Desc, never in the healthy target's figures.
"""

from __future__ import annotations

import logging
import threading

from engine_harness import S, batch_of
from oracle import read_pcap
from waiting import wait_until

from pushcap.capture.ring import Ring
from pushcap.config.model import (
    DaemonConfig,
    InterfaceConfig,
    NamingRule,
    PushMode,
    RingConfig,
    SplitKind,
    SplitRule,
    TargetConfig,
)
from pushcap.supervisor.engine import LiveEngine
from pushcap.supervisor.status import engine_status

BATCHES = 40


def file_target(out, desc: str) -> TargetConfig:
    return TargetConfig(1, desc, PushMode.FILE, str(out / desc), SplitRule(SplitKind.TIME, S),
                        NamingRule("--filename-epoch-nsec"), None)


def test_a_stalled_target_loses_only_its_own_packets(tmp_path, caplog):
    out = tmp_path / "out"
    config = DaemonConfig(str(tmp_path / "d.toml"), "n", (InterfaceConfig("eth0"),),
                          RingConfig(60, 1 << 30, 8192, 100), status_port=0)
    engine = LiveEngine(config, (file_target(out, "healthy"), file_target(out, "slow")))
    ring = Ring("eth0", 1, 262144, 60, 3 * 400)  # a few one-packet batches, no more
    engine.attach("eth0", ring)
    healthy, slow = engine.lanes("eth0")
    stalled = threading.Event()
    real_consume = slow.slots.slots[0].consumer.consume

    def throttled_consume(batch):
        stalled.wait(0.05)  # every write of this target takes 50 ms
        real_consume(batch)

    slow.slots.slots[0].consumer.consume = throttled_consume
    threads = [threading.Thread(target=lane.run, daemon=True) for lane in (healthy, slow)]
    for thread in threads:
        thread.start()
    base = 1_700_000_000 * S
    healthy_series = healthy.slots.slots[0].consumer
    with caplog.at_level(logging.WARNING, logger="pushcap.engine"):
        for i in range(BATCHES):
            ring.append(batch_of([base + i], [100]))
            # paced by the healthy target alone: it has read this batch before the next comes
            wait_until(lambda i=i: healthy_series.stats.packets == i + 1, 10,
                       "healthy target read")
        ring.close()
        for thread in threads:
            thread.join(30)
    assert not any(t.is_alive() for t in threads)

    def packets(desc: str) -> list[int]:
        return [p[0] for f in out.glob(f"{desc}_*.pcap") for p in read_pcap(f).packets]

    assert packets("healthy") == [base + i for i in range(BATCHES)]
    slow_got = packets("slow")
    assert 0 < len(slow_got) < BATCHES  # it fell behind, and got what it read
    status = engine_status(engine.view(), {})
    by_desc = {t["desc"]: t for t in status["targets"]}
    assert by_desc["healthy"]["missed_packets"] == 0
    assert by_desc["healthy"]["lost_packets"] == 0
    assert not by_desc["healthy"]["failing"]
    assert by_desc["slow"]["missed_packets"] == BATCHES - len(slow_got)
    assert by_desc["slow"]["lost_packets"] == BATCHES - len(slow_got)
    assert by_desc["slow"]["failing"]
    assert "fell behind the ring" in by_desc["slow"]["last_error"]
    assert status["interfaces"]["eth0"]["push_missed_packets"] == BATCHES - len(slow_got)
    assert [line for line in status["problems"] if "slow" in line]
    assert not [line for line in status["problems"] if "healthy" in line]
    behind = [r.getMessage() for r in caplog.records if "event=push_behind" in r.getMessage()]
    assert behind and all("target=slow " in line for line in behind)


def test_a_target_added_by_a_reload_gets_its_own_lane_from_then_on(tmp_path):
    """Reload with live lanes: the new target reads from the reload on, the old one goes on
    untouched, and each finishes its file when the ring closes."""
    out = tmp_path / "out"
    config = DaemonConfig(str(tmp_path / "d.toml"), "n", (InterfaceConfig("eth0"),),
                          RingConfig(60, 1 << 30, 8192, 100), status_port=0)
    first = file_target(out, "first")
    engine = LiveEngine(config, (first,))
    ring = Ring("eth0", 1, 262144, 60, 1 << 30)
    engine.attach("eth0", ring)
    engine._live = True  # lanes a reload adds run on threads of their own, as in the daemon
    [lane] = engine.lanes("eth0")
    thread = threading.Thread(target=lane.run, daemon=True)
    thread.start()
    base = 1_700_000_000 * S
    ring.append(batch_of([base + 1], [100]))
    series = lane.slots.slots[0].consumer
    wait_until(lambda: series.stats.packets == 1, 10, "first target read the first batch")
    engine.reload((first, file_target(out, "second")))
    ring.append(batch_of([base + 2], [100]))
    ring.close()
    assert engine.stop(30)
    thread.join(30)
    assert [p[0] for f in out.glob("first_*.pcap") for p in read_pcap(f).packets] == \
        [base + 1, base + 2]
    assert [p[0] for f in out.glob("second_*.pcap") for p in read_pcap(f).packets] == [base + 2]
