"""PipeCmd compression: every known compressor round-trips to exactly the input bytes.

The codecs are built by config's grammar (config/codec.py, tested on its own in test_targets.py)
from the PipeCmd lines an operator writes, then executed here (push/compress.py), so a line that
config accepts but the executor would run differently fails. Decoded twice where possible: with
the format's Python library and with the format's own command-line tool (the tool FMADIO's users
will run on the files), so a stream that only our library reads would fail.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import lz4.frame
import pytest
import zstandard
from lua_config_helpers import NAME, one_target
from oracle import PCAPS_DIR

from pushcap.config.codec import Codec, parse_codec
from pushcap.config.lua import load_targets_text
from pushcap.config.model import (
    NamingRule,
    PushMode,
    SplitKind,
    SplitRule,
    TargetConfig,
)
from pushcap.push.compress import (
    COMPRESS_TMP_SUFFIX,
    compress_file,
    compressed_mark,
)
from pushcap.push.ship import make_shipper

# every codec at each level bound (and lz4's fast/high-compression switch at 2/3), with threads
PIPE_CMDS = [
    "gzip -c", "gzip -c -1", "gzip -c -9",
    "lz4 -c", "lz4 -c -1", "lz4 -c -2", "lz4 -c -3", "lz4 -c -9", "lz4 -c -12",
    "zstd -c", "zstd -c -1", "zstd -c -19", "zstd -c -T0", "zstd -c -3 -T0", "zstd -c -19 -T2",
]
SAMPLE = PCAPS_DIR / "viber_mobile.pcap"


def codec_of(pipe_cmd: str | None) -> Codec | None:
    """The Codec config makes of a PipeCmd line (None: no PipeCmd)."""
    return None if pipe_cmd is None else parse_codec(pipe_cmd)


def decode(codec: str, data: bytes) -> bytes:
    if codec == "gzip":
        return gzip.decompress(data)
    if codec == "lz4":
        return lz4.frame.decompress(data)
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@pytest.mark.parametrize("pipe_cmd", PIPE_CMDS)
@pytest.mark.parametrize("content", ["pcap", "empty", "random"])
def test_round_trip_exact(tmp_path, pipe_cmd, content):
    data = {"pcap": SAMPLE.read_bytes(), "empty": b"", "random": os.urandom(3 << 20)}[content]
    src, dst = tmp_path / "in.pcap", tmp_path / "out.z"
    src.write_bytes(data)
    codec = codec_of(pipe_cmd)
    written = compress_file(src, dst, codec)
    packed = dst.read_bytes()
    assert written == len(packed)
    assert decode(codec.name, packed) == data
    if content == "pcap":
        assert len(packed) < len(data)


@pytest.mark.parametrize("pipe_cmd", PIPE_CMDS)
def test_command_line_tool_reads_it(tmp_path, pipe_cmd):
    codec = codec_of(pipe_cmd)
    tool = shutil.which(codec.name)
    if tool is None:
        pytest.skip(f"{codec.name} command-line tool not installed")
    src, dst = tmp_path / "in.pcap", tmp_path / "out.z"
    shutil.copy(SAMPLE, src)
    compress_file(src, dst, codec)
    out = subprocess.run([tool, "-dc", str(dst)], capture_output=True, check=True).stdout
    assert out == SAMPLE.read_bytes()


@pytest.mark.parametrize(("low", "high"), [("gzip -c -1", "gzip -c -9"),
                                           ("lz4 -c -1", "lz4 -c -12"),
                                           ("zstd -c -1", "zstd -c -19")])
def test_the_level_is_the_one_written(tmp_path, low, high):
    """The executor compresses at the level config parsed: the top level packs the sample
    smaller than the bottom one (a level ignored on the way would give equal sizes)."""
    src = tmp_path / "in.pcap"
    shutil.copy(SAMPLE, src)
    sizes = [compress_file(src, tmp_path / f"out{i}", codec_of(cmd))
             for i, cmd in enumerate((low, high))]
    assert sizes[1] < sizes[0]


def test_default_levels_are_the_tools(tmp_path):
    """`gzip -c` compresses exactly as `gzip -c -6` (gzip's default); the header carries no
    name or time, so the bytes are equal."""
    src = tmp_path / "in.pcap"
    shutil.copy(SAMPLE, src)
    compress_file(src, tmp_path / "default.gz", codec_of("gzip -c"))
    compress_file(src, tmp_path / "six.gz", codec_of("gzip -c -6"))
    assert (tmp_path / "default.gz").read_bytes() == (tmp_path / "six.gz").read_bytes()


def test_failed_compression_leaves_no_output(tmp_path, monkeypatch):
    src, dst = tmp_path / "in.pcap", tmp_path / "out.gz"
    src.write_bytes(b"x" * 1000)

    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gzip.GzipFile, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        compress_file(src, dst, Codec("gzip", 1))  # fails after dst exists
    assert not dst.exists()


def file_target(pipe_cmd: str | None, suffix: str, desc: str = "t1") -> TargetConfig:
    return TargetConfig(index=1, desc=desc, mode=PushMode.FILE, path="unused",
                        split=SplitRule(SplitKind.TIME, 60 * 10**9),
                        naming=NamingRule("--filename-epoch-sec-startend"),
                        pipe_cmd=codec_of(pipe_cmd), file_suffix=suffix)


@pytest.mark.parametrize("pipe_cmd,suffix", [("gzip -c -1", ".pcap.gz"), ("lz4 -c", ".pcap.lz4"),
                                             ("zstd -c -T0", ".pcap.zstd"), (None, ".pcap"),
                                             ("cat", ".pcap")])
def test_file_mode_publishes_with_suffix(tmp_path, pipe_cmd, suffix):
    prefix = tmp_path / "push" / "all"
    shipper = make_shipper(file_target(pipe_cmd, suffix), prefix)
    part = tmp_path / "push" / ".all.1616334655000000000.part"
    part.parent.mkdir()
    shutil.copy(SAMPLE, part)
    final = shipper.deliver(part, "1616334655-1616334755")
    assert final == tmp_path / "push" / f"all_1616334655-1616334755{suffix}"
    assert sorted(p.name for p in prefix.parent.iterdir()) == [final.name]  # no part, no .ztmp
    codec = codec_of(pipe_cmd)
    body = final.read_bytes()
    assert (decode(codec.name, body) if codec else body) == SAMPLE.read_bytes()
    # a second file of the same name is never overwritten
    shutil.copy(SAMPLE, part)
    second = shipper.deliver(part, "1616334655-1616334755")
    assert second.name == f"all_1616334655-1616334755_2{suffix}"
    assert shipper.stats() == {"files_published": 2}


@pytest.mark.parametrize("pipe_cmd", ["gzip -9 -c", "lz4 -c -12", "zstd -c -T2 -19"])
def test_a_pipe_cmd_from_lua_is_what_gets_executed(tmp_path, pipe_cmd):
    """From push_realtime.lua to the published file: config parses the line once and the
    shipper executes that Codec; the `zstd`/`gzip`/`lz4` tool reads the result."""
    text = one_target(PipeCmd=f'"{pipe_cmd}"')
    target = load_targets_text(text, NAME)[1]
    assert target.pipe_cmd == parse_codec(pipe_cmd)
    prefix = tmp_path / "all"
    part = tmp_path / ".all.1616334655000000000.part"
    shutil.copy(SAMPLE, part)
    final = make_shipper(target, prefix).deliver(part, "1616334655-1616334755")
    assert final.name == f"all_1616334655-1616334755{target.file_suffix}"
    assert decode(target.pipe_cmd.name, final.read_bytes()) == SAMPLE.read_bytes()
    tool = shutil.which(target.pipe_cmd.name)
    if tool is not None:
        out = subprocess.run([tool, "-dc", str(final)], capture_output=True, check=True).stdout
        assert out == SAMPLE.read_bytes()


def test_file_mode_removes_stale_compression_temporaries(tmp_path):
    stale = tmp_path / f".all.1616334655000000000.part{COMPRESS_TMP_SUFFIX}"
    other = tmp_path / f".other.1616334655000000000.part{COMPRESS_TMP_SUFFIX}"
    stale.write_bytes(b"half")
    other.write_bytes(b"not ours")
    shipper = make_shipper(file_target("gzip -c -1", ".pcap.gz"), tmp_path / "all")
    assert stale.exists()  # building a shipper (pushcap check) touches nothing
    shipper.start()
    assert not stale.exists() and other.exists()


def test_compressed_name_is_hidden_from_series_globs(tmp_path):
    # Series.repair_leftovers globs `.<base>.*.part`: the compressed temporary must not match
    part = tmp_path / ".all.1.part"
    assert not list(Path(tmp_path).glob(".all.*.part"))
    tmp = part.with_name(part.name + COMPRESS_TMP_SUFFIX)
    tmp.write_bytes(b"")
    assert not list(Path(tmp_path).glob(".all.*.part"))


def minute_target(folder: Path, pipe_cmd: str | None = None, suffix: str = ".pcap"
                  ) -> TargetConfig:
    """A File target `<folder>/all`, one file a minute, named by start and end second."""
    return TargetConfig(index=1, desc="all", mode=PushMode.FILE, path=str(folder / "all"),
                        split=SplitRule(SplitKind.TIME, 60 * 10**9),
                        naming=NamingRule("--filename-epoch-sec-startend"),
                        pipe_cmd=codec_of(pipe_cmd), file_suffix=suffix)


def minute_series(folder: Path):
    from pushcap.push.target import Series

    return Series(minute_target(folder), "eth0", folder / "all", 1, 65535)


def test_a_part_published_just_before_a_crash_is_not_published_twice(tmp_path):
    """A crash between publish()'s link() and unlink() leaves the part beside its final name,
    both one file: the next start removes the part instead of publishing a copy as `_2`."""
    series = minute_series(tmp_path)
    part = tmp_path / ".all.1616334600000000000.part"
    shutil.copy(SAMPLE, part)
    final = tmp_path / "all_1616334600-1616334660.pcap"
    os.link(part, final)  # the crash came here
    series.repair_leftovers()
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    assert final.read_bytes() == SAMPLE.read_bytes()


def test_a_part_another_tool_hard_linked_is_still_published(tmp_path):
    """A second link made by something else (a backup run, a dedupe tool) is not a published
    file: the part is repaired and published as usual."""
    out = tmp_path / "out"
    out.mkdir()
    series = minute_series(out)
    part = out / ".all.1616334600000000000.part"
    shutil.copy(SAMPLE, part)
    os.link(part, tmp_path / "backup-copy")
    series.repair_leftovers()
    assert sorted(p.name for p in out.iterdir()) == ["all_1616334600-1616334660.pcap"]
    assert (out / "all_1616334600-1616334660.pcap").read_bytes() == SAMPLE.read_bytes()


def restart_gzip_series(folder: Path) -> None:
    """What a start does for a gzip File target: repair the series' leftovers, then start it."""
    from pushcap.supervisor.consumers import make_consumer

    series = make_consumer(minute_target(folder, "gzip -c -1", ".pcap.gz"), "eth0", False, 1,
                           65535)
    series.start(at_launch=True)
    series.close()


@pytest.mark.parametrize("part_removed", [False, True])
def test_a_compressed_file_published_just_before_a_crash_is_not_published_twice(
        tmp_path, part_removed):
    """With a PipeCmd the compressed temporary is what gets linked to the final name. A crash
    after that link leaves it (and maybe the part): the next start must not compress and
    publish the part a second time as `_2`."""
    part = tmp_path / ".all.1616334600000000000.part"
    shutil.copy(SAMPLE, part)
    compressed = part.with_name(part.name + COMPRESS_TMP_SUFFIX)
    compress_file(part, compressed, Codec("gzip", 1))
    final = tmp_path / "all_1616334600-1616334660.pcap.gz"
    os.link(compressed, final)  # the crash came here, or after the part's unlink
    if part_removed:
        part.unlink()
    restart_gzip_series(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    assert gzip.decompress(final.read_bytes()) == SAMPLE.read_bytes()


def test_a_crash_while_compressing_publishes_the_part_once(tmp_path):
    """A half-written compressed temporary is not a published file: the part is compressed
    again and published once."""
    part = tmp_path / ".all.1616334600000000000.part"
    shutil.copy(SAMPLE, part)
    part.with_name(part.name + COMPRESS_TMP_SUFFIX).write_bytes(b"\x1f\x8b half")
    restart_gzip_series(tmp_path)
    final = tmp_path / "all_1616334600-1616334660.pcap.gz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    assert gzip.decompress(final.read_bytes()) == SAMPLE.read_bytes()


@pytest.fixture
def no_hard_links(monkeypatch):
    """A file system without hard links (vfat, exFAT, some CIFS and FUSE mounts)."""
    def refuse(*_args, **_kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)


def test_compressed_publish_without_hard_links_leaves_only_the_file(tmp_path, no_hard_links):
    part = tmp_path / ".all.1616334600000000000.part"
    shutil.copy(SAMPLE, part)
    shipper = make_shipper(minute_target(tmp_path, "gzip -c -1", ".pcap.gz"), tmp_path / "all")
    final = shipper.deliver(part, "1616334600-1616334660")
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    assert gzip.decompress(final.read_bytes()) == SAMPLE.read_bytes()


@pytest.mark.parametrize("renamed", [False, True])
def test_a_crash_around_the_rename_without_hard_links_publishes_once(tmp_path, no_hard_links,
                                                                      renamed):
    """Without hard links the part becomes its mark before the compressed copy is renamed to
    its final name. Mark and copy: the rename had not happened, publish once. Mark alone: it
    had, publish nothing more."""
    part = tmp_path / ".all.1616334600000000000.part"
    shutil.copy(SAMPLE, part)
    compressed = part.with_name(part.name + COMPRESS_TMP_SUFFIX)
    compress_file(part, compressed, Codec("gzip", 1))
    os.rename(part, compressed_mark(part))
    final = tmp_path / "all_1616334600-1616334660.pcap.gz"
    if renamed:
        os.rename(compressed, final)  # the crash came after this
    restart_gzip_series(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [final.name]
    assert gzip.decompress(final.read_bytes()) == SAMPLE.read_bytes()


def test_stale_temporaries_of_a_series_named_alike_are_left_alone(tmp_path):
    """`all` must not clean up after a series `all.x` writing beside it."""
    theirs = tmp_path / f".all.x.1616334655000000000.part{COMPRESS_TMP_SUFFIX}"
    theirs.write_bytes(b"in progress")
    make_shipper(file_target("gzip -c -1", ".pcap.gz"), tmp_path / "all").start()
    assert theirs.exists()
