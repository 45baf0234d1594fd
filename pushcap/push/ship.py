"""Delivery of finished files: where a series writes its temporary files and where they go.

File mode publishes in place (rename beside the destination). rclone mode keeps finished files
in a local spool until an uploader has delivered them (the uploader is a later stage; until then
the spool is where they wait, nothing is dropped).
"""

from __future__ import annotations

from pathlib import Path

from pushcap.config.model import PushMode, TargetConfig
from pushcap.push import pcapfile

SPOOL_DIR = Path("out/spool")


class FileShipper:
    """Publish under `<prefix>_<name><suffix>` in the destination folder itself."""

    def __init__(self, target: TargetConfig, prefix: Path) -> None:
        self.target = target
        self.part_prefix = prefix  # temporary files live beside their destination

    def deliver(self, part: Path, name: str) -> Path:
        return pcapfile.publish(part, self.part_prefix, name)

    def describe(self) -> str:
        return f"{self.part_prefix}_*.pcap"


class SpoolShipper(FileShipper):
    """rclone targets: finished files wait in the spool for the uploader."""

    def __init__(self, target: TargetConfig, prefix: Path) -> None:
        super().__init__(target, SPOOL_DIR / target.desc / prefix.name)

    def describe(self) -> str:
        return f"{self.target.path} (spooled in {self.part_prefix.parent})"


def make_shipper(target: TargetConfig, prefix: Path) -> FileShipper:
    """The shipper for one series; `prefix` is `<Path>` or `<Path>_<interface>`."""
    if target.mode is PushMode.RCLONE:
        return SpoolShipper(target, Path(prefix.name))
    return FileShipper(target, prefix)
