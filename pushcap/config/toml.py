"""pcapdaemon.toml: pcapdaemon's sections, plus pushcap's own, parsed once into frozen dataclasses.

Every section becomes a dataclass here, in one pass: [general], [redis] and [cloudshark] (with
a command line's pcapdaemon flags over them), [s3], [sqs] and [kafka] the trigger settings
(pcapdaemon.py, s3_settings.py, listener_settings.py), [syslog],
[rclone], [status], [[interface]] and [ring]. tomllib reports no line for a value, and a message
that may not show a value (a token, a password) must at least say where it is, so the tables
are first read as LineTable: a dict that also knows each key's line (toml_section.py).
"""

from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from pushcap import defaults
from pushcap.config.model import ConfigError, DaemonConfig, InterfaceConfig, RingConfig
from pushcap.config.pcapdaemon import GENERAL_TRIGGER_KEYS, pcapdaemon_flags, trigger_settings
from pushcap.config.rclone_settings import parse_settings
from pushcap.config.syslog_settings import parse_syslog

if TYPE_CHECKING:
    import argparse

from pushcap.config.toml_section import (  # noqa: F401 - line machinery, importable from here
    SECRET_KEY,
    LineTable,
    TomlSection,
    array_table_lines,
    key_lines,
    line_of,
)

KNOWN_SECTIONS = {"general", "cloudshark", "redis", "syslog", "interface", "ring", "rclone",
                  "status", "push", "kafka", "s3", "sqs"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
MAX_INTERFACE_NAME_CHARS = 15  # Linux's IFNAMSIZ less the NUL; aliases may be longer
LOG_LEVELS = {"debug", "info", "warning", "error"}


def load_daemon_config(path: str | Path, args: argparse.Namespace | None = None, *,
                       trigger: bool = True) -> DaemonConfig:
    """The file, every section validated once; `args`: a command line's pcapdaemon flags,
    which override the file (`run`, `check`). `trigger=False` (`replay`) leaves the trigger
    sections out: a file that needs `run`'s flags (a -cstoken) is still a replay's config."""
    path, raw, text = _read(path)
    return parse_daemon_config(raw, path.name, text, pcapdaemon_flags(args), trigger=trigger)


def load_status_address(path: str | Path) -> tuple[str, int]:
    """Only `[status]` (host, port): what `pushcap status` and `reload` need to find the
    daemon, whatever else the file holds."""
    path, raw, text = _read(path)
    section = raw.get("status", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path.name}: [status] must be a table")
    found = _status(LineTable(section, key_lines(text).get("status", {})), path.name)
    return found["status_host"], found["status_port"]


def _read(path: str | Path) -> tuple[Path, dict, str]:
    path = Path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name}: is not UTF-8 text (a TOML file was expected)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: {exc}") from exc
    except RecursionError:  # arrays or inline tables nested a thousand deep
        raise ConfigError(f"{path.name}: values nested too deeply (arrays or tables inside "
                          "each other); a pcapdaemon.toml needs at most two levels") from None
    return path, raw, text


def parse_daemon_config(raw: dict, source: str, text: str | None = None,
                        flags: dict | None = None, *, trigger: bool = True,
                        default_local_dir: Path = Path(defaults.TRIGGER_LOCAL_DIR)
                        ) -> DaemonConfig:
    """Validate the parsed file; `text`, when given, lets messages name a key's line; `flags`
    (pcapdaemon's, by name) override the file's trigger settings."""
    unknown = set(raw) - KNOWN_SECTIONS
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)} "
                          f"(known: {sorted(KNOWN_SECTIONS)})")
    for section in ("general", "cloudshark", "redis", "syslog", "ring", "rclone", "status",
                    "push", "kafka", "s3", "sqs"):
        if not isinstance(raw.get(section, {}), dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
    lines = key_lines(text) if text is not None else {}
    tables = {name: LineTable(raw.get(name, {}), lines.get(name, {}))
              for name in ("general", "redis", "cloudshark", "syslog", "rclone", "status",
                           "push", "kafka", "s3", "sqs", "ring")}
    general = tables["general"]
    gen = TomlSection(general, "general", GENERAL_KEYS, source)  # an unknown key: its line
    node = gen.text("node", socket.gethostname())
    level = general.get("loglevel", "info")
    if not isinstance(level, str) or level not in LOG_LEVELS:
        raise ConfigError(f"{gen.where('loglevel')} = {level!r}: use one of "
                          f"{sorted(LOG_LEVELS)}")
    return DaemonConfig(
        source_file=source,
        node_name=node,
        interfaces=_interfaces(raw.get("interface", []), source,
                               array_table_lines(text, "interface") if text else []),
        ring=_ring(tables["ring"], source),
        log_level=level,
        trigger=trigger_settings(general, tables["redis"], tables["cloudshark"], node, source,
                                 flags or {}, default_local_dir=default_local_dir,
                                 others={k: tables[k] for k in ("kafka", "s3", "sqs")})
        if trigger else None,
        syslog=parse_syslog(tables["syslog"], source) if raw.get("syslog") else None,
        rclone=parse_settings(tables["rclone"], source),
        **_status(tables["status"], source),
        log_dir=gen.optional_text("logdir"),
        **_push(tables["push"], source),
    )


def _push(section: dict, source: str) -> dict:
    """[push]: where the host declares its mount points (push/mount_guard.py)."""
    sec = TomlSection(section, "push", {"fstab", "mount_units"}, source)
    return {"fstab_path": sec.text("fstab", defaults.FSTAB_PATH),
            "mount_units_dir": sec.text("mount_units", defaults.MOUNT_UNITS_DIR)}


def _status(section: dict, source: str) -> dict:
    sec = TomlSection(section, "status", {"host", "port"}, source)
    return {"status_host": sec.text("host", defaults.STATUS_HOST),
            "status_port": sec.integer("port", defaults.STATUS_PORT, 0, 65535)}


def _interfaces(entries: object, source: str, lines: list[int]) -> tuple[InterfaceConfig, ...]:
    """`lines`: where each `[[interface]]` header is, when the file's text was scanned (an
    inline `interface = [...]` array has none), so a message names the entry's line."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: at least one [[interface]] with a name is needed "
                          '(e.g. [[interface]] name = "lo")')
    result: list[InterfaceConfig] = []
    for n, entry in enumerate(entries, 1):
        where = f"{source}: [[interface]] {n}" + (
            f" (line {lines[n - 1]})" if len(lines) == len(entries) else "")
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            raise ConfigError(f"{where}: name {name!r} must be an interface name")
        if len(name) > MAX_INTERFACE_NAME_CHARS:
            raise ConfigError(f"{where}: name {name!r} is longer than an interface name can be "
                              f"({MAX_INTERFACE_NAME_CHARS} characters on Linux)")
        extra = set(entry) - {"name", "alias"}
        if extra:
            raise ConfigError(f"{where} ({name}): unknown key(s) {sorted(extra)}")
        alias = entry.get("alias", [])
        aliases = [alias] if isinstance(alias, str) else alias
        if not isinstance(aliases, list) or not all(
                isinstance(a, str) and SAFE_NAME.match(a) for a in aliases):
            raise ConfigError(f"{where} ({name}): alias must be a name or a list of names")
        if any(i.name == name for i in result):
            raise ConfigError(f"{where}: interface {name!r} is listed twice")
        result.append(InterfaceConfig(name, tuple(aliases)))
    return tuple(result)


def _number(section: TomlSection, key: str, default: float, minimum: float,
            maximum: float | None = None) -> float:
    value = section.values.get(key, default)
    # `not abs(value) < 1e300` refuses nan, inf and an integer beyond a float (which
    # math.isfinite and float() would raise OverflowError for)
    if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) < 1e300 \
            or value < minimum:
        raise ConfigError(f"{section.where(key)} = {value!r}: must be a number >= "
                          f"{_plain(minimum)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{section.where(key)} = {value!r}: must be at most "
                          f"{_plain(maximum)}")
    return value


def _plain(bound: float) -> str:
    """A bound as an operator would write it in the file (1048576, not 1.04858e+06)."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


GENERAL_KEYS = GENERAL_TRIGGER_KEYS | {"node", "loglevel", "logdir"}
RING_KEYS = ("max_seconds", "max_bytes", "batch_packets", "poll_timeout_ms", "kernel_buffer_bytes")


def _ring(table: dict, source: str) -> RingConfig:
    section = TomlSection(table, "ring", set(RING_KEYS), source)  # an unknown key: its line
    return RingConfig(
        max_seconds=float(_number(section, "max_seconds", defaults.RING_MAX_SECONDS, 1)),
        max_bytes=int(_number(section, "max_bytes", defaults.RING_MAX_BYTES, 1 << 20)),
        batch_packets=int(_number(section, "batch_packets", defaults.BATCH_PACKETS, 1,
                                  defaults.MAX_BATCH_PACKETS)),
        poll_timeout_ms=int(_number(section, "poll_timeout_ms", defaults.POLL_TIMEOUT_MS, 1)),
        kernel_buffer_bytes=int(_number(section, "kernel_buffer_bytes",
                                        defaults.KERNEL_BUFFER_BYTES, 1 << 20,
                                        defaults.KERNEL_BUFFER_MAX_BYTES)),
    )
