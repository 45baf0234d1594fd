"""What a keeper finds of its series on disk when it starts, and what a crash left there.

The series' files come oldest first, the order retention learns them in; an index counts only
while it describes its file as the file is (otherwise the keeper rebuilds it at a launch). The
index folder's repair runs at a launch only (keeper.py): at a reload or in a replay a
neighbour's temporaries may be live.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pushcap.archive.layout import PART_SUFFIX, SeriesFiles, data_of_index, index_dir, index_path

# pyarrow (index_file) is imported when an index is read: a daemon whose targets have no Index
# never pays for it at start.
if TYPE_CHECKING:
    from pushcap.archive.index_meta import IndexMeta

log = logging.getLogger("pushcap.archive")


def files_oldest_first(files: SeriesFiles) -> list[tuple[Path, int]]:
    """(path, size) of the series' files now on disk, by modification time, then name (a file
    deleted while listed is left out)."""
    found = []
    for entry in files.listing():
        try:
            found.append((entry.stat().st_mtime_ns, entry.name, Path(entry.path),
                          entry.stat().st_size))
        except FileNotFoundError:
            continue
    return [(path, size) for _, _, path, size in sorted(found)]


def usable_index(path: Path, size: int) -> tuple[IndexMeta | None, int]:
    """(figures, size) of `path`'s index when it describes the file as it is, else (None, 0)."""
    from pushcap.archive.index_file import IndexReader, IndexUnusable

    index = index_path(path)
    try:
        reader = IndexReader(index)
        if reader.meta.data_size != size:
            return None, 0
        return reader.meta, index.stat().st_size
    except (FileNotFoundError, IndexUnusable):
        return None, 0


def repair_index_folder(files: SeriesFiles, label: str) -> None:
    """Remove what a crash left among the series' indexes: a hidden part (a crash while it was
    written) and an index whose data file is gone (retention deleted the data, a crash kept
    the index). Other series' indexes in the folder are left alone."""
    folder = index_dir(files.folder)
    if not folder.is_dir():
        return
    for index in folder.iterdir():
        data = data_of_index(index)
        if data is None or not files.owns(data.name):
            continue
        if index.name.endswith(PART_SUFFIX):  # a crash while it was written
            index.unlink(missing_ok=True)
            log.info("event=index_part_removed %s file=%s", label, index)
        elif not data.exists():  # retention deleted the data, a crash kept the index
            index.unlink(missing_ok=True)
            log.info("event=index_orphan_removed %s file=%s", label, index)
