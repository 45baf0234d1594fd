"""Which consumer serves a target on an interface, and under what output prefix.

Shared by live capture (engine.py) and replay (replay.py): a target becomes a pcap `Series` or,
for `Mode = "flows"`, a flow exporter, once per interface it reads.
"""

from __future__ import annotations

from pathlib import Path

from pushcap.capture.bpf import BpfError, compile_shared
from pushcap.config.model import ConfigError, DaemonConfig, PushMode, TargetConfig
from pushcap.push.target import Series


def series_prefix(target: TargetConfig, interface: str, several: bool) -> Path:
    """Output prefix of a target's series: `<Path>` or, when it reads several interfaces,
    `<Path>_<interface>` (a pcap file holds one link type, so each interface has its own).
    For rclone, the part of Path after the remote (`remote:` or `:backend,opts:`); the path
    itself may hold colons (`remote:dir/a:b/all`), so it is split as rclone does."""
    base = target.path
    if target.mode is PushMode.RCLONE:
        from pushcap.push.rclone_remote import split_remote  # not loaded for File targets

        try:
            rel = split_remote(target.path)[1]
        except ValueError:  # refused by the config check; the desc keeps `pushcap check` going
            rel = ""
        base = rel.rstrip("/") or target.desc
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


def make_consumer(target: TargetConfig, interface: str, several: bool, linktype: int,
                  snaplen: int, rclone_settings: dict | None = None, repair: bool = True,
                  start: bool = True):
    """A pcap Series, or a flow exporter for `Mode = "flows"` targets."""
    if target.mode is PushMode.FLOWS:
        from pushcap.flows.target import FlowTarget

        consumer = FlowTarget(target, interface, linktype, snaplen)
    else:
        consumer = Series(target, interface, series_prefix(target, interface, several), linktype,
                          snaplen, rclone_settings)
        if repair:  # at start only: during a reload a `.part` may be a live file
            consumer.repair_leftovers()
        if start:
            consumer.start(clean_stale=repair)
    consumer.several = several  # with the target, what identifies it across a reload
    return consumer


def check_filters(targets: tuple[TargetConfig, ...], linktype: int, snaplen: int) -> None:
    """Compile each target's filter for an interface's link type, naming the target on error."""
    for target in targets:
        try:
            compile_shared(target.filter_bpf, linktype, snaplen)
        except BpfError as exc:
            raise ConfigError(f'target {target.index} "{target.desc}": FilterBPF '
                              f'"{target.filter_bpf}": {exc} (link type {linktype})') from exc
