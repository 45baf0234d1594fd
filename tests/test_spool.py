"""The rclone spool: order, the byte limit (oldest dropped loudly, never the newest or the file in
flight), restart, notes (long destinations, the uploader's chosen name), and the settings that
bound it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pushcap.config.model import ConfigError
from pushcap.defaults import SPOOL_NAME_MAX_BYTES as NAME_MAX_BYTES
from pushcap.push.rclone_remote import RcloneSettings, parse_settings
from pushcap.push.spool import Spool
from pushcap.push.spool_folder import entry_name, parse_entry_name
from pushcap.push.uploader import backoff_s


def finished(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / f".{name}.part"
    path.write_bytes(bytes([len(name) % 256]) * size)
    return path


def test_entry_name_round_trip():
    dest = "bucket/dir with space/all_2021%_1616334655-1616334755.pcap.gz"
    name = entry_name(123, dest)
    assert "/" not in name and parse_entry_name(name) == (123, dest)
    assert parse_entry_name(".hidden") is None and parse_entry_name("12-x") is None


def test_oldest_first_and_moved_whole(tmp_path):
    spool = Spool(tmp_path / "q", 10**9, "target=t")
    dests = [f"b/all_{i}.pcap" for i in (5, 1, 9, 3)]  # enqueue order, not name order
    for i, dest in enumerate(dests):
        src = finished(tmp_path, f"f{i}", 100 + i)
        spool.add(src, dest)
        assert not src.exists()
    pending = spool.pending()
    assert [e.dest for e in pending] == dests
    assert [e.size for e in pending] == [100, 101, 102, 103]
    assert spool.oldest().dest == dests[0]
    stats = spool.stats()
    assert stats["files_pending"] == 4 and stats["bytes_pending"] == 406
    assert stats["oldest_pending_age_s"] >= 0 and stats["dropped_files"] == 0


def test_restart_keeps_order_and_numbers_after_leftovers(tmp_path):
    first = Spool(tmp_path / "q", 10**9, "target=t")
    for i in range(3):
        first.add(finished(tmp_path, f"a{i}", 10), f"b/a{i}")
    last_ns = first.pending()[-1].enqueue_ns
    (tmp_path / "q" / ".00000000000000000001-cut").write_bytes(b"half moved")  # crash leftover
    second = Spool(tmp_path / "q", 10**9, "target=t")
    assert (tmp_path / "q" / ".00000000000000000001-cut").exists()  # opening touches nothing
    second.remove_leftovers()
    assert not (tmp_path / "q" / ".00000000000000000001-cut").exists()
    entry = second.add(finished(tmp_path, "n", 10), "b/new")
    assert entry.enqueue_ns > last_ns
    assert [e.dest for e in second.pending()] == ["b/a0", "b/a1", "b/a2", "b/new"]


def test_limit_drops_oldest_loudly_never_newest(tmp_path, caplog):
    spool = Spool(tmp_path / "q", 1000, "target=t series=all")
    with caplog.at_level(logging.WARNING, logger="pushcap.push"):
        for i in range(5):
            spool.add(finished(tmp_path, f"f{i}", 300), f"b/all_{i}.pcap")
    pending = spool.pending()
    assert [e.dest for e in pending] == ["b/all_2.pcap", "b/all_3.pcap", "b/all_4.pcap"]
    assert spool.dropped_files == 2 and spool.dropped_bytes == 600
    drops = [r.getMessage() for r in caplog.records if "event=spool_drop" in r.getMessage()]
    assert len(drops) == 2
    assert "file=b/all_0.pcap" in drops[0] and "file=b/all_1.pcap" in drops[1]
    assert spool.stats()["dropped_files"] == 2


def test_newest_kept_even_when_alone_over_the_limit(tmp_path):
    spool = Spool(tmp_path / "q", 100, "target=t")
    spool.add(finished(tmp_path, "small", 50), "b/small")
    spool.add(finished(tmp_path, "big", 500), "b/big")
    assert [e.dest for e in spool.pending()] == ["b/big"]
    assert spool.dropped_files == 1


def test_newest_kept_when_a_failed_upload_applies_the_limit(tmp_path, caplog):
    """The file in flight made room only for itself; when its upload fails the limit applies
    again: the oldest goes (the one that failed), never the newest, and the log says which."""
    spool = Spool(tmp_path / "q", 500, "target=t series=all")
    spool.add(finished(tmp_path, "f0", 100), "b/all_0.pcap")
    uploading = spool.oldest()
    assert spool.begin(uploading)
    spool.add(finished(tmp_path, "f1", 900), "b/all_1.pcap")  # alone over the limit: kept
    assert [e.dest for e in spool.pending()] == ["b/all_0.pcap", "b/all_1.pcap"]
    with caplog.at_level(logging.WARNING, logger="pushcap.push"):
        spool.end(uploading, delivered=False)
    assert [e.dest for e in spool.pending()] == ["b/all_1.pcap"]
    assert spool.dropped_files == 1 and spool.dropped_bytes == 100
    drops = [r.getMessage() for r in caplog.records if "event=spool_drop" in r.getMessage()]
    assert len(drops) == 1 and "file=b/all_0.pcap " in drops[0]
    assert "reason=spool_full" in drops[0] and "queued_bytes=1000 max_bytes=500" in drops[0]


def test_long_destination_is_kept_in_a_note(tmp_path):
    """A deep Path encodes to a name far over 255 bytes: the name stays bounded and readable,
    the destination survives a restart whole, and the note goes with its entry."""
    deep = "/".join(f"dir{i}-" + "\u00e9" * 40 for i in range(8))  # 2 bytes, 6 encoded each
    dest = f"{deep}/all_1616334655-1616334755.pcap.zst"
    assert len(entry_name(1, dest).encode()) <= NAME_MAX_BYTES
    assert entry_name(1, dest).endswith("all_1616334655-1616334755.pcap.zst")
    spool = Spool(tmp_path / "q", 10**9, "target=t")
    spool.add(finished(tmp_path, "long", 10), dest)
    spool.add(finished(tmp_path, "short", 10), "b/short")
    assert [e.dest for e in Spool(tmp_path / "q", 10**9, "target=t").pending()] == \
        [dest, "b/short"]
    entry = spool.oldest()
    assert spool.begin(entry)
    spool.end(entry, delivered=True)
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == \
        [e.path.name for e in spool.pending()]  # the note went with the entry
    (tmp_path / "q" / "00000000000000000007.dest").write_text("x/orphan")  # crash leftover
    spool.remove_leftovers()
    assert [e.dest for e in spool.pending()] == ["b/short"]
    assert not (tmp_path / "q" / "00000000000000000007.dest").exists()


def test_recorded_final_name_survives_restart_and_goes_with_the_entry(tmp_path):
    spool = Spool(tmp_path / "q", 10**9, "target=t")
    spool.add(finished(tmp_path, "f0", 10), "b/all_1.pcap")
    entry = spool.oldest()
    assert spool.recorded_final(entry) is None
    spool.record_final(entry, "b/all_1_2.pcap")
    restarted = Spool(tmp_path / "q", 10**9, "target=t")
    restarted.remove_leftovers()
    again = restarted.oldest()
    assert again.dest == "b/all_1.pcap" and restarted.recorded_final(again) == "b/all_1_2.pcap"
    assert restarted.begin(again)
    restarted.end(again, delivered=True)
    assert not list((tmp_path / "q").iterdir())


def test_file_in_flight_is_not_dropped(tmp_path):
    spool = Spool(tmp_path / "q", 1000, "target=t")
    spool.add(finished(tmp_path, "f0", 400), "b/0")
    spool.add(finished(tmp_path, "f1", 400), "b/1")
    uploading = spool.oldest()
    assert spool.begin(uploading)
    spool.add(finished(tmp_path, "f2", 400), "b/2")  # over the limit: b/1 goes, not b/0
    assert [e.dest for e in spool.pending()] == ["b/0", "b/2"]
    spool.end(uploading, delivered=False)  # failed: stays queued, the limit applies again
    assert [e.dest for e in spool.pending()] == ["b/0", "b/2"]
    assert spool.dropped_files == 1
    spool.add(finished(tmp_path, "f3", 400), "b/3")
    assert [e.dest for e in spool.pending()] == ["b/2", "b/3"]
    assert spool.dropped_files == 2


def test_delivered_entry_is_deleted(tmp_path):
    spool = Spool(tmp_path / "q", 1000, "target=t")
    spool.add(finished(tmp_path, "f0", 10), "b/0")
    entry = spool.oldest()
    assert spool.begin(entry)
    spool.end(entry, delivered=True)
    assert spool.pending() == [] and not entry.path.exists()
    assert not spool.begin(entry)  # gone: the uploader moves on


def test_settings_defaults_and_validation():
    assert parse_settings(None) == RcloneSettings()
    s = parse_settings({"config": "/etc/rclone.conf", "flags": ["--bwlimit", "1M"],
                        "spool_max_bytes": 1024, "retry_min_s": 0.1, "retry_max_s": 0.5})
    assert s.flags == ("--bwlimit", "1M") and s.spool_max_bytes == 1024
    for bad, match in [({"spool_max": 1}, "unknown key 'spool_max'"),
                       ({"flags": "--fast"}, "flags must be a list"),
                       ({"retry_min_s": 0}, "retry_min_s must be a positive"),
                       ({"retry_min_s": 5, "retry_max_s": 1}, "retry_max_s must not be below"),
                       ({"config": 3}, "config must be a path")]:
        with pytest.raises(ConfigError, match=match):
            parse_settings(bad)


def test_backoff_grows_with_jitter_and_is_bounded():
    settings = RcloneSettings(retry_min_s=1.0, retry_max_s=8.0)
    bounds = {1: (0.5, 1.0), 2: (1.0, 2.0), 3: (2.0, 4.0), 10: (4.0, 8.0)}
    for failures, (low, high) in bounds.items():
        waits = [backoff_s(failures, settings) for _ in range(200)]
        assert low <= min(waits) and max(waits) <= high
        assert max(waits) - min(waits) > (high - low) / 4  # jittered, not a fixed delay


def test_backoff_saturates_after_any_number_of_failures():
    """A remote down for days: past about a thousand failures 2**n overflows a float; the wait
    must stay at retry_max_s (the uploader thread must not die)."""
    settings = RcloneSettings(retry_min_s=0.001, retry_max_s=300.0)
    for failures in (30, 1025, 5000, 10**9):
        assert 150.0 <= backoff_s(failures, settings) <= 300.0


def test_leftover_removal_leaves_hidden_folders_alone(tmp_path):
    """A hidden folder in the spool (a NAS's `.snapshot`) is nobody's move-in: removing crash
    leftovers skips it instead of failing on it and keeping the real leftovers."""
    spool = Spool(tmp_path / "q", 10**9, "target=t")
    spool.add(finished(tmp_path, "f0", 10), "b/all_1.pcap")
    (tmp_path / "q" / ".snapshot").mkdir()
    (tmp_path / "q" / f".{entry_name(5, 'b/cut')}").write_bytes(b"cut by a crash")
    spool.remove_leftovers()
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == \
        [".snapshot", spool.oldest().path.name]


def test_flags_that_let_a_move_overwrite_are_refused():
    """`--no-check-dest` turns off the existence check that keeps an upload from replacing
    another writer's object of the same name (uploader: `moveto --ignore-existing`)."""
    for flags in (["--no-check-dest"], ["--bwlimit", "1M", "--no-check-dest=true"]):
        with pytest.raises(ConfigError, match="--no-check-dest would let an upload replace"):
            parse_settings({"flags": flags})
    assert parse_settings({"flags": ["--bwlimit", "1M"]}).flags == ("--bwlimit", "1M")
