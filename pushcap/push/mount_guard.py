"""Never fill the disk below a share that is not mounted.

FMADIO's example pushes to `/mnt/remote0/push/`: with the NFS share not mounted, writing there
would create the folder on the root file system and fill `/` with captures. A Path below a mount
point the host declares (a line of `/etc/fstab`, or a systemd `.mount` unit's `Where=`) is
written only while that mount point really is mounted (`/proc/self/mountinfo`); meanwhile the
target waits (its lane stops reading, so its packets stay in the ring as long as the ring holds
them) and says why. Paths below no declared mount point are written as always.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from pushcap import defaults

# Not places one writes captures to, or not mount points at all.
_NOT_SHARES = {"/", "none", "swap"}


def _unescape(field: str) -> str:
    """fstab and mountinfo write a space as \\040 (and tab, newline, backslash likewise)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def fstab_mount_points(text: str) -> list[str]:
    """The mount points (second field) of an fstab's entries, comments and swap left out."""
    points = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#"):
            point = _unescape(fields[1])
            if point.startswith("/") and point not in _NOT_SHARES:
                points.append(os.path.normpath(point))
    return points


def unit_mount_points(units_dir: Path) -> list[str]:
    """`Where=` of every systemd `.mount` unit in a folder."""
    points = []
    try:
        units = sorted(units_dir.glob("*.mount"))
    except OSError:
        return points
    for unit in units:
        try:
            text = unit.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.strip().partition("=")
            if key.strip() == "Where" and value.strip().startswith("/"):
                points.append(os.path.normpath(value.strip()))
    return points


def mounted_points(mountinfo: str) -> set[str]:
    """Mount points mounted now (the fifth field of each /proc/self/mountinfo line)."""
    points = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) >= 5:
            points.add(os.path.normpath(_unescape(fields[4])))
    return points


def covering(path: str, points: Iterable[str]) -> str | None:
    """The deepest declared mount point that `path` lies in (itself or below), or None."""
    absolute = os.path.normpath(os.path.abspath(path))
    best = None
    for point in points:
        if point not in _NOT_SHARES and (absolute == point or
                                         absolute.startswith(point.rstrip("/") + "/")):
            if best is None or len(point) > len(best):
                best = point
    return best


class MountGuard:
    """Whether a target's folder may be written now.

    The declared mount points are read when the guard is made (the daemon's start or a
    reload); whether the one covering the folder is mounted is read at every check (one read
    of /proc/self/mountinfo, done per poll only while blocked and at most every
    MOUNT_CHECK_INTERVAL_S otherwise)."""

    def __init__(self, folder: str, fstab: Path | None = None, units_dir: Path | None = None,
                 mountinfo: Path = Path("/proc/self/mountinfo")) -> None:
        fstab = Path(defaults.FSTAB_PATH) if fstab is None else fstab
        units_dir = Path(defaults.MOUNT_UNITS_DIR) if units_dir is None else units_dir
        declared: list[str] = []
        try:
            declared += fstab_mount_points(fstab.read_text(errors="replace"))
        except OSError:
            pass
        declared += unit_mount_points(units_dir)
        self.mount_point = covering(folder, declared)
        self._mountinfo = mountinfo
        self._reason: str | None = None
        self._checked_s = -1e9

    def check(self) -> str | None:
        """`unmounted()`, read again at most every MOUNT_CHECK_INTERVAL_S while the share is
        there and at every call while it is not (so writing resumes within a poll)."""
        if self.mount_point is None:
            return None
        now = time.monotonic()
        if self._reason is None and now - self._checked_s < defaults.MOUNT_CHECK_INTERVAL_S:
            return None
        self._checked_s = now
        self._reason = self.unmounted()
        return self._reason

    def unmounted(self) -> str | None:
        """Why the folder must not be written now (its share is not mounted), or None."""
        if self.mount_point is None:
            return None
        try:
            mounted = mounted_points(self._mountinfo.read_text(errors="replace"))
        except OSError:
            return None  # cannot tell: write, as without a guard
        if self.mount_point in mounted:
            return None
        return f"{self.mount_point} is not mounted (declared in fstab or a mount unit)"
