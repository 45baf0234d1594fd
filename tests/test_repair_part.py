"""A crash leftover (`.part`) is cut at its last whole record and kept: a corrupt record keeps
the records before it, a cut last record is dropped, a file with no whole record goes."""

from __future__ import annotations

import struct
import subprocess

from pushcap.push.pcapfile import repair_part

HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)


def record(sec: int, data: bytes, caplen: int | None = None) -> bytes:
    size = len(data) if caplen is None else caplen
    return struct.pack("<IIII", sec, 5, size, size) + data


def test_a_corrupt_record_keeps_the_records_before_it(tmp_path):
    part = tmp_path / ".x.1.part"
    good = record(10, b"abcd") + record(11, b"efghij")
    part.write_bytes(HEADER + good + record(12, b"x" * 100, caplen=262145))
    assert repair_part(part) == (2, 10 * 10**9 + 5, 11 * 10**9 + 5)
    assert part.read_bytes() == HEADER + good
    out = subprocess.run(["capinfos", "-c", "-M", str(part)], capture_output=True, text=True,
                         check=True)
    assert "Number of packets:   2" in out.stdout


def test_a_cut_last_record_is_dropped(tmp_path):
    part = tmp_path / ".x.2.part"
    good = record(10, b"abcd")
    part.write_bytes(HEADER + good + record(11, b"efghij")[:-3])
    assert repair_part(part) == (1, 10 * 10**9 + 5, 10 * 10**9 + 5)
    assert part.read_bytes() == HEADER + good


def test_no_whole_record_removes_the_file(tmp_path):
    for name, content in [(".a.1.part", HEADER[:10]), (".b.1.part", HEADER + b"\x01\x02"),
                          (".c.1.part", HEADER + record(1, b"", caplen=262145))]:
        part = tmp_path / name
        part.write_bytes(content)
        assert repair_part(part) is None
        assert not part.exists()
