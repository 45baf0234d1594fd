"""Frozen configuration records shared by every part of pushcap.

Everything below `pushcap.config` receives these frozen records and never reads Lua, TOML or
flags, so a validated config cannot change under a running consumer. They are records
(record.py), not dataclasses, because creating a dataclass is start-up time (issue 15); they
compare, hash and freeze as frozen dataclasses, and dataclasses.replace works on them.
"""

from __future__ import annotations

from enum import StrEnum

from pushcap import defaults
from pushcap.config.record import field, record

TYPE_CHECKING = False  # typing's flag without importing typing: replay start-up (issue 15)
if TYPE_CHECKING:
    from pushcap.config.codec import Codec
    from pushcap.config.pcapdaemon import TriggerSettings
    from pushcap.config.rclone_settings import RcloneSettings
    from pushcap.config.syslog_settings import SyslogSettings


class ConfigError(Exception):
    """A configuration file or option is invalid; the message names file, line, target and field."""


class PushMode(StrEnum):
    FILE = "File"
    RCLONE = "rclone"
    FLOWS = "flows"  # pushcap: per-flow statistics as JSON over UDP instead of pcap files


class SplitKind(StrEnum):
    TIME = "time"
    BYTE = "byte"


@record(frozen=True)
class SplitRule:
    """How a target cuts its output into files.

    TIME: windows of `value` nanoseconds aligned to multiples of `value` since the epoch.
    BYTE: a file never exceeds `value` bytes (header included) unless one packet alone does.
    """

    kind: SplitKind
    value: int

    def describe(self) -> str:
        if self.kind is SplitKind.TIME:
            return f"time {self.value / 1e9:g} s"
        return f"size {self.value} B"


@record(frozen=True)
class NamingRule:
    """A FileName mode as written in the Lua file (e.g. `--filename-epoch-sec-startend`).

    `strftime` holds the format for `--filename-strftime`, else None.
    """

    mode: str
    strftime: str | None = None

    def describe(self) -> str:
        return f"{self.mode} {self.strftime!r}" if self.strftime else self.mode


@record(frozen=True)
class KeepRule:
    """`Keep = "--keep-bytes 500e9 --keep-files N --keep-time <ns> --keep-free <percent>"`: how
    much of a File target's published history stays on disk (pushcap/archive/retention.py).

    Every limit given applies (None: not limited that way); the oldest files go first.
    `max_bytes` counts the files and their indexes; `min_free_percent` is a floor of free space
    on the file system holding them (Stenographer's DiskFreePercentage).
    """

    max_bytes: int | None = None
    max_files: int | None = None
    max_age_ns: int | None = None
    min_free_percent: float | None = None

    def describe(self) -> str:
        parts = []
        if self.max_bytes is not None:
            parts.append(f"{self.max_bytes} B")
        if self.max_files is not None:
            parts.append(f"{self.max_files} files")
        if self.max_age_ns is not None:
            parts.append(f"{self.max_age_ns / 1e9:g} s")
        if self.min_free_percent is not None:
            parts.append(f"{self.min_free_percent:g}% free")
        return "keep " + ", ".join(parts)


@record(frozen=True)
class DatadogRangesFile:
    """Datadog's `ip-ranges.json` as read and checked at load (config/datadog_ranges.py).

    The prefixes themselves, not only the path: the file is read once, when the config is
    loaded, so a broken file is a load error naming the target, and a reload after the file
    changed sees a changed target (and hands its interval over to one using the new ranges).
    `services` holds (service, normalized prefixes) in the file's order.
    """

    path: str
    services: tuple[tuple[str, tuple[str, ...]], ...]

    def prefixes(self) -> int:
        return sum(len(prefixes) for _, prefixes in self.services)


@record(frozen=True)
class TargetConfig:
    """One push target from push_realtime.lua, validated."""

    index: int  # 1-based position in Config.Target, used in messages when Desc is unusable
    desc: str
    mode: PushMode
    path: str  # output prefix: files are `<path>_<name>.pcap`
    split: SplitRule
    naming: NamingRule
    filter_bpf: str | None = None
    interface: str | None = None  # interface name or alias; None = every captured interface
    pipe_cmd: Codec | None = None  # FMADIO PipeCmd as parsed by config/codec.py; None = plain
    file_suffix: str = ".pcap"  # FMADIO FileSuffix, e.g. ".pcap.gz"
    interval_s: float = defaults.FLOWS_INTERVAL_S  # flows targets: seconds per interval
    pack: bool = defaults.FLOWS_PACK  # flows targets: several records per datagram (JSON lines)
    datadog_ranges: DatadogRangesFile | None = None  # flows targets: ip-ranges.json, as read
    keep: KeepRule | None = None  # File targets: retention of published files (Keep)
    indexed: bool = False  # File targets: a Parquet index per published file (Index = true)
    # FMADIO's Decap: the filter sees packets with their encapsulation taken off. Off unless
    # asked for here; the Lua loader applies FMADIO's default (on, defaults.DECAP_DEFAULT).
    decap: bool = False
    cpu: tuple[int, ...] | None = None  # FMADIO's CPU: the CPUs the target's lanes run on
    script_new: tuple[str, ...] | None = None  # FMADIO's ScriptNew: argv run at each new file
    # what load accepted without a meaning, said once by `check` and once at start
    notices: tuple[str, ...] = field(default=(), compare=False)

    @property
    def folder(self) -> bool:
        """Path ends in `/`: files are `<name><suffix>` inside that folder, as FMADIO names
        them, rather than `<Path>_<name><suffix>`."""
        return self.path.endswith("/")

    @property
    def desc_file_name(self) -> str:
        """The Desc as a file name component (desc_names.py)."""
        from pushcap.config.desc_names import desc_file_name

        return desc_file_name(self.desc)

    @property
    def desc_log(self) -> str:
        """The Desc as the value of `target=` in a log line (desc_names.py)."""
        from pushcap.config.desc_names import log_value

        return log_value(self.desc)


@record(frozen=True)
class PushConfig:
    """push_realtime.lua, validated: its targets, and what it holds that pushcap accepts
    without a meaning (FMADIO's fields that only make sense on FMADIO), each said once: by
    `pushcap check`, and in one log line when `pushcap run` starts."""

    targets: tuple[TargetConfig, ...]
    notices: tuple[str, ...] = ()


@record(frozen=True)
class InterfaceConfig:
    """A `[[interface]]` entry of pcapdaemon.toml."""

    name: str
    aliases: tuple[str, ...] = ()


@record(frozen=True)
class RingConfig:
    """`[ring]`: bounds of each interface's in-memory ring (both apply; whichever is hit first)."""

    max_seconds: float
    max_bytes: int
    batch_packets: int  # packets per next_batch() call
    poll_timeout_ms: int  # libpcap read timeout: how late a quiet link's packets may reach the ring
    kernel_buffer_bytes: int = defaults.KERNEL_BUFFER_BYTES  # libpcap's buffer (tcpdump -B)


@record(frozen=True)
class DaemonConfig:
    """pcapdaemon.toml with pushcap's own sections."""

    source_file: str
    node_name: str
    interfaces: tuple[InterfaceConfig, ...]
    ring: RingConfig
    log_level: str = "info"
    trigger: TriggerSettings | None = None  # [general], [redis], [cloudshark] and the flags
    syslog: SyslogSettings | None = None  # no [syslog]: no syslog handler
    rclone: RcloneSettings | None = field(default=None, repr=False)  # None: the defaults
    status_host: str = defaults.STATUS_HOST
    status_port: int = defaults.STATUS_PORT
    log_dir: str | None = None  # [general] logdir: also write push_<Desc>.log per target
    fstab_path: str = defaults.FSTAB_PATH  # [push] fstab (push/mount_guard.py)
    mount_units_dir: str = defaults.MOUNT_UNITS_DIR  # [push] mount_units

    def interface_names(self) -> frozenset[str]:
        """Every name and alias a target's Interface may use."""
        return frozenset(n for i in self.interfaces for n in (i.name, *i.aliases))

    def resolve_interface(self, name_or_alias: str) -> tuple[str, ...]:
        """Interface names that a name or alias refers to (an alias may cover several)."""
        by_name = [i.name for i in self.interfaces if i.name == name_or_alias]
        if by_name:
            return tuple(by_name)
        return tuple(i.name for i in self.interfaces if name_or_alias in i.aliases)
