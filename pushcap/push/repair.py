"""A crash's leftovers of a series: `.part` files cut at their last whole record and published.

At start only (a reload's or a replay's neighbours may have live temporaries), and for a part
of the series' own whose finishing failed (`finish_part`, see Publisher). A part that publish()
had already linked to its final name (or whose compressed copy it had) is removed, never
published twice; one without a whole packet is removed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from pushcap.push import pcapfile
from pushcap.push.compress import COMPRESS_TMP_SUFFIX, settle_mark, settle_marks

log = logging.getLogger("pushcap.push")


def published_as(part: Path, prefix: Path) -> Path | None:
    """The series file that is this very part (same inode), if publish() linked it before
    a crash. A link count above one alone proves nothing: a backup tool may hold the other
    link, and then the part still has to be published."""
    info = part.stat()
    if info.st_nlink < 2:
        return None
    for other in part.parent.glob(pcapfile.series_file_name(prefix.name, "*")):
        with contextlib.suppress(OSError):
            found = other.stat()
            if (found.st_dev, found.st_ino) == (info.st_dev, info.st_ino):
                return other
    return None


def repair_leftovers(prefix: Path, label: str,
                     publish: Callable[[Path, int, int], Path]) -> None:
    """Finish the temporary files a crash left under `prefix`: cut each at its last whole
    record and `publish(part, start_ns, last_ts_ns)` it."""
    if not prefix.parent.is_dir():
        return
    settle_marks(prefix.parent, prefix.name)
    for part in sorted(prefix.parent.glob(f".{prefix.name}.*{pcapfile.PART_SUFFIX}")):
        parsed = pcapfile.parse_part_name(part)
        if parsed is None or parsed[0] != prefix.name:
            continue
        finish_part(part, parsed[1], prefix, label, publish)


def finish_part(part: Path, start_ns: int, prefix: Path, label: str,
                publish: Callable[[Path, int, int], Path]) -> Path | None:
    """Cut one part of series `prefix` at its last whole record and publish it; the final
    path, or None when there was nothing to publish (no part, no whole packet in it, or
    published already). Raises what publish() raises; the part then stays."""
    settle_mark(part)
    if not part.exists():
        return None
    compressed = part.with_name(part.name + COMPRESS_TMP_SUFFIX)
    published = published_as(part, prefix)
    if published is None and compressed.exists():
        published = published_as(compressed, prefix)
    if published is not None:
        # publish() had linked it (or its compressed copy) to its final name when the
        # crash came, before the unlink: publishing again would copy it as `_2`.
        part.unlink()
        compressed.unlink(missing_ok=True)
        log.info("event=repair_already_published %s file=%s final=%s", label, part.name,
                 published)
        return None
    found = pcapfile.repair_part(part)
    if found is None:
        log.info("event=repair_empty %s file=%s", label, part.name)
        return None
    packets, _, last_ts = found
    final = publish(part, start_ns, last_ts)
    log.warning("event=repair_done %s file=%s packets=%d", label, final, packets)
    return final
