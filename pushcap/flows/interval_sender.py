"""An ended interval out to the collector, and the flows target's figures (`FlowStats`).

`IntervalSender.send` empties the table, reports what its cap turned away, sends the records
and folds the exporter's counters into the target's stats. The exporter's counters are kept
since it was opened, so the stats take them as they are rather than adding them up again;
the overflow counters are cumulative too, so a warning says only what this interval added (a
reload's successor starts from the figures its predecessor has already said, see
`FlowTarget.take_over`). A datagram that could not be sent is counted against the target
(`note_error`): sending is best effort and never raises, so this is how the status shows that
the collector missed an interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pushcap.flows.aggregate import FlowTable
from pushcap.flows.export import DatadogRanges, UdpExporter, format_time
from pushcap.flows.native_table import NativeFlowTable
from pushcap.flows.records import flow_records
from pushcap.flows.resolve import Resolver

log = logging.getLogger("pushcap.flows")


@dataclass
class FlowStats:
    packets: int = 0  # IP packets counted (after the filter)
    non_ip_packets: int = 0  # selected but not IPv4/IPv6: not counted, as the aggregator does
    intervals: int = 0
    flows: int = 0
    records_sent: int = 0
    datagrams: int = 0
    send_failures: int = 0
    records_oversize: int = 0  # longer than a datagram even with hosts as IPs: not sent
    flows_overflowed: int = 0
    packets_overflowed: int = 0


class IntervalSender:
    """Sends a flows target's intervals through its exporter; updates the target's `stats`
    (shared with the target, which counts the packets) and logs as the target (`label`). It
    holds nothing of the target's own: the target's `note_error` comes with each `send`, so
    the two make no reference cycle and a target a reload lets go is freed at once (the daemon
    runs with its start-up objects frozen out of the collector's way)."""

    def __init__(self, exporter: UdpExporter, resolver: Resolver,
                 datadog: DatadogRanges | None, stats: FlowStats, label: str,
                 destination: str) -> None:
        self.exporter = exporter
        self.resolver = resolver
        self.datadog = datadog
        self.stats = stats
        self.label = label
        self.destination = destination  # the target's Path, as an error names it

    def send(self, table: NativeFlowTable | FlowTable, end_ns: int, now_ns: int | None,
             note_error: Callable[[BaseException], int]) -> None:
        """Send the interval ending at `end_ns` that `table` holds; stamped `now_ns` instead
        when that is earlier (a partial interval closed live is not stamped in the future)."""
        flows = table.take()
        self._note_overflow(table)
        stamp = format_time(end_ns if now_ns is None else min(end_ns, now_ns))
        failures_before = self.exporter.stats.send_failures
        self.exporter.send(flow_records(flows, stamp, self.resolver.name, self.datadog))
        exp = self.exporter.stats
        stats = self.stats
        stats.intervals += 1
        stats.flows += len(flows)
        stats.records_sent, stats.datagrams = exp.records_sent, exp.datagrams
        stats.send_failures = exp.send_failures
        stats.records_oversize = exp.records_oversize
        if exp.send_failures > failures_before:  # the collector did not get this interval
            note_error(OSError(f"{exp.send_failures - failures_before} datagram(s) to "
                                    f"{self.destination} could not be sent"))
        log.debug("event=flows_interval %s end=%s flows=%d send_failures=%d", self.label, stamp,
                  len(flows), exp.send_failures - failures_before)

    def _note_overflow(self, table: NativeFlowTable | FlowTable) -> None:
        """Warn of the flows the cap turned away since the last interval; keep the totals."""
        overflow = table.overflow
        if overflow.flows > self.stats.flows_overflowed:
            log.warning("event=flows_overflow %s max_flows=%d flows_turned_away=%d packets=%d",
                        self.label, table.max_flows,
                        overflow.flows - self.stats.flows_overflowed,
                        overflow.packets - self.stats.packets_overflowed)
        self.stats.flows_overflowed = overflow.flows
        self.stats.packets_overflowed = overflow.packets
