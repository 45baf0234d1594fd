"""Reload handovers driven batch by batch through the engine's push step (no live capture).

A changed target keeps its file until the window's end in packet time; from there its successor
takes every packet, including ones the old filter would not have taken. Nothing twice, nothing
lost, and files that start at the same nanosecond never share a temporary name.
"""

from __future__ import annotations

from pathlib import Path

from engine_harness import S, batch_of, engine_with
from oracle import read_pcap

from pushcap.config.model import (
    NamingRule,
    PushMode,
    SplitKind,
    SplitRule,
    TargetConfig,
)
from pushcap.push.target import Series


def target(out: Path, path: str, bpf: str | None) -> TargetConfig:
    return TargetConfig(1, "t", PushMode.FILE, str(out / path), SplitRule(SplitKind.TIME, S),
                        NamingRule("--filename-epoch-nsec"), bpf)


def slow_down_delivery(consumer, seconds: float, delivered: list | None = None) -> None:
    """Make a series' delivery slow, as a big compression or a slow remote would."""
    import time

    deliver = consumer.shipper.deliver

    def slow_deliver(part, name):
        time.sleep(seconds)
        if delivered is not None:
            delivered.append(name)
        return deliver(part, name)

    consumer.shipper.deliver = slow_deliver


def test_changed_target_switches_at_the_window_end_in_packet_time(tmp_path):
    out = tmp_path / "out"
    old = target(out, "old", "less 80")  # only small packets
    engine = engine_with(tmp_path, old)
    base = 1_700_000_000 * S
    engine.push_step("eth0", [batch_of([base + 100, base + 200], [60, 200])], base)
    engine.reload((target(out, "new", None),))  # changed: another Path, every packet
    # Still window 0: the old settings decide (the 200-byte packet is not theirs).
    engine.push_step("eth0", [batch_of([base + 300, base + 400], [60, 200])], base)
    # Window 1 starts with big packets the old filter would skip: they are the new target's.
    late = [base + S + k * 1000 for k in range(5)]
    engine.push_step("eth0", [batch_of(late, [200, 200, 60, 200, 60])], base + S)
    engine.close_consumers("eth0")
    old_files = sorted(out.glob("old_*.pcap"))
    new_files = sorted(out.glob("new_*.pcap"))
    assert [f.name for f in old_files] == [f"old_{base}.pcap"]
    assert [p[0] for p in read_pcap(old_files[0]).packets] == [base + 100, base + 300]
    assert [f.name for f in new_files] == [f"new_{base + S}.pcap"]
    assert [p[0] for p in read_pcap(new_files[0]).packets] == late
    assert not list(out.glob(".*"))


def test_files_starting_at_the_same_nanosecond_never_share_a_temporary_name(tmp_path):
    out = tmp_path / "out"
    cfg = TargetConfig(1, "b", PushMode.FILE, str(out / "b"), SplitRule(SplitKind.BYTE, 1024),
                       NamingRule("--filename-epoch-nsec"))
    series = Series(cfg, "eth0", out / "b", 1, 262144)
    series.start()
    ts = 1_700_000_000 * S
    series.consume(batch_of([ts] * 9, [300] * 9))  # three 300-byte packets fill a 1 KiB file
    series.close()
    files = sorted(out.glob("b_*.pcap"))
    assert len(files) == 3 and series.errors == 0
    assert sum(len(read_pcap(f).packets) for f in files) == 9


def test_a_second_reload_keeps_a_pending_switch_at_its_boundary(tmp_path):
    out = tmp_path / "out"
    engine = engine_with(tmp_path, target(out, "a", None))
    base = 1_700_000_000 * S
    engine.push_step("eth0", [batch_of([base + 100], [60])], base)
    changed = target(out, "b", None)
    engine.reload((changed,))
    engine.push_step("eth0", [batch_of([base + 200], [60])], base)
    other = TargetConfig(2, "x", PushMode.FILE, str(out / "x"), SplitRule(SplitKind.TIME, S),
                         NamingRule("--filename-epoch-nsec"))
    engine.reload((changed, other))  # `b` stays as it is: the switch still waits for W's end
    engine.push_step("eth0", [batch_of([base + 300, base + S + 1], [60, 60])], base + S)
    engine.close_consumers("eth0")
    a_files = sorted(out.glob("a_*.pcap"))
    b_files = sorted(out.glob("b_*.pcap"))
    assert [p[0] for f in a_files for p in read_pcap(f).packets] == [base + 100, base + 200,
                                                                     base + 300]
    assert [f.name for f in b_files] == [f"b_{base + S}.pcap"]
    assert [p[0] for p in read_pcap(b_files[0]).packets] == [base + S + 1]


def test_a_slow_predecessor_never_blocks_the_push_thread(tmp_path):
    import time

    out = tmp_path / "out"
    engine = engine_with(tmp_path, target(out, "a", None))
    base = 1_700_000_000 * S
    slow_down_delivery(engine.consumers["eth0"][0], 1.5)
    engine.push_step("eth0", [batch_of([base + 100], [60])], base)
    engine.reload(())  # removed: its file is finished and delivered off the push thread
    started = time.monotonic()
    engine.push_step("eth0", [batch_of([base + 200], [60])], base)
    assert time.monotonic() - started < 1.0
    engine.close_consumers("eth0")
    assert [p[0] for f in out.glob("a_*.pcap") for p in read_pcap(f).packets] == [base + 100]


def test_a_re_added_target_delivers_only_after_its_earlier_self(tmp_path):

    out = tmp_path / "out"
    first = target(out, "a", None)
    engine = engine_with(tmp_path, first)
    base = 1_700_000_000 * S
    delivered: list[str] = []
    slow_down_delivery(engine.consumers["eth0"][0], 1.0, delivered)
    engine.push_step("eth0", [batch_of([base + 100], [60])], base)
    engine.reload(())  # removed (its delivery is slow) ...
    engine.push_step("eth0", [], base)
    engine.reload((first,))  # ... and back, writing to the same place
    engine.push_step("eth0", [batch_of([base + S + 5], [60])], base + S)
    engine.push_step("eth0", [batch_of([base + 3 * S], [60])], base + 3 * S)
    engine.close_consumers("eth0")
    names = [f.name for f in sorted(out.glob("a_*.pcap"), key=lambda f: f.stat().st_mtime_ns)]
    assert names[0] == f"a_{base}.pcap" and delivered == [str(base)]
    assert sorted(names) == sorted([f"a_{base}.pcap", f"a_{base + S}.pcap",
                                    f"a_{base + 3 * S}.pcap"])


def test_reverting_a_pending_change_keeps_the_file_whole(tmp_path):
    out = tmp_path / "out"
    first = target(out, "a", None)
    engine = engine_with(tmp_path, first)
    base = 1_700_000_000 * S
    engine.push_step("eth0", [batch_of([base + 100], [60])], base)
    engine.reload((target(out, "b", None),))
    engine.push_step("eth0", [batch_of([base + 200], [60])], base)
    engine.reload((first,))  # back to the old settings before the boundary
    engine.push_step("eth0", [batch_of([base + 300], [60])], base)
    engine.close_consumers("eth0")
    assert [f.name for f in out.glob("*.pcap")] == [f"a_{base}.pcap"]
    assert [p[0] for p in read_pcap(out / f"a_{base}.pcap").packets] == [base + 100, base + 200,
                                                                         base + 300]


def test_a_renamed_target_on_the_same_path_delivers_after_the_old_one(tmp_path):
    import dataclasses

    out = tmp_path / "out"
    first = target(out, "a", None)
    engine = engine_with(tmp_path, first)
    base = 1_700_000_000 * S
    slow_down_delivery(engine.consumers["eth0"][0], 1.0)
    engine.push_step("eth0", [batch_of([base + 100], [60])], base)
    engine.reload((dataclasses.replace(first, desc="renamed"),))
    engine.push_step("eth0", [batch_of([base + S + 5], [60])], base + S)
    engine.push_step("eth0", [batch_of([base + 3 * S], [60])], base + 3 * S)
    engine.close_consumers("eth0")
    by_time = sorted(out.glob("a_*.pcap"), key=lambda f: f.stat().st_mtime_ns)
    assert by_time[0].name == f"a_{base}.pcap" and len(by_time) == 3


def test_a_predecessor_gets_no_batch_or_tick_after_its_handover(tmp_path):
    """Once a changed target has handed over (in the middle of a push step of several
    batches), the supervisor no longer drives it: its close runs on a retirement thread, and
    the contract says only the holder of a consumer calls it."""
    out = tmp_path / "out"
    engine = engine_with(tmp_path, target(out, "old", None))
    base = 1_700_000_000 * S
    engine.push_step("eth0", [batch_of([base + 100], [60])], base)
    engine.reload((target(out, "new", None),))
    old = engine.consumers["eth0"][0]
    calls: list[str] = []
    for step in ("consume", "tick"):
        real = getattr(old, step)

        def record(arg, step=step, real=real):
            calls.append(f"{step} after handover" if old.retired_at is not None else step)
            return real(arg)

        setattr(old, step, record)
    batches = [batch_of([base + 200], [60]), batch_of([base + S + 1], [60]),
               batch_of([base + S + 2], [60]), batch_of([base + S + 3], [60])]
    engine.push_step("eth0", batches, base + S)
    engine.close_consumers("eth0")
    assert calls == ["consume", "consume"]  # the last one finds the boundary and hands over
    assert [p[0] for p in read_pcap(out / f"new_{base + S}.pcap").packets] == \
        [base + S + 1, base + S + 2, base + S + 3]
