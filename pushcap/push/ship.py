"""Delivery of finished files: where a series writes its temporary files and where they go.

Both modes first compress a finished file if the target has a PipeCmd (in-process, see
`compress`), keeping the part until the result is published, so a crash at any point leaves the
part to be repaired and delivered again.

File mode publishes in place (a rename beside the destination). rclone mode renames the finished
file into the series' local spool and returns at once; the series' uploader thread sends the spool
to the remote (see `uploader` for the exactly-once and atomic-upload rules). Capture and rolling
therefore never wait for the network.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pushcap import defaults
from pushcap.config.codec import Codec
from pushcap.config.model import ConfigError, PushMode, TargetConfig
from pushcap.push import pcapfile
from pushcap.push.compress import compressed_mark, compressed_part, remove_stale

# rclone_remote, spool and uploader (subprocess, hashlib, configparser, ...) are imported by
# RcloneShipper itself: File targets, `replay` included, never need them (start-up time).
TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from pushcap.push.rclone_remote import RcloneSettings

log = logging.getLogger("pushcap.push")


class ShipError(Exception):
    """A finished file could not be handed over for delivery (message names target and fix)."""


def _compression(codec: Codec | None) -> str:
    return f", {codec.describe()}" if codec else ""


class FileShipper:
    """Publish under `<prefix>_<name><FileSuffix>` in the destination folder itself."""

    def __init__(self, target: TargetConfig, prefix: Path) -> None:
        self.target = target
        self.codec = target.pipe_cmd
        self.part_prefix = prefix  # temporary files live beside their destination
        self.files_published = 0

    def deliver(self, part: Path, name: str) -> Path:
        """Publish a finished part, compressed first with a PipeCmd.

        After a crash the next start must tell whether the compressed copy was published, or
        the part would be published again as `_2` (Series.repair_leftovers):
        - with hard links, the copy is linked to its final name and unlinked only after the
          part: a part beside a copy that is a published file (same inode) is done;
        - without them, the part is renamed to its mark (`compressed_mark`) before the copy is
          renamed to its final name: a mark without its copy is done, a mark beside its copy
          is not (the copy was never renamed)."""
        src = compressed_part(part, self.codec)
        if src == part:
            final = pcapfile.publish(part, self.part_prefix, name, self.target.file_suffix)
        else:
            left = [part]

            def mark() -> None:
                left[0] = compressed_mark(part)
                os.rename(part, left[0])

            final = pcapfile.publish(src, self.part_prefix, name, self.target.file_suffix,
                                     keep=True, before_rename=mark)
            left[0].unlink()
            src.unlink(missing_ok=True)  # gone already where publish() had to rename
        self.files_published += 1
        return final

    def describe(self) -> str:
        archive = (", indexed" if self.target.indexed else "") + \
            (f", {self.target.keep.describe()}" if self.target.keep else "")
        prefix = self.part_prefix  # `<Path>_*`, or a folder's `<folder>/*`
        shown = f"{prefix}*" if isinstance(prefix, pcapfile.FolderPrefix) else f"{prefix}_*"
        return f"{shown}{self.target.file_suffix}{_compression(self.codec)}{archive}"

    def start(self, clean_stale: bool = True) -> None:
        """Remove compression temporaries a crash left (their part is delivered again). Not in
        the constructor: `pushcap check` builds shippers beside a running daemon; not at a
        reload (clean_stale False), where a predecessor's temporaries may be live."""
        if clean_stale:
            remove_stale(self.part_prefix.parent, self.part_prefix.name)

    def close(self, timeout_s: float = defaults.SHIP_CLOSE_TIMEOUT_S) -> None:
        """Nothing to drain in File mode."""

    def stats(self) -> dict:
        return {"files_published": self.files_published}


class RcloneShipper:
    """rclone targets: finished files go to `<spool_dir>/<Desc>/<series>.queue/` and an uploader
    thread (started by `start()`) sends them to `<remote>:<dir of Path>/<series>_<name><suffix>`.

    Temporary parts are written in `<spool_dir>/<Desc>/`, on the spool's file system, so entering
    the queue is a rename.
    """

    def __init__(self, target: TargetConfig, prefix: Path,
                 rclone: dict | RcloneSettings | None = None) -> None:
        from pushcap.push.rclone_remote import Rclone, RcloneError, parse_settings, split_remote
        from pushcap.push.spool import Spool
        from pushcap.push.uploader import Uploader

        self.target = target
        self.codec = target.pipe_cmd
        self.settings = parse_settings(rclone)
        try:
            self.remote_spec, rel = split_remote(target.path)
        except ValueError as exc:
            raise ConfigError(f'target {target.index} "{target.desc}": Path: {exc}') from None
        # the folder comes from Path, the base name from the series prefix (`<base>_<interface>`)
        trimmed = rel.rstrip("/")
        folder = trimmed.rpartition("/")[0] + "/" if "/" in trimmed else ""
        if target.folder:  # `remote:dir/`: the files go into dir itself
            folder = rel
        self.dest_folder, self.dest_base = folder, prefix.name
        spool_root = Path(self.settings.spool_dir) / target.desc_file_name
        self.part_prefix = spool_root / prefix.name if prefix.name else \
            pcapfile.FolderPrefix(spool_root)
        label = f"target={target.desc_log} series={prefix.name}"
        self.spool = Spool(spool_root / f"{prefix.name}.queue", self.settings.spool_max_bytes,
                           label)
        try:
            runner = Rclone(self.settings)
        except RcloneError as exc:
            raise ConfigError(f'target {target.index} "{target.desc}": {exc}') from None
        self.uploader = Uploader(self.spool, runner, self.remote_spec, target.file_suffix, label)

    def deliver(self, part: Path, name: str) -> Path:
        """Queue the finished file for upload; returns its spool path. Never waits for the
        network (the byte limit may drop older queued files, loudly)."""
        src = compressed_part(part, self.codec)
        try:
            dest = pcapfile.series_file_name(self.dest_base, name)
            entry = self.spool.add(src, f"{self.dest_folder}{dest}{self.target.file_suffix}")
        except OSError as exc:
            raise ShipError(f'target "{self.target.desc}": cannot queue {part.name} in '
                            f"{self.spool.directory}: {exc} (check [rclone] spool_dir)") from exc
        if src != part:
            part.unlink()
        self.uploader.wake()
        return entry.path

    def describe(self) -> str:
        from pushcap.push.rclone_remote import display_path

        shown = display_path(self.remote_spec + self.dest_folder
                             + pcapfile.series_file_name(self.dest_base, "*"))
        return (f"{shown}{self.target.file_suffix} via rclone{_compression(self.codec)} "
                f"(spool {self.spool.directory}, max {self.settings.spool_max_bytes} B)")

    def start(self, clean_stale: bool = True) -> None:
        """Start uploading (idempotent); whatever an earlier run left in the spool goes first.
        With clean_stale, also removes what a crash left: compression temporaries here, spool
        move-ins and orphan notes in the uploader. Never in the constructor, which `pushcap
        check` runs beside a live daemon, nor at a reload (clean_stale False), where they may
        be a predecessor's live files."""
        if clean_stale:
            remove_stale(self.part_prefix.parent, self.part_prefix.name)
        self.uploader.start(clean_stale)

    def close(self, timeout_s: float = defaults.SHIP_CLOSE_TIMEOUT_S) -> None:
        """Upload what is queued within `timeout_s`; the rest stays spooled for the next start."""
        self.uploader.close(timeout_s)

    def stats(self) -> dict:
        """files_pending, bytes_pending, oldest_pending_age_s (None while the spool cannot be
        listed), dropped_files, dropped_bytes, uploads_ok, uploads_failed, spool_errors,
        already_present, name_conflicts (names other writers took), bytes_uploaded,
        upload_mb_per_s, last_upload, last_error (scrubbed of credentials), last_error_age_s."""
        return self.uploader.stats()


def make_shipper(target: TargetConfig, prefix: Path,
                 rclone: dict | RcloneSettings | None = None) -> FileShipper | RcloneShipper:
    """The shipper for one series; `prefix` is `<Path>` or `<Path>_<interface>` (for rclone the
    part after the remote's colon). `rclone` is DaemonConfig.rclone (the `[rclone]` section)."""
    if target.mode is PushMode.RCLONE:
        return RcloneShipper(target, prefix, rclone)
    return FileShipper(target, prefix)
