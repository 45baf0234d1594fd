"""`pushcap flows`: one-off flow statistics from an interface or a capture file.

A drop-in for `tcpdump -U -i eth0 -nn -tttt port not 10518 | tcpdump_aggregator.py
127.0.0.1:10518`: with no option it sends to udp://127.0.0.1:10518 every 20 s, one JSON record
per datagram as the aggregator does (`--pack`: several, one per line), and leaves out its own
datagrams. `--read` replays a file with intervals by packet time and exits when it ends;
`--interface` captures until SIGINT/SIGTERM (a second signal more than a second later exits at
once), sending the interval in progress before it stops.

Both run on what `run` and `replay` run on (so here, in the supervisor): `--interface` is a
daemon with one interface and one flows target, no status endpoint and no triggers (the same
capture thread, reopened with backoff when the interface goes away, the same `[ring]` defaults
and the same stop path); `--read` is a replay of that one target.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pushcap import defaults
from pushcap.config.model import (
    ConfigError,
    DaemonConfig,
    DatadogRangesFile,
    InterfaceConfig,
    NamingRule,
    PushMode,
    RingConfig,
    SplitKind,
    SplitRule,
    TargetConfig,
)

# Every `pushcap` command builds this parser, so what only `pushcap flows` runs (capture source,
# ring, flow table, exporter, resolver) is imported in the functions below (start-up time). The
# parser's defaults that come from those modules are None, filled in by cmd_flows/_target.
if TYPE_CHECKING:
    from pushcap.flows.target import FlowTarget

log = logging.getLogger("pushcap.flows")


def add_flows_parser(subparsers) -> argparse.ArgumentParser:
    """Register `flows` on the `pushcap` command's subparsers."""
    p = subparsers.add_parser("flows", help="send per-flow statistics as JSON over UDP",
                              description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--interface", "-i", help="capture this interface live")
    source.add_argument("--read", "-r", type=Path, metavar="FILE", help="replay a capture file")
    p.add_argument("destination", nargs="?", default=None,  # None: flows.export's default
                   help="collector as udp://HOST:PORT (default udp://127.0.0.1:10518)")
    p.add_argument("--interval", type=float, default=defaults.FLOWS_INTERVAL_S, metavar="S",
                   help=f"seconds per interval (default {defaults.FLOWS_INTERVAL_S:g})")
    p.add_argument("--bpf", metavar="FILTER", help="count only packets this filter selects")
    p.add_argument("--no-dns", action="store_true", help="hosts are the IPs, no reverse DNS")
    p.add_argument("--datadog-ranges", metavar="FILE",
                   help="Datadog ip-ranges.json: add datadog_service and packet_flow")
    p.add_argument("--pack", action="store_true",
                   help="several records per datagram, one JSON object per line (default: one "
                        "record per datagram, as tcpdump-aggregator sends and Logstash's udp "
                        "input with a json filter reads)")
    p.add_argument("--max-flows", type=int, default=None,  # None: flows.aggregate's default
                   help="flows per interval; more are counted as overflow")
    p.add_argument("--max-datagram-bytes", type=int, default=None,  # None: flows.export's
                   help=f"largest datagram (default {defaults.FLOWS_MAX_DATAGRAM_BYTES}, at most "
                        f"{defaults.FLOWS_MAX_UDP_PAYLOAD_BYTES})")
    p.add_argument("--include-own-traffic", action="store_true",
                   help="also count UDP on the collector port (excluded by default)")
    p.set_defaults(func=cmd_flows)
    return p


def _target(args, linktype: int, snaplen: int, name: str, live: bool) -> FlowTarget:
    from pushcap.flows.resolve import NO_DNS, Resolver
    from pushcap.flows.target import FlowTarget

    config = _flows_target(args)
    resolver = NO_DNS if args.no_dns else Resolver()
    max_flows = defaults.MAX_FLOWS if args.max_flows is None else args.max_flows
    max_datagram = (defaults.FLOWS_MAX_DATAGRAM_BYTES if args.max_datagram_bytes is None
                    else args.max_datagram_bytes)
    return FlowTarget(config, name, linktype, snaplen, resolver,
                      max_flows=max_flows, max_datagram_bytes=max_datagram,
                      exclude_own_traffic=not args.include_own_traffic, stamp_close_now=live)


def _summary(target: FlowTarget, what: str) -> str:
    s = target.stats
    return (f"{what}: packets={s.packets} non_ip={s.non_ip_packets} intervals={s.intervals} "
            f"flows={s.flows} records_sent={s.records_sent} datagrams={s.datagrams} "
            f"send_failures={s.send_failures} records_oversize={s.records_oversize} "
            f"flows_overflowed={s.flows_overflowed}")


def cmd_flows(args) -> int:
    low, high = defaults.FLOWS_INTERVAL_MIN_S, defaults.FLOWS_INTERVAL_MAX_S
    if not low <= args.interval <= high:  # also refuses nan; inf and 1e400 are above
        raise ConfigError(f"--interval {args.interval:g}: must be {low:g} to {high:g} seconds")
    if args.max_flows is not None and args.max_flows < 1:
        raise ConfigError(f"--max-flows {args.max_flows}: must be at least 1")
    most = defaults.FLOWS_MAX_UDP_PAYLOAD_BYTES
    if args.max_datagram_bytes is not None and not 1 <= args.max_datagram_bytes <= most:
        raise ConfigError(f"--max-datagram-bytes {args.max_datagram_bytes}: must be 1 to {most} "
                          "(the largest UDP payload)")
    if args.destination is None:
        args.destination = f"udp://{defaults.FLOWS_HOST}:{defaults.FLOWS_PORT}"
    args.datadog = _datadog_ranges(args.datadog_ranges)
    return _replay(args) if args.read else _live(args)


class _FlowsFactory:
    """Builds the command's one flows target for whichever link type the source has (the
    engine's and replay's consumer factory), and keeps it for the summary."""

    def __init__(self, args) -> None:
        self.args = args
        self.made: list[FlowTarget] = []

    def __call__(self, target: TargetConfig, interface: str, several: bool, linktype: int,
                 snaplen: int, rclone_settings=None) -> FlowTarget:
        made = _target(self.args, linktype, snaplen, interface, self.args.read is None)
        self.made.append(made)
        return made

    def close(self) -> None:
        for made in self.made:
            made.resolver.close()


def _datadog_ranges(path: str | None) -> DatadogRangesFile | None:
    """Read once, before anything starts, by the rules of a flows target's DatadogRanges."""
    if path is None:
        return None
    from pushcap.config.datadog_ranges import read_datadog_ranges
    from pushcap.config.field_check import FieldError

    try:
        return read_datadog_ranges(path)
    except FieldError as exc:
        raise ConfigError(f"--datadog-ranges {path}: {exc}") from None


def _flows_target(args) -> TargetConfig:
    return TargetConfig(index=1, desc="flows", mode=PushMode.FLOWS, path=args.destination,
                        split=SplitRule(SplitKind.TIME, int(args.interval * 1e9)),
                        naming=NamingRule(defaults.DEFAULT_FILENAME), filter_bpf=args.bpf,
                        interval_s=args.interval, pack=args.pack, datadog_ranges=args.datadog)


def _replay(args) -> int:
    from pushcap.supervisor.replay import replay

    factory = _FlowsFactory(args)
    try:
        replay(args.read, (_flows_target(args),), make=factory)
    finally:
        factory.close()
    made = factory.made[0]
    print(_summary(made, f"read {args.read}"))
    if made.stats.send_failures:  # as `pushcap replay` of a flows target: not all delivered
        print(f"pushcap: error: {made.stats.send_failures} datagram(s) to {args.destination} "
              "could not be sent", file=sys.stderr)
        return 1
    return 0


def _live(args) -> int:
    """A daemon of one interface and one target: `run`'s engine, capture thread and stop."""
    import socket

    from pushcap.supervisor.daemon import Daemon

    config = DaemonConfig(
        source_file="pushcap flows", node_name=socket.gethostname(),
        interfaces=(InterfaceConfig(args.interface),),
        ring=RingConfig(defaults.RING_MAX_SECONDS, defaults.RING_MAX_BYTES,
                        defaults.BATCH_PACKETS, defaults.POLL_TIMEOUT_MS),
        status_port=0)
    factory = _FlowsFactory(args)
    daemon = Daemon(config, (_flows_target(args),), None, make=factory)
    log.info("event=flows_start interface=%s destination=%s interval_s=%g", args.interface,
             args.destination, args.interval)
    try:
        code = daemon.run()
    finally:
        factory.close()
    for made in factory.made:
        log.info("event=flows_stopped %s", _summary(made, f"interface={args.interface}"))
    return code
