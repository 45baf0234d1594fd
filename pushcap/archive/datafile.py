"""A data file of the archive as an uncompressed capture file that can be mapped and read at
offsets: the file itself, or, for a file a PipeCmd compressed (gzip, LZ4 frame, Zstandard,
found by their magic numbers), a decompressed copy in a hidden temporary file of the index
folder, removed when done.

An index's record offsets are offsets in the uncompressed pcap stream, so an index is the same
whatever the file's compression; a compressed file is decompressed whole (a stream cannot be
read at an offset), which is the cost of compressing an archive that is queried.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pushcap import defaults
from pushcap.archive.layout import index_dir

MAGICS = {b"\x1f\x8b": "gzip", b"\x04\x22\x4d\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd"}


def _raise_read_only(folder: Path) -> None:
    raise PermissionError(f"{folder} is not writable")


def codec_of(path: Path) -> str | None:
    """"gzip", "lz4", "zstd", or None for an uncompressed file."""
    with path.open("rb") as f:
        head = f.read(4)
    for magic, name in MAGICS.items():
        if head.startswith(magic):
            return name
    return None


def _decompressor(codec: str, source):
    if codec == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=source, mode="rb")
    if codec == "lz4":
        import lz4.frame

        return lz4.frame.LZ4FrameFile(source, mode="rb")
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(source)


@contextlib.contextmanager
def uncompressed(path: Path, codec: str | None = None) -> Iterator[Path]:
    """`path` itself when it is not compressed, else a decompressed temporary copy."""
    codec = codec or codec_of(path)
    if codec is None:
        yield path
        return
    folder = index_dir(path.parent)
    try:
        folder.mkdir(exist_ok=True)
        os.access(folder, os.W_OK) or _raise_read_only(folder)
    except OSError:  # a read-only archive: the system's temporary folder
        folder = Path(tempfile.gettempdir())
    with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".tmp") as tmp:
        with path.open("rb") as source, _decompressor(codec, source) as stream:
            shutil.copyfileobj(stream, tmp, defaults.COMPRESS_CHUNK_BYTES)
        tmp.flush()
        yield Path(tmp.name)


def head(path: Path, size: int) -> bytes:
    """The first `size` bytes of the file's uncompressed content (only those are decompressed)."""
    codec = codec_of(path)
    with path.open("rb") as f:
        if codec is None:
            return f.read(size)
        with _decompressor(codec, f) as stream:
            return stream.read(size)
