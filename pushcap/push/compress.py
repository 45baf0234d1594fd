"""FMADIO `PipeCmd` compression, done in-process: nothing from a config file reaches a shell.

A finished temporary pcap file is streamed through the codec into a second temporary file that is
fsynced before the caller publishes it, so a published compressed file is as durable and as whole
as an uncompressed one. Only the compressors FMADIO documents are known; anything else is refused
(`parse_pipe_cmd`) so that a typo in push_realtime.lua is a load error, not a silent plain copy.

Output is the codec's standard stream format, readable by the command-line tool of the same name:
gzip (RFC 1952, via the stdlib), the LZ4 frame format (`lz4.frame`, content checksum on like the
`lz4` CLI) and the Zstandard frame format (`zstandard`, checksum on like the `zstd` CLI).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pushcap.push.pcapfile import parse_part_name

CHUNK_BYTES = 1 << 20
COMPRESS_TMP_SUFFIX = ".ztmp"  # `<part>.ztmp`: hidden like the part, never matched as a `.part`
COMPRESSED_MARK_SUFFIX = ".zdone"  # `<part>.zdone`: the part, renamed once its copy is complete

# codec -> (lowest level, highest level, default level); the defaults are the CLI tools' own
_LEVELS = {"gzip": (1, 9, 6), "lz4": (1, 12, 1), "zstd": (1, 19, 3)}


class CompressError(ValueError):
    """A PipeCmd that is not one of the known compressors (message names the token and the fix)."""


@dataclass(frozen=True)
class Codec:
    """A parsed PipeCmd. `threads` is zstd's worker count: -1 for `-T0` (one per core)."""

    name: str
    level: int
    threads: int = 0

    def describe(self) -> str:
        threads = f" threads={self.threads}" if self.threads else ""
        return f"{self.name} level {self.level}{threads}"


def parse_pipe_cmd(pipe_cmd: str | None) -> Codec | None:
    """The codec a PipeCmd asks for, or None for no compression (None, "" or `cat`).

    Accepted: `gzip -c [-1..-9]`, `lz4 -c [-1..-12]`, `zstd -c [-1..-19] [-T<n>]`, `cat`.
    `-c` (write to stdout) is what FMADIO's pipe needs and is implied here.
    """
    if pipe_cmd is None or not pipe_cmd.strip():
        return None
    words = pipe_cmd.split()
    name, options = words[0], words[1:]
    if name == "cat" and not options:
        return None
    if name not in _LEVELS:
        raise CompressError(f'PipeCmd "{pipe_cmd}": unknown compressor "{name}" '
                            f'(known: gzip -c -N, lz4 -c, zstd -c [-N] [-T0], cat)')
    low, high, level = _LEVELS[name]
    threads = 0
    for option in options:
        if option == "-c":
            continue
        if option[1:].isdigit() and option.startswith("-") and low <= int(option[1:]) <= high:
            level = int(option[1:])
        elif name == "zstd" and option.startswith("-T") and option[2:].isdigit():
            threads = int(option[2:]) or -1
        else:
            raise CompressError(f'PipeCmd "{pipe_cmd}": option "{option}" is not supported for '
                                f"{name} (levels -{low}..-{high}"
                                f"{', -T<threads>' if name == 'zstd' else ''})")
    return Codec(name, level, threads)


def compress_file(src: Path, dst: Path, codec: Codec) -> int:
    """Stream `src` through `codec` into `dst` (created, fsynced); returns the bytes written.

    `dst` is removed if compression fails, so no half-written output is left for a later publish.
    """
    try:
        with src.open("rb") as fin, dst.open("wb") as fout:
            if codec.name == "gzip":
                import gzip  # here, like the other codecs: a replay with no PipeCmd never needs it
                import shutil

                # no file name or time in the header: the same input gives the same bytes
                with gzip.GzipFile(filename="", mode="wb", compresslevel=codec.level,
                                   fileobj=fout, mtime=0) as gz:
                    shutil.copyfileobj(fin, gz, CHUNK_BYTES)
            elif codec.name == "lz4":
                _lz4_stream(fin, fout, codec.level)
            else:
                _zstd_stream(fin, fout, codec)
            fout.flush()
            os.fsync(fout.fileno())
            return fout.tell()
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def _lz4_stream(fin, fout, level: int) -> None:
    import lz4.frame

    # lz4.frame levels: 0-2 are the fast mode (the CLI's -1), 3+ high compression (the CLI's -3+)
    compressor = lz4.frame.LZ4FrameCompressor(compression_level=0 if level <= 2 else level,
                                              content_checksum=True)
    fout.write(compressor.begin())
    while chunk := fin.read(CHUNK_BYTES):
        fout.write(compressor.compress(chunk))
    fout.write(compressor.flush())


def _zstd_stream(fin, fout, codec: Codec) -> None:
    import zstandard

    compressor = zstandard.ZstdCompressor(level=codec.level, threads=codec.threads,
                                          write_checksum=True)
    compressor.copy_stream(fin, fout, read_size=CHUNK_BYTES, write_size=CHUNK_BYTES)


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
        if not _is_ours(part, base):
            continue
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
