"""FMADIO `PipeCmd` compression, done in-process: nothing from a config file reaches a shell.

A finished temporary pcap file is streamed through the codec into a second temporary file that is
fsynced before the caller publishes it, so a published compressed file is as durable and as whole
as an uncompressed one. The PipeCmd line itself is read by config (config/codec.py, the one
grammar, where a typo in push_realtime.lua is a load error): this module only executes the Codec
it produced, so the two can never disagree about what a line means.

Output is the codec's standard stream format, readable by the command-line tool of the same name:
gzip (RFC 1952, via the stdlib), the LZ4 frame format (`lz4.frame`, content checksum on like the
`lz4` CLI) and the Zstandard frame format (`zstandard`, checksum on like the `zstd` CLI).
"""

from __future__ import annotations

import os
from pathlib import Path

from pushcap import defaults
from pushcap.config.codec import Codec
from pushcap.push.pcapfile import parse_part_name

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from typing import BinaryIO

COMPRESS_TMP_SUFFIX = ".ztmp"  # `<part>.ztmp`: hidden like the part, never matched as a `.part`
COMPRESSED_MARK_SUFFIX = ".zdone"  # `<part>.zdone`: the part, renamed once its copy is complete


def compress_file(src: Path, dst: Path, codec: Codec) -> int:
    """Stream `src` through `codec` into `dst` (created, fsynced); returns the bytes written.

    `dst` is removed if compression fails, so no half-written output is left for a later publish.
    """
    try:
        with src.open("rb") as fin, dst.open("wb") as fout:
            if codec.name == "gzip":
                _gzip_stream(fin, fout, codec.effective_level)
            elif codec.name == "lz4":
                _lz4_stream(fin, fout, codec.effective_level)
            elif codec.name == "zstd":
                _zstd_stream(fin, fout, codec)
            else:  # a Codec cannot be built with another name; a new one needs its branch here
                raise ValueError(f"no in-process compressor for codec {codec.name!r}")
            fout.flush()
            os.fsync(fout.fileno())
            return fout.tell()
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def _gzip_stream(fin: BinaryIO, fout: BinaryIO, level: int) -> None:
    import gzip  # here, like the other codecs: a replay with no PipeCmd never needs it
    import shutil

    # no file name or time in the header: the same input gives the same bytes
    with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=fout, mtime=0) as gz:
        shutil.copyfileobj(fin, gz, defaults.COMPRESS_CHUNK_BYTES)


def _lz4_stream(fin: BinaryIO, fout: BinaryIO, level: int) -> None:
    import lz4.frame

    # lz4.frame levels: 0-2 are the fast mode (the CLI's -1), 3+ high compression (the CLI's -3+)
    compressor = lz4.frame.LZ4FrameCompressor(compression_level=0 if level <= 2 else level,
                                              content_checksum=True)
    fout.write(compressor.begin())
    while chunk := fin.read(defaults.COMPRESS_CHUNK_BYTES):
        fout.write(compressor.compress(chunk))
    fout.write(compressor.flush())


def _zstd_stream(fin: BinaryIO, fout: BinaryIO, codec: Codec) -> None:
    import zstandard

    # zstandard's threads: 0 compresses in this thread (no -T), -1 one worker per core (-T0)
    if codec.threads is None:
        threads = 0
    else:
        threads = codec.threads or -1
    compressor = zstandard.ZstdCompressor(level=codec.effective_level, threads=threads,
                                          write_checksum=True)
    compressor.copy_stream(fin, fout, read_size=defaults.COMPRESS_CHUNK_BYTES,
                           write_size=defaults.COMPRESS_CHUNK_BYTES)


def compressed_part(part: Path, codec: Codec | None) -> Path:
    """The file to publish for a finished `part`: the part itself, or its compressed copy.

    The compressed copy sits beside the part as `<part>.ztmp`; the part is kept until the caller
    has published, so a crash in between leaves the part to be repaired and compressed again.
    A temporary a crash left is replaced, not rewritten: it may be a link to a published file.
    """
    if codec is None:
        return part
    dst = part.with_name(part.name + COMPRESS_TMP_SUFFIX)
    dst.unlink(missing_ok=True)
    compress_file(part, dst, codec)
    return dst


def compressed_mark(part: Path) -> Path:
    """Where a part goes once its compressed copy is complete and about to be renamed to its
    final name (where hard links fail): proof, after a crash, that the copy was made whole."""
    return part.with_name(part.name + COMPRESSED_MARK_SUFFIX)


def settle_marks(directory: Path, base: str) -> None:
    """After a crash, sort out the marks of series `base` (see `compressed_mark`): a mark whose
    compressed copy is still there becomes the part again (it is compressed and published anew,
    once); a mark without it was published, and goes."""
    if not directory.is_dir():
        return
    for mark in directory.glob(f".{base}.*{COMPRESSED_MARK_SUFFIX}"):
        part = mark.with_name(mark.name[:-len(COMPRESSED_MARK_SUFFIX)])
        if _is_ours(part, base):
            settle_mark(part)


def settle_mark(part: Path) -> None:
    """`part`'s mark, if it has one, sorted out as `settle_marks` says."""
    mark = compressed_mark(part)
    if not mark.exists():
        return
    if part.with_name(part.name + COMPRESS_TMP_SUFFIX).exists():
        os.rename(mark, part)
    else:
        mark.unlink()


def remove_stale(directory: Path, base: str) -> None:
    """Delete compression temporaries of series `base` left by a crash (their part survives,
    or they were published under their final name as well)."""
    if directory.is_dir():
        for stale in directory.glob(f".{base}.*{COMPRESS_TMP_SUFFIX}"):
            if _is_ours(stale.with_name(stale.name[:-len(COMPRESS_TMP_SUFFIX)]), base):
                stale.unlink(missing_ok=True)


def _is_ours(part: Path, base: str) -> bool:
    """Whether `part` is a temporary of series `base` itself, not of `<base>.x` beside it."""
    parsed = parse_part_name(part)
    return parsed is not None and parsed[0] == base
