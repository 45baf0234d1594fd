"""Flow records as JSON over UDP, as the tcpdump-aggregator sends them.

A record is the aggregator's JSON object, same keys in the same order and the same types
(`json.dumps` default separators, as the script uses), so a collector pipeline built for it
keeps working. By default each record is one datagram and nothing else, exactly the bytes of
the aggregator's `sendto(json.dumps(record))`: a Logstash `udp` input makes each datagram one
event and its `json` filter parses that event's text as one JSON value (elk-tcpdump, which the
aggregator was built from, is that pipeline), so two records in a datagram would be a parse
failure there. With `pack`, several records share a datagram, one per line ("\\n" after
each), for collectors that split a datagram into lines (Logstash's `json_lines` codec): fewer
datagrams per interval.

Either way a datagram never exceeds `max_datagram_bytes` (default 1400: with IP and UDP headers
it fits a 1500-byte MTU, so nothing is fragmented and a lost fragment never loses a whole
datagram; at most the UDP payload limit, 65507). A record that alone is longer (long host
names) is sent with its hosts as IPs, as before a name resolves; one still too long is dropped,
counted (`records_oversize`) and logged, never cut: a cut record is not JSON.

Sending is best effort and never fatal: a collector that is down (ICMP port unreachable, seen as
ECONNREFUSED on the connected socket's next send), no route, a full buffer... each failed
datagram is counted and logged, and the next interval tries again.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pushcap import defaults
from pushcap.config.datadog_ranges import read_datadog_ranges
from pushcap.config.field_check import FieldError
from pushcap.config.model import DatadogRangesFile

log = logging.getLogger("pushcap.flows")

TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # str(datetime.utcnow()), as the aggregator writes it


class FlowExportError(ValueError):
    """A flows destination or Datadog range file that cannot be used; the message says which."""


def parse_destination(path: str) -> tuple[str, int]:
    """`udp://HOST:PORT` (IPv6 as `udp://[::1]:PORT`; the port defaults to 10518)."""
    shown = json.dumps(path, ensure_ascii=False)  # quoted, a newline in it escaped
    if any(ord(c) < 32 or ord(c) == 127 for c in path):  # urlsplit would silently drop them
        raise FlowExportError(f"flows destination {shown}: contains a control character")
    try:
        parts = urlsplit(path)
        port = parts.port
    except ValueError as exc:  # a bad port, or an unclosed `[` of an IPv6 address
        raise FlowExportError(f"flows destination {shown}: {exc} (expected udp://HOST:PORT, "
                              "an IPv6 address in brackets: udp://[::1]:10518)") from None
    if parts.scheme != "udp" or not parts.hostname or parts.path not in ("", "/"):
        raise FlowExportError(f"flows destination {shown}: expected udp://HOST:PORT, e.g. "
                              f"udp://{defaults.FLOWS_HOST}:{defaults.FLOWS_PORT}")
    if port == 0:  # as a flows target's Path refuses it: not "no port given"
        raise FlowExportError(f"flows destination {shown}: port 0 is not in 1-65535")
    return parts.hostname, defaults.FLOWS_PORT if port is None else port


def format_time(ts_ns: int) -> str:
    """UTC with microseconds, e.g. `2016-09-08 23:27:40.090202` (always six digits)."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=ns // 1000).strftime(
        TIME_FORMAT)


class DatadogRanges:
    """Datadog's published `ip-ranges.json`: which service an address belongs to.

    Every object with `prefixes_ipv4` / `prefixes_ipv6` is a service (agents, api, logs, ...).
    Any prefix length works; an address in several ranges gets the longest (most specific),
    found with one dict lookup per distinct prefix length rather than a scan of every range.
    """

    def __init__(self, ranges: dict[str, list[str]]) -> None:
        self._by_len: dict[tuple[int, int], dict[int, str]] = {}  # (version, plen) -> net -> svc
        for service, prefixes in ranges.items():
            for prefix in prefixes:
                net = ipaddress.ip_network(prefix, strict=False)
                table = self._by_len.setdefault((net.version, net.prefixlen), {})
                table.setdefault(int(net.network_address), service)
        self._lengths = sorted(self._by_len, key=lambda k: -k[1])
        self._cache: dict[str, str | None] = {}

    @classmethod
    def from_file(cls, ranges: DatadogRangesFile) -> DatadogRanges:
        """The lookup for a ranges file read and checked at load (config/datadog_ranges.py)."""
        return cls({service: list(prefixes) for service, prefixes in ranges.services})

    @classmethod
    def load(cls, path: str | Path) -> DatadogRanges:
        try:
            return cls.from_file(read_datadog_ranges(str(path)))
        except FieldError as exc:
            raise FlowExportError(f"Datadog ranges {path}: {exc}") from None

    def service(self, ip: str) -> str | None:
        found = self._cache.get(ip, "")
        if found != "":
            return found
        addr = ipaddress.ip_address(ip)
        value, bits = int(addr), addr.max_prefixlen
        found = None
        for version, plen in self._lengths:
            if version == addr.version:
                hit = self._by_len[version, plen].get(value >> (bits - plen) << (bits - plen))
                if hit is not None:
                    found = hit
                    break
        if len(self._cache) > 100_000:  # bounded like everything else fed by traffic
            self._cache.clear()
        self._cache[ip] = found
        return found

    def annotate(self, record: dict) -> None:
        """Add `datadog_service` and `packet_flow` as the aggregator-dd does ("none" if no hit)."""
        target = self.service(record["target_IP"])
        source = None if target else self.service(record["source_IP"])
        record["datadog_service"] = target or source or "none"
        record["packet_flow"] = "outgoing" if target else "incoming" if source else "none"


def datagrams(lines: Iterable[bytes], max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Pack newline-terminated lines into payloads of at most max_bytes: (payload, lines)."""
    parts: list[bytes] = []
    size = 0
    for line in lines:
        if parts and size + len(line) > max_bytes:
            yield b"".join(parts), len(parts)
            parts, size = [], 0
        parts.append(line)
        size += len(line)
    if parts:
        yield b"".join(parts), len(parts)


@dataclass
class ExportStats:
    records_sent: int = 0
    datagrams: int = 0
    send_failures: int = 0
    records_failed: int = 0
    records_oversize: int = 0  # a single line above the limit even with hosts as IPs: dropped


class UdpExporter:
    """Sends records to one collector over a connected UDP socket (so refusals are reported):
    one record per datagram, or with `pack` as many JSON lines as fit `max_datagram_bytes`."""

    def __init__(self, host: str, port: int,
                 max_datagram_bytes: int = defaults.FLOWS_MAX_DATAGRAM_BYTES,
                 pack: bool = defaults.FLOWS_PACK) -> None:
        if not 1 <= max_datagram_bytes <= defaults.FLOWS_MAX_UDP_PAYLOAD_BYTES:
            raise FlowExportError(f"max datagram bytes {max_datagram_bytes}: must be 1 to "
                                  f"{defaults.FLOWS_MAX_UDP_PAYLOAD_BYTES} (a UDP payload)")
        self.host, self.port = host, port
        self.max_datagram_bytes = max_datagram_bytes
        self.pack = pack
        self._end = b"\n" if pack else b""  # a line in a packed datagram; nothing after one
        self.stats = ExportStats()
        self._sock: socket.socket | None = None
        self._last_failure_log = 0.0
        self._suppressed = 0

    @property
    def label(self) -> str:
        return f"udp://{self.host}:{self.port}"

    def _socket(self) -> socket.socket:
        if self._sock is None:
            family, kind, proto, _, addr = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def encode(self, record: dict) -> bytes | None:
        """The record's JSON (a line when packing); if it cannot fit a datagram, hosts fall back
        to IPs, else None (counted)."""
        data = json.dumps(record).encode() + self._end
        if len(data) <= self.max_datagram_bytes:
            return data
        short = {**record, "source_HOST": record["source_IP"], "target_HOST": record["target_IP"]}
        data = json.dumps(short).encode() + self._end
        if len(data) <= self.max_datagram_bytes:
            return data
        self.stats.records_oversize += 1
        return None

    def send(self, records: Iterable[dict]) -> None:
        """Best effort, one interval's records; a datagram that fails is counted, not retried."""
        oversize = self.stats.records_oversize
        encoded = (data for data in map(self.encode, records) if data is not None)
        if self.pack:
            self._send_all(datagrams(encoded, self.max_datagram_bytes))
        else:
            self._send_all((data, 1) for data in encoded)
        if self.stats.records_oversize > oversize:
            log.warning("event=flows_record_oversize destination=%s records_dropped=%d "
                        "max_datagram_bytes=%d (even with hosts as IPs)", self.label,
                        self.stats.records_oversize - oversize, self.max_datagram_bytes)

    def _send_all(self, payloads: Iterable[tuple[bytes, int]]) -> None:
        try:
            sock = self._socket()
        except OSError as exc:  # no address, no route: once for the interval, not per datagram
            for _, count in payloads:
                self.stats.send_failures += 1
                self.stats.records_failed += count
            self._log_failure(exc)
            return
        if stale := sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            # A refusal the kernel still holds from the last interval (the collector was down
            # then; its datagram was counted as sent) would fail this interval's first datagram,
            # which a collector back by now would get: it is read off and counted here.
            self.stats.send_failures += 1
            self._log_failure(OSError(stale, os.strerror(stale)))
        for payload, count in payloads:
            try:
                sock.send(payload)
            except OSError as exc:
                self.stats.send_failures += 1
                self.stats.records_failed += count
                self._log_failure(exc)
                continue
            self.stats.datagrams += 1
            self.stats.records_sent += count

    def _log_failure(self, exc: OSError) -> None:
        """One warning per FLOWS_FAILURE_LOG_INTERVAL_S, with how many were not logged since."""
        now = time.monotonic()
        if now - self._last_failure_log < defaults.FLOWS_FAILURE_LOG_INTERVAL_S:
            self._suppressed += 1
            return
        log.warning("event=flows_send_failed destination=%s error=%r failures_total=%d "
                    "not_logged_since_last=%d", self.label, str(exc), self.stats.send_failures,
                    self._suppressed)
        self._last_failure_log = now
        self._suppressed = 0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
