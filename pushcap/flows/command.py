"""`pushcap flows`: one-off flow statistics from an interface or a capture file.

A drop-in for `tcpdump -U -i eth0 -nn -tttt port not 10518 | tcpdump_aggregator.py
127.0.0.1:10518`: with no option it sends to udp://127.0.0.1:10518 every 20 s and leaves out its
own datagrams. `--read` replays a file with intervals by packet time and exits when it ends;
`--interface` captures until SIGINT/SIGTERM (a second signal more than a second later exits at
once), sending the interval in progress before it stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pushcap import defaults
from pushcap.config.model import (
    ConfigError,
    NamingRule,
    PushMode,
    SplitKind,
    SplitRule,
    TargetConfig,
)

# Every `pushcap` command builds this parser, so what only `pushcap flows` runs (capture source,
# ring, flow table, exporter, resolver) is imported in the functions below (start-up time). The
# parser's defaults that come from those modules are None, filled in by cmd_flows/_target.
if TYPE_CHECKING:
    from pushcap.capture.live import LiveSource
    from pushcap.flows.target import FlowTarget

log = logging.getLogger("pushcap.flows")

DEFAULT_INTERVAL_S = 20.0  # the aggregator's documented default
TICK_S = 0.2  # how often a quiet link checks whether its interval has ended
REPEAT_SIGNAL_S = 1.0


def add_flows_parser(subparsers) -> argparse.ArgumentParser:
    """Register `flows` on the `pushcap` command's subparsers."""
    p = subparsers.add_parser("flows", help="send per-flow statistics as JSON over UDP",
                              description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--interface", "-i", help="capture this interface live")
    source.add_argument("--read", "-r", type=Path, metavar="FILE", help="replay a capture file")
    p.add_argument("destination", nargs="?", default=None,  # None: flows.export's default
                   help="collector as udp://HOST:PORT (default udp://127.0.0.1:10518)")
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, metavar="S",
                   help=f"seconds per interval (default {DEFAULT_INTERVAL_S:g})")
    p.add_argument("--bpf", metavar="FILTER", help="count only packets this filter selects")
    p.add_argument("--no-dns", action="store_true", help="hosts are the IPs, no reverse DNS")
    p.add_argument("--datadog-ranges", type=Path, metavar="FILE",
                   help="Datadog ip-ranges.json: add datadog_service and packet_flow")
    p.add_argument("--max-flows", type=int, default=None,  # None: flows.aggregate's default
                   help="flows per interval; more are counted as overflow")
    p.add_argument("--max-datagram-bytes", type=int, default=None)  # None: flows.export's
    p.add_argument("--include-own-traffic", action="store_true",
                   help="also count UDP on the collector port (excluded by default)")
    p.set_defaults(func=cmd_flows)
    return p


def _target(args, linktype: int, snaplen: int, name: str) -> FlowTarget:
    from pushcap.flows.aggregate import DEFAULT_MAX_FLOWS
    from pushcap.flows.export import DEFAULT_MAX_DATAGRAM_BYTES, DatadogRanges, FlowExportError
    from pushcap.flows.resolve import NO_DNS, Resolver
    from pushcap.flows.target import FlowTarget

    config = TargetConfig(index=1, desc="flows", mode=PushMode.FLOWS, path=args.destination,
                          split=SplitRule(SplitKind.TIME, int(args.interval * 1e9)),
                          naming=NamingRule(defaults.DEFAULT_FILENAME), filter_bpf=args.bpf,
                          interval_s=args.interval)
    try:
        datadog = DatadogRanges.load(args.datadog_ranges) if args.datadog_ranges else None
    except FlowExportError as exc:
        raise ConfigError(str(exc)) from None
    resolver = NO_DNS if args.no_dns else Resolver()
    max_flows = DEFAULT_MAX_FLOWS if args.max_flows is None else args.max_flows
    max_datagram = (DEFAULT_MAX_DATAGRAM_BYTES if args.max_datagram_bytes is None
                    else args.max_datagram_bytes)
    return FlowTarget(config, name, linktype, snaplen, resolver, datadog=datadog,
                      max_flows=max_flows, max_datagram_bytes=max_datagram,
                      exclude_own_traffic=not args.include_own_traffic)


def _summary(target: FlowTarget, what: str) -> str:
    s = target.stats
    return (f"{what}: packets={s.packets} non_ip={s.non_ip_packets} intervals={s.intervals} "
            f"flows={s.flows} records_sent={s.records_sent} datagrams={s.datagrams} "
            f"send_failures={s.send_failures} flows_overflowed={s.flows_overflowed}")


def cmd_flows(args) -> int:
    from pushcap.flows.export import DEFAULT_HOST, DEFAULT_PORT

    if args.interval <= 0:
        raise ConfigError("--interval must be greater than 0")
    if args.destination is None:
        args.destination = f"udp://{DEFAULT_HOST}:{DEFAULT_PORT}"
    return _replay(args) if args.read else _live(args)


def _replay(args) -> int:
    from pushcap.capture.source import open_file_source

    source = open_file_source(args.read)
    target = _target(args, source.linktype, source.snaplen, source.name)
    try:
        for batch in source.batches():
            target.consume(batch)
    finally:
        target.close()
        target.resolver.close()
    print(_summary(target, f"read {args.read}"))
    return 0


def _live(args) -> int:
    from pushcap.capture.live import LiveSource
    from pushcap.capture.ring import Ring
    from pushcap.capture.source import SourceError

    source = LiveSource(args.interface)
    target = _target(args, source.linktype, source.snaplen, args.interface)
    ring = Ring(args.interface, source.linktype, source.snaplen, defaults.RING_MAX_SECONDS,
                defaults.RING_MAX_BYTES)
    cursor = ring.cursor()
    _install_signals(source)

    def capture() -> None:
        try:
            for batch in source.batches():
                ring.append(batch)
        except SourceError as exc:
            log.error("event=capture_error interface=%s error=%r", args.interface, str(exc))
        finally:
            ring.close()

    reader = threading.Thread(target=capture, name=f"capture-{args.interface}", daemon=True)
    reader.start()
    log.info("event=started interface=%s destination=%s interval_s=%g", args.interface,
             args.destination, args.interval)
    reported_missed = 0
    try:
        while not cursor.closed:
            for batch in cursor.read(timeout_s=TICK_S):
                target.consume(batch)
            target.tick(time.time_ns())
            if cursor.missed_packets != reported_missed:
                log.warning("event=flows_behind interface=%s missed_packets=%d", args.interface,
                            cursor.missed_packets - reported_missed)
                reported_missed = cursor.missed_packets
    finally:
        target.close(time.time_ns())
        target.resolver.close()
    reader.join(defaults.SHUTDOWN_TIMEOUT_S)
    log.info("event=stopped %s", _summary(target, f"interface={args.interface}"))
    return 0


def _install_signals(source: LiveSource) -> None:
    """First SIGINT/SIGTERM: stop capture, drain, send the open interval. A later one: exit."""
    import signal

    first: list[float] = []

    def on_signal(signum, _frame) -> None:
        now = time.monotonic()
        if first and now - first[0] > REPEAT_SIGNAL_S:
            log.warning("event=second_signal action=exit_now")
            os._exit(1)
        if not first:
            first.append(now)
            log.info("event=stopping signal=%s", signal.Signals(signum).name)
        source.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
