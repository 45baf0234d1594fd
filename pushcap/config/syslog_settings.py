"""`[syslog]` of pcapdaemon.toml (pcapdaemon's priority and tag, plus pushcap's address).

Parsed with the rest of the file, so `pushcap check` refuses what `run` would; obs.py only turns
the result into a logging handler.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushcap import defaults
from pushcap.config.model import ConfigError
from pushcap.config.toml_section import TomlSection

KNOWN_KEYS = {"priority", "tag", "address"}


@dataclass(frozen=True)
class SyslogSettings:
    """priority: facility * 8 + severity; address: a socket path or `udp://host:port`."""

    priority: int = defaults.SYSLOG_PRIORITY
    tag: str = defaults.SYSLOG_TAG
    address: str | tuple[str, int] = defaults.SYSLOG_ADDRESS


def parse_syslog(section: dict, source: str) -> SyslogSettings:
    sec = TomlSection(section, "syslog", KNOWN_KEYS, source)
    # 0 is pcapdaemon's "not set" (its validator then takes 85), not kern.emerg
    priority = sec.integer("priority", defaults.SYSLOG_PRIORITY, 0, 191) \
        or defaults.SYSLOG_PRIORITY
    tag = sec.text("tag", defaults.SYSLOG_TAG)
    if any(c in tag for c in " :[]\n"):
        raise ConfigError(f"{sec.where('tag')}: {tag!r} must be a single word")
    address = sec.text("address", defaults.SYSLOG_ADDRESS)
    return SyslogSettings(priority, tag, _address(address, sec))


def _address(value: str, sec: TomlSection) -> str | tuple[str, int]:
    if not value.startswith("udp://"):
        return value
    host, _, port = value[6:].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{sec.where('address')}: {value!r} must be a socket path or "
                          "udp://host:port")
    return host.strip("[]"), int(port)
