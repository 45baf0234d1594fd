"""A series' files while it writes (archive/written.py): published files and the parts not
published yet, each file once at every stage of publishing (push/ship.py), parts readable
after they are renamed."""

from __future__ import annotations

import os
from pathlib import Path

from pushcap.archive import written
from pushcap.archive.layout import SeriesFiles
from pushcap.archive.written import open_written
from pushcap.capture.batch import pcap_file_header
from pushcap.config.model import NamingRule
from pushcap.push import compress, pcapfile

RECORD = (1).to_bytes(4, "little") * 2 + (4).to_bytes(4, "little") * 2 + b"data"
CONTENT = pcap_file_header(1, 262144) + RECORD
NAMING = NamingRule("--filename-epoch-sec-startend")


def series(folder: Path, suffix: str = ".pcap") -> SeriesFiles:
    folder.mkdir(exist_ok=True)
    return SeriesFiles(folder / "all", NAMING, suffix)


def names(files) -> list[str]:
    """Published files by name; parts by the name their descriptor points at."""
    return [os.readlink(p).rpartition("/")[2] if str(p).startswith("/proc/") else p.name
            for p in files.paths]


def test_the_names_are_those_push_writes(tmp_path):
    assert (written.COMPRESS_TMP_SUFFIX, written.COMPRESSED_MARK_SUFFIX) == (
        compress.COMPRESS_TMP_SUFFIX, compress.COMPRESSED_MARK_SUFFIX)
    s = series(tmp_path / "a")
    for n in (0, 2):
        pcapfile.part_path(s.prefix, 1700000000123456789, n).write_bytes(CONTENT)
    (tmp_path / "a" / ".all_tcp.1700000000000000000.part").write_bytes(CONTENT)  # another's
    with open_written(s) as files:
        assert names(files) == [".all.1700000000123456789.part",
                                ".all.1700000000123456789~2.part"]
        assert files.parts == files.paths


def test_published_files_come_first_by_when_they_were_finished(tmp_path):
    s = series(tmp_path / "a")
    for name, mtime in (("all_1700000060-1700000120.pcap", 20),
                        ("all_1700000000-1700000060.pcap", 10)):
        (tmp_path / "a" / name).write_bytes(CONTENT)
        os.utime(tmp_path / "a" / name, (mtime, mtime))
    pcapfile.part_path(s.prefix, 1700000120 * 10**9).write_bytes(CONTENT)
    with open_written(s) as files:
        assert names(files) == ["all_1700000000-1700000060.pcap",
                                "all_1700000060-1700000120.pcap", ".all.1700000120000000000.part"]


def test_a_part_being_published_is_read_once(tmp_path):
    """A plain part is linked to its final name, then unlinked: between, it is one file."""
    s = series(tmp_path / "a")
    part = pcapfile.part_path(s.prefix, 1700000000 * 10**9)
    part.write_bytes(CONTENT)
    os.link(part, tmp_path / "a" / "all_1700000000-1700000060.pcap")
    with open_written(s) as files:
        assert names(files) == ["all_1700000000-1700000060.pcap"]


def test_a_compressed_part_is_left_out_once_its_copy_is_published(tmp_path):
    s = series(tmp_path / "a")
    part = pcapfile.part_path(s.prefix, 1700000000 * 10**9)
    part.write_bytes(CONTENT)
    copy = part.with_name(part.name + compress.COMPRESS_TMP_SUFFIX)
    copy.write_bytes(b"\x1f\x8b compressed")
    with open_written(s) as files:  # compressing: the part is the only copy to read
        assert names(files) == [part.name]
    os.link(copy, tmp_path / "a" / "all_1700000000-1700000060.pcap.gz")
    with open_written(series(tmp_path / "a", ".pcap.gz")) as files:
        assert names(files) == ["all_1700000000-1700000060.pcap.gz"]


def test_a_mark_is_read_until_its_copy_is_renamed(tmp_path):
    """Without hard links: the part becomes a mark, then the copy its final name."""
    s = series(tmp_path / "a", ".pcap.gz")
    part = pcapfile.part_path(s.prefix, 1700000000 * 10**9)
    mark = compress.compressed_mark(part)
    mark.write_bytes(CONTENT)
    copy = part.with_name(part.name + compress.COMPRESS_TMP_SUFFIX)
    copy.write_bytes(b"\x1f\x8b compressed")
    with open_written(s) as files:
        assert names(files) == [mark.name]
    os.rename(copy, tmp_path / "a" / "all_1700000000-1700000060.pcap.gz")
    with open_written(s) as files:
        assert names(files) == ["all_1700000000-1700000060.pcap.gz"]


def test_a_part_renamed_after_it_was_listed_is_still_read(tmp_path):
    s = series(tmp_path / "a")
    part = pcapfile.part_path(s.prefix, 1700000000 * 10**9)
    part.write_bytes(CONTENT)
    with open_written(s) as files:
        os.rename(part, tmp_path / "a" / "all_1700000000-1700000060.pcap")
        assert files.paths[0].read_bytes() == CONTENT
    assert not files._fds  # closed


def test_a_part_without_a_whole_record_header_is_left_out(tmp_path):
    s = series(tmp_path / "a")
    pcapfile.part_path(s.prefix, 1700000000 * 10**9).write_bytes(CONTENT[:30])
    pcapfile.part_path(s.prefix, 1700000001 * 10**9).write_bytes(b"")
    with open_written(s) as files:
        assert files.paths == [] and files.parts == []
