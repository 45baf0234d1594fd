"""Reading Datadog's `ip-ranges.json` (https://ip-ranges.datadoghq.com/) once, at load.

The file is Datadog's as published: a JSON object whose values that are objects are services
(`agents`, `api`, `logs`, `synthetics`...), each with `prefixes_ipv4` and `prefixes_ipv6` lists
of CIDR prefixes; other members (`version`, `modified`) and other keys of a service (the
synthetics' `prefixes_ipv4_by_location`) are not ranges and are skipped, as
tcpdump-aggregator-dd skips them. Both `pushcap flows --datadog-ranges` and a flows target's
`DatadogRanges` read it here, so they accept and refuse the same files; the lookup itself is
flows/export.py's.

Refused, each with a FieldError saying what and how to fix it: a file that cannot be read or
is larger than defaults.DATADOG_RANGES_MAX_BYTES (not the ranges file), text that is not JSON,
a prefix list that is not a list of strings, a string that is not a prefix, and a file with no
prefix at all (a file that parses but is not the ranges: every record would say "none").
A prefix with host bits set (`10.1.2.3/24`) is taken as its network, as Python's
`ip_network(strict=False)` does.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pushcap import defaults
from pushcap.config.field_check import FieldError
from pushcap.config.model import DatadogRangesFile

PREFIX_KEYS = ("prefixes_ipv4", "prefixes_ipv6")
_FIX = "give a copy of Datadog's ip-ranges.json (https://ip-ranges.datadoghq.com/)"


def read_datadog_ranges(path: str) -> DatadogRangesFile:
    """The services and prefixes of the ranges file at `path`; FieldError if unusable."""
    import json  # only for a flows target with DatadogRanges: not in every start-up

    text = _read(Path(path))
    try:
        doc = json.loads(text)
    except ValueError as exc:  # also a UnicodeDecodeError: not UTF-8
        raise FieldError(f"is not JSON ({_one_line(exc)}); {_FIX}") from None
    if not isinstance(doc, dict):
        raise FieldError(f"holds a JSON {type(doc).__name__}, not an object of services; {_FIX}")
    services = tuple((str(name), _prefixes(str(name), value))
                     for name, value in doc.items() if isinstance(value, dict))
    if not any(prefixes for _, prefixes in services):
        raise FieldError(f"holds no {' or '.join(PREFIX_KEYS)} list; {_FIX}")
    return DatadogRangesFile(path, services)


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(defaults.DATADOG_RANGES_MAX_BYTES + 1)
    except OSError as exc:
        raise FieldError(f"cannot be read ({exc.strerror or exc}); {_FIX}") from None
    if len(data) > defaults.DATADOG_RANGES_MAX_BYTES:
        raise FieldError(f"is larger than {defaults.DATADOG_RANGES_MAX_BYTES} bytes, so not "
                         f"Datadog's ranges; {_FIX}")
    return data


def _prefixes(service: str, value: dict) -> tuple[str, ...]:
    out: list[str] = []
    for key in PREFIX_KEYS:
        listed = value.get(key, [])
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise FieldError(f"{service}.{key} is not a list of prefixes as strings; {_FIX}")
        for prefix in listed:
            try:
                out.append(str(ipaddress.ip_network(prefix, strict=False)))
            except ValueError:
                import json

                raise FieldError(f"{service}.{key} holds {json.dumps(prefix)[:80]}, which is "
                                 f"not an IP prefix like \"192.0.2.0/24\"; {_FIX}") from None
    return tuple(out)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
