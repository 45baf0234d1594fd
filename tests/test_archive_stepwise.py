"""The archive read a group of files at a time (archive/stepwise.py) gives what one
ArchiveQuery over every file gives, packet for packet, and reads no group after its reader
stopped."""

from __future__ import annotations

from pathlib import Path

from engine_harness import batch_of

from pushcap.archive.build import build_index
from pushcap.archive.query import ArchiveQuery
from pushcap.archive.stepwise import StepwiseQuery
from pushcap.capture.batch import pcap_file_header

S = 10**9
BASE = 1_700_000_000 * S


def write(path: Path, ts_ns: list[int], index: bool = True) -> Path:
    batch = batch_of(ts_ns, [60 + i % 40 for i in range(len(ts_ns))],
                     [i % 7 for i in range(len(ts_ns))])
    path.write_bytes(pcap_file_header(1, 262144) + bytes(memoryview(batch.records).cast("B")))
    if index:
        build_index(path)
    return path


def archive(tmp_path: Path) -> list[Path]:
    """A: alone; B and C overlap (C's stamps fall between B's); D: alone, with a stamp equal
    to C's last; E: no index (spans to the end of time)."""
    return [write(tmp_path / "a.pcap", [BASE + i * 1000 for i in range(50)]),
            write(tmp_path / "b.pcap", [BASE + S + i * 1000 for i in range(50)]),
            write(tmp_path / "c.pcap", [BASE + S + 500 + i * 1000 for i in range(50)]),
            write(tmp_path / "d.pcap", [BASE + S + 49_500] + [BASE + 2 * S + i for i in range(9)]),
            write(tmp_path / "e.pcap", [BASE + 3 * S + i for i in range(10)], index=False)]


def packets(batches) -> list[bytes]:
    out = []
    for batch in batches:
        view = memoryview(batch.records).cast("B")
        out += [bytes(view[o:o + 16 + c]) for o, c in zip(batch.offsets.tolist(),
                                                            batch.caplen.tolist(), strict=True)]
    return out


def test_groups_give_what_one_query_gives(tmp_path):
    files = archive(tmp_path)
    for bpf in (None, "src host 0.0.0.3"):
        for start, end in ((0, 2**62), (BASE + S + 10_000, BASE + 3 * S + 5)):
            stepwise = StepwiseQuery(files, start, end, bpf)
            whole = ArchiveQuery(files, start, end, bpf)
            assert packets(stepwise.batches()) == packets(whole.batches())
            assert stepwise.stats.packets == whole.stats.packets > 0
    groups = StepwiseQuery(files, 0, 2**62, None).groups
    assert [[p.name for p in g] for g in groups] == [["a.pcap"], ["b.pcap", "c.pcap", "d.pcap"],
                                                     ["e.pcap"]]
    assert [[p.name for p in g] for g in StepwiseQuery(files, BASE + 2 * S, 2**62,
                                                       None).groups] == [["d.pcap"], ["e.pcap"]]


def test_a_reader_that_stops_opens_no_later_group(tmp_path):
    files = archive(tmp_path)
    stepwise = StepwiseQuery(files, 0, 2**62, None)
    reading = stepwise.batches()
    assert len(next(reading)) == 50  # all of A
    reading.close()
    assert stepwise.stats.files_indexed + stepwise.stats.files_scanned == 1  # A alone
