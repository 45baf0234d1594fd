"""A trigger's window joined from an indexed File target's files and the ring, each packet once
(issue 20, item 4): several packets share the timestamp where the ring's eviction cut, the
newest file is a part still being written (its last record cut by a write in progress), and a
clock step puts an evicted packet after the ring's oldest. Every packet carries its number (byte
42 on), so what is missing or doubled is seen by number."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from engine_harness import batch_of

from pushcap.archive.build import build_index
from pushcap.archive.layout import SeriesFiles
from pushcap.capture.batch import Batch, pcap_file_header
from pushcap.capture.ring import Ring
from pushcap.config.model import InterfaceConfig, NamingRule
from pushcap.config.pcapdaemon import TriggerSettings
from pushcap.trigger.archive_seam import ArchiveSource
from pushcap.trigger.job import CaptureJob
from pushcap.trigger.message import parse_request

SETTINGS = TriggerSettings(node_name="n1", max_packets=10_000, max_bytes=10_000_000,
                           max_timeout_s=120, max_duration_s=600, default_timeout_s=30,
                           snap_length=512)
PACKETS = 300
TIES = 3  # packets per timestamp
RING_FROM = 230  # the ring holds packets 230.. (229 and 230 share a timestamp: 228..230)


def stream(base_ns: int, steps: dict[int, int] | None = None) -> Batch:
    """PACKETS numbered packets, TIES to a timestamp 1 µs apart; source host = number % 2.
    `steps`: packet number -> the number whose timestamp it gets instead (a clock step)."""
    ts = [base_ns + (i // TIES) * 1000 for i in range(PACKETS)]
    for number, like in (steps or {}).items():
        ts[number] = ts[like]
    batch = batch_of(ts, [64] * PACKETS, [i % 2 for i in range(PACKETS)])
    data = np.frombuffer(batch.records, np.uint8).copy()
    for i, offset in enumerate(batch.offsets):  # byte 42: the packet's number
        data[offset + 16 + 42: offset + 16 + 46] = np.frombuffer(i.to_bytes(4, "big"), np.uint8)
    return Batch(data.tobytes(), batch.offsets, batch.ts_ns, batch.caplen, batch.wirelen, 1,
                 262144)


def records(batch: Batch, start: int, stop: int) -> bytes:
    """Packets start..stop-1 as pcap records (they lie back to back in the batch)."""
    end = int(batch.offsets[stop - 1] + 16 + batch.caplen[stop - 1])
    return bytes(memoryview(batch.records).cast("B")[int(batch.offsets[start]):end])


def write_archive(folder: Path, batch: Batch, cut_part: bool = True) -> SeriesFiles:
    """Two published files (the first indexed) and the open part of series `all`, holding
    the whole stream; the part ends in half a record, as while a write is in progress."""
    folder.mkdir()
    header = pcap_file_header(1, 262144)
    base_s = int(batch.ts_ns[0]) // 10**9
    first = folder / f"all_{base_s}-{base_s + 1}.pcap"
    first.write_bytes(header + records(batch, 0, 100))
    (folder / f"all_{base_s}-{base_s + 1}_2.pcap").write_bytes(header + records(batch, 100, 200))
    build_index(first)
    tail = records(batch, 200, PACKETS)
    (folder / f".all.{int(batch.ts_ns[200])}.part").write_bytes(
        header + tail + (records(batch, 0, 1)[:30] if cut_part else b""))
    return SeriesFiles(folder / "all", NamingRule("--filename-epoch-sec-startend"), ".pcap")


def ring_from(batch: Batch, start: int) -> Ring:
    """A ring that evicted packets ..start-1 (one batch) and holds start.. (another)."""
    older, newer = batch.rows(0, start), batch.rows(start, PACKETS)
    ring = Ring("eth0", 1, 262144, max_seconds=600, max_bytes=newer.memory_bytes)
    ring.append(older)
    ring.append(newer)
    assert ring.evicted_packets == start
    return ring


def numbers(outcome) -> list[int]:
    pcap = outcome.pcap
    out, at = [], 24
    while at < len(pcap):
        caplen = int.from_bytes(pcap[at + 8:at + 12], "little")
        out.append(int.from_bytes(pcap[at + 16 + 42:at + 16 + 46], "big"))
        at += 16 + caplen
    return out


def run(ring: Ring, series: SeriesFiles, base_ns: int, archive: bool = True, **fields):
    received_ns = time.time_ns()
    message = {"node": "n1", "interface": "eth0", "start": base_ns / 1e9 - 1,
               "end": base_ns / 1e9 + 1, **fields}
    request = parse_request(json.dumps(message), SETTINGS, (InterfaceConfig("eth0"),), None,
                            received_ns)
    sources = (ArchiveSource("arc", series),) if archive else ()
    return CaptureJob(request, "eth0", None, ring, late_s=0.0, archive=sources).run()


def archive_count(outcome) -> int:
    note = next(n for n in outcome.notes if "packets from the archive" in n)
    return int(note.split()[0])


def test_ties_at_the_seam_and_an_open_part_give_every_packet_once(tmp_path):
    base_ns = time.time_ns() - 5 * 10**9
    batch = stream(base_ns)
    series = write_archive(tmp_path / "arc", batch)
    outcome = run(ring_from(batch, RING_FROM), series, base_ns)
    assert numbers(outcome) == list(range(PACKETS))
    assert archive_count(outcome) == RING_FROM
    assert outcome.reason == "window"
    # the window starts a second before the stream: the note says where the archive begins
    assert "; the archive holds none before" in next(n for n in outcome.notes if "archive" in n)


def test_a_filter_counts_ties_among_the_packets_it_takes(tmp_path):
    base_ns = time.time_ns() - 5 * 10**9
    batch = stream(base_ns)
    series = write_archive(tmp_path / "arc", batch)
    outcome = run(ring_from(batch, RING_FROM), series, base_ns, bpf="src host 0.0.0.1")
    assert numbers(outcome) == list(range(1, PACKETS, 2))
    assert archive_count(outcome) == RING_FROM // 2


def test_an_evicted_packet_stamped_after_the_rings_oldest_is_taken_once(tmp_path):
    """A clock step: packet 100 is stamped like packet 280, after the ring's oldest (230)."""
    base_ns = time.time_ns() - 5 * 10**9
    batch = stream(base_ns, steps={100: 280})
    series = write_archive(tmp_path / "arc", batch)
    found = numbers(run(ring_from(batch, RING_FROM), series, base_ns))
    assert sorted(found) == list(range(PACKETS))


def test_the_packets_cap_counts_the_archive_part_and_the_ring_together(tmp_path):
    base_ns = time.time_ns() - 5 * 10**9
    batch = stream(base_ns)
    series = write_archive(tmp_path / "arc", batch)
    outcome = run(ring_from(batch, RING_FROM), series, base_ns, packets=250)
    assert numbers(outcome) == list(range(250)) and outcome.reason == "packets"
    outcome = run(ring_from(batch, RING_FROM), series, base_ns, packets=120)
    assert numbers(outcome) == list(range(120)) and outcome.reason == "packets"
    assert archive_count(outcome) == 120


def test_the_bytes_cap_counts_the_whole_window(tmp_path):
    base_ns = time.time_ns() - 5 * 10**9
    batch = stream(base_ns)
    series = write_archive(tmp_path / "arc", batch)
    record = 16 + 64
    outcome = run(ring_from(batch, RING_FROM), series, base_ns, bytes=24 + 240 * record)
    assert numbers(outcome) == list(range(240)) and outcome.reason == "bytes"


def test_without_an_indexed_target_the_ring_alone_serves(tmp_path):
    base_ns = time.time_ns() - 5 * 10**9
    batch = stream(base_ns)
    series = write_archive(tmp_path / "arc", batch)
    outcome = run(ring_from(batch, RING_FROM), series, base_ns, archive=False)
    assert numbers(outcome) == list(range(RING_FROM, PACKETS))
    assert not any("archive" in note for note in outcome.notes)


def test_maxduration_bounds_the_whole_window_lookback_included():
    ring = Ring("eth0", 1, 262144, max_seconds=600, max_bytes=1 << 30)
    received_ns = time.time_ns()
    message = json.dumps({"node": "n1", "interface": "eth0", "before": 500, "duration": 300})
    request = parse_request(message, SETTINGS, (InterfaceConfig("eth0"),), None, received_ns)
    job = CaptureJob(request, "eth0", None, ring, late_s=0.0)
    assert job.window_start_ns == received_ns - 500 * 10**9
    assert (job.end_ns, job.end_reason) == (received_ns + 100 * 10**9, "duration")
    assert any("maxduration 600 s" in note for note in job.outcome.notes)


def test_a_part_still_being_written_is_read_never_mapped(tmp_path, monkeypatch):
    """The series cuts a part back after a failed write: a mapped page past the new end would
    stop the daemon with SIGBUS, so a part is read window by window."""
    from pushcap.capture import source

    mapped: list[str] = []
    real = source.map_read_only

    def record(fd: int, size: int):
        mapped.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd, size)

    monkeypatch.setattr(source, "map_read_only", record)
    base_ns = time.time_ns() - 5 * 10**9
    batch = stream(base_ns)
    series = write_archive(tmp_path / "arc", batch)
    outcome = run(ring_from(batch, RING_FROM), series, base_ns)
    assert numbers(outcome) == list(range(PACKETS))
    assert mapped and not any(name.endswith(".part") for name in mapped), mapped
