"""Which consumer serves a target on an interface, and under what output prefix.

Shared by live capture (engine.py) and replay (replay.py): a target becomes a pcap `Series` or,
for `Mode = "flows"`, a flow exporter, once per interface it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pushcap.capture.bpf import compile_target_filter
from pushcap.capture.consumer import Consumer
from pushcap.config.model import ConfigError, DaemonConfig, PushMode, TargetConfig
from pushcap.push.pcapfile import FolderPrefix
from pushcap.push.target import Series


def series_prefix(target: TargetConfig, interface: str, several: bool) -> Path | FolderPrefix:
    """Output prefix of a target's series: `<Path>` or, when it reads several interfaces,
    `<Path>_<interface>` (a pcap file holds one link type, so each interface has its own).
    For rclone, the part of Path after the remote (`remote:` or `:backend,opts:`); the path
    itself may hold colons (`remote:dir/a:b/all`), so it is split as rclone does. A Path
    ending in `/` is a folder: its files are `<name><suffix>` in it (FolderPrefix), or with
    several interfaces `<interface>_<name><suffix>`."""
    base = target.path
    if target.mode is PushMode.RCLONE:
        from pushcap.push.rclone_remote import split_remote  # not loaded for File targets

        try:
            base = split_remote(target.path)[1]
        except ValueError:  # refused by the config check; the desc keeps `pushcap check` going
            base = ""
    if target.folder:
        folder = Path(base.rstrip("/") or "/")
        return folder / interface if several else FolderPrefix(folder)
    if target.mode is PushMode.RCLONE:
        base = base.rstrip("/") or target.desc_file_name
    return Path(f"{base}_{interface}" if several else base)


def interfaces_of(target: TargetConfig, config: DaemonConfig) -> tuple[str, ...]:
    if target.interface is None:
        return tuple(i.name for i in config.interfaces)
    names = config.resolve_interface(target.interface)
    if not names:
        known = sorted({i.name for i in config.interfaces} |
                       {a for i in config.interfaces for a in i.aliases})
        raise ConfigError(f'target {target.index} "{target.desc}": Interface '
                          f'"{target.interface}" is not captured (known: {", ".join(known)})')
    return names


ConsumerFactory = Callable[..., Consumer]  # make_consumer's signature


def make_consumer(target: TargetConfig, interface: str, several: bool, linktype: int,
                  snaplen: int, rclone_settings=None) -> Consumer:
    """A pcap Series, or a flow exporter for `Mode = "flows"` targets; not started (the caller
    says whether this is a launch: `start(at_launch)`)."""
    if target.mode is PushMode.FLOWS:
        from pushcap.flows.target import FlowTarget

        return FlowTarget(target, interface, linktype, snaplen)
    return Series(target, interface, series_prefix(target, interface, several), linktype,
                  snaplen, rclone_settings)


def check_filters(targets: tuple[TargetConfig, ...], linktype: int, snaplen: int) -> None:
    """Compile each target's filter for an interface's link type, naming the target on error."""
    for target in targets:
        compile_target_filter(target, linktype, snaplen)
