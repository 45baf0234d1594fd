"""The fields of pushcap's own Mode flows: Path = "udp://HOST:PORT", Interval (seconds), Pack
and DatadogRanges.

A flows target sends flow statistics as JSON over UDP instead of writing files, so its Path is
a UDP address (IPv4, bracketed IPv6 or a host name, port 1-65535) and Interval sets how often;
Pack = true puts several records in a datagram (JSON lines) instead of one record per datagram,
which is what tcpdump-aggregator sends and a Logstash `udp` input with a `json` filter parses;
DatadogRanges names Datadog's ip-ranges.json, read and checked here at load (datadog_ranges.py),
so a missing or broken file is a load error naming the target, like the `pushcap flows` option
`--datadog-ranges` it mirrors. The file fields are refused for flows (refuse_for_flows) and the
flows fields for File and rclone targets (refuse_interval, refuse_flows_only). Kept apart from
targets.py, which assembles a target from these rules.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pushcap import defaults
from pushcap.config.datadog_ranges import read_datadog_ranges
from pushcap.config.field_check import FieldError, field_text
from pushcap.config.model import DatadogRangesFile

_UDP_RE = re.compile(r"udp://(?P<host>\[[^\[\]/]*\]|[^\[\]/:]*):(?P<port>[0-9]{1,5})")
_HOSTNAME_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


# --- Mode flows -------------------------------------------------------------------------------


def refuse_for_flows(value: Any) -> None:
    raise FieldError(
        "has no meaning for Mode flows (flow statistics go to Path as JSON over UDP, not into"
        " files); remove it"
    )


def refuse_interval(value: Any) -> None:
    raise FieldError(
        "is only for Mode flows (seconds between flow statistics); a File or rclone target is"
        " cut into files by Split, remove it"
    )


def refuse_flows_only(value: Any) -> None:
    raise FieldError(
        "is only for Mode flows (how flow statistics are sent); a File or rclone target writes"
        " pcap files, remove it"
    )


def parse_pack(value: Any) -> bool:
    if value is None:
        return defaults.FLOWS_PACK
    if not isinstance(value, bool):
        raise FieldError(
            "must be true (several records per datagram, one JSON object per line) or false"
            " (one record per datagram, as tcpdump-aggregator sends), e.g. Pack = true"
        )
    return value


def parse_datadog_ranges(value: Any) -> DatadogRangesFile | None:
    example = 'DatadogRanges = "/etc/pushcap/ip-ranges.json"'
    path = field_text(value, example, required=False)
    return None if path is None else read_datadog_ranges(path)


def parse_udp_path(value: Any) -> str:
    example = '"udp://127.0.0.1:9000"'
    path = field_text(value, f"Path = {example} (flow statistics are sent there as JSON)")
    assert path is not None
    match = _UDP_RE.fullmatch(path)
    if not match:
        raise FieldError(
            f'must be "udp://HOST:PORT" for Mode flows, e.g. {example} or "udp://[::1]:9000"'
            " (an IPv6 address goes in brackets)"
        )
    host, port = match["host"], int(match["port"])
    if not _valid_host(host):
        raise FieldError(
            f"{host!r} is not an IPv4 address, a bracketed IPv6 address or a host name;"
            f" write e.g. {example}"
        )
    if not 1 <= port <= 65535:
        raise FieldError(f"port {match['port']} is not in 1-65535")
    return path


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return len(host) <= 253 and _HOSTNAME_RE.fullmatch(host) is not None


def parse_interval(value: Any) -> float:
    if value is None:
        return defaults.FLOWS_INTERVAL_S
    example = "Interval = 20"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"must be a number of seconds, e.g. {example}")
    if not defaults.FLOWS_INTERVAL_MIN_S <= value <= defaults.FLOWS_INTERVAL_MAX_S:
        raise FieldError(
            f"must be between {defaults.FLOWS_INTERVAL_MIN_S:g} and "
            f"{defaults.FLOWS_INTERVAL_MAX_S:g} seconds, e.g. {example}"
        )
    return float(value)
