"""A flows target on one interface: the same consumer interface as a push `Series`.

`consume(batch)` filters (shared BPF), decodes and counts the batch: in C, one call per batch
(native_table.py, ~40 ns a packet), or with numpy where the C library is not built (decode.py,
aggregate.py, ~1 µs a packet), with the same records either way; `tick(now_ns)`
sends an interval that has ended by the wall clock on a quiet link; `close()` sends the interval
in progress. Intervals are aligned to multiples of the interval since the epoch and assigned by
packet time, so a replay gives the same records as the live run would have; a packet stamped
before the open interval (clock step, reordering) is counted in the open one: intervals already
sent never reopen.

The exporter's own datagrams would otherwise be counted and sent again every interval (on `lo`,
or when the collector is remote, on the uplink): by default UDP to or from the collector port is
excluded, what tcpdump-aggregator users do with `port not 10518`.

Sending an interval (one datagram per record by default: up to `max_flows` sends) happens on the
thread that calls consume/tick/close: in the daemon the target's own lane (supervisor/
target_lane.py), never the capture thread, so a long send delays only this target's reading of
the ring, which holds seconds of packets.

Here: the counting and the interval clock (which interval is open, when it ends, the reload
handover of it). An ended interval goes out through interval_sender.py (records.py makes its
records); fileless.py answers the contract's file and delivery calls, which have no work here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np

from pushcap import defaults
from pushcap.capture.batch import Batch
from pushcap.capture.bpf import compile_target_filter
from pushcap.capture.consumer import CountsFailures
from pushcap.config.model import ConfigError, TargetConfig
from pushcap.flows.decode import SUPPORTED_LINKTYPES, decode
from pushcap.flows.export import DatadogRanges, FlowExportError, UdpExporter, parse_destination
from pushcap.flows.fileless import FilelessConsumer
from pushcap.flows.interval_sender import FlowStats, IntervalSender
from pushcap.flows.native_table import NEW_INTERVAL, NativeFlowTable, new_table
from pushcap.flows.resolve import Resolver, default_resolver

log = logging.getLogger("pushcap.flows")


def own_traffic_filter(port: int) -> str:
    return f"udp port {port}"


def counted_expression(filter_bpf: str | None, port: int, exclude_own_traffic: bool
                       ) -> str | None:
    """The target's filter and, unless told otherwise, not its own datagrams to the collector
    (see the module docstring)."""
    if not exclude_own_traffic:
        return filter_bpf
    own = own_traffic_filter(port)
    return f"({filter_bpf}) and not ({own})" if filter_bpf else f"not ({own})"


def _config_error(target: TargetConfig, message: object) -> ConfigError:
    """A load-time error that names the target, as every target's errors do."""
    return ConfigError(f'target {target.index} "{target.desc}": {message}')


class FlowTarget(CountsFailures, FilelessConsumer):
    """Per-interval 5-tuple counters of one interface, sent as JSON over UDP."""

    def __init__(self, target: TargetConfig, interface: str, linktype: int, snaplen: int,
                 resolver: Resolver | None = None, *, datadog: DatadogRanges | None = None,
                 max_flows: int = defaults.MAX_FLOWS,
                 max_datagram_bytes: int = defaults.FLOWS_MAX_DATAGRAM_BYTES,
                 exclude_own_traffic: bool = True, stamp_close_now: bool = False,
                 numpy_only: bool = False) -> None:
        """`resolver` None shares the process-wide resolver; pass `resolve.NO_DNS` for none.
        `datadog` None uses the target's DatadogRanges (read at load), if it has one.
        `numpy_only`: count with numpy even where the C library is built (comparisons)."""
        self.target = target
        self.interface = interface
        self.stamp_close_now = stamp_close_now  # `pushcap flows -i`: stopping stamps "now"
        self.linktype = linktype
        self.interval_ns = int(target.interval_s * 1e9)
        if self.interval_ns <= 0:
            raise _config_error(target, "Interval must be > 0")
        try:
            host, port = parse_destination(target.path)
        except FlowExportError as exc:
            raise _config_error(target, exc) from None
        self._filter = compile_target_filter(
            target, linktype, snaplen,
            counted_expression(target.filter_bpf, port, exclude_own_traffic))
        if linktype not in SUPPORTED_LINKTYPES:
            log.warning("event=flows_linktype_unsupported %s linktype=%d: no packet will count",
                        self.label, linktype)
        self.resolver = resolver if resolver is not None else default_resolver()
        if datadog is None and target.datadog_ranges is not None:
            datadog = DatadogRanges.from_file(target.datadog_ranges)
        self.datadog = datadog
        try:
            self.exporter = UdpExporter(host, port, max_datagram_bytes, target.pack)
        except FlowExportError as exc:
            raise _config_error(target, exc) from None
        self.table = new_table(max_flows, numpy_only)
        self.stats = FlowStats()
        self._sender = IntervalSender(self.exporter, self.resolver, datadog, self.stats,
                                      self.label, target.path)
        self._open: int | None = None  # interval number (ts_ns // interval_ns) being counted
        self._floor = 0  # the first interval number that may still be opened

    @property
    def label(self) -> str:
        return f"target={self.target.desc_log} interface={self.interface}"

    def status(self) -> dict:
        return asdict(self.stats)

    # --- packet path -------------------------------------------------------------------------
    def consume(self, batch: Batch) -> None:
        if not len(batch):
            return
        if isinstance(self.table, NativeFlowTable):
            self._consume_native(batch, self.table)
            return
        decoded = decode(batch)
        ip = decoded.family != 0
        if self._filter is not None:
            selected = self._filter.match(batch)
            self.stats.non_ip_packets += int(np.count_nonzero(selected & ~ip))
            ip &= selected
        else:
            self.stats.non_ip_packets += int(len(ip) - np.count_nonzero(ip))
        idx = np.flatnonzero(ip)
        if not len(idx):
            return
        floor = self._open if self._open is not None else self._floor
        intervals = np.maximum.accumulate(np.maximum(batch.ts_ns[idx] // self.interval_ns, floor))
        cuts = np.flatnonzero(np.diff(intervals)) + 1
        for start, end in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(idx)].tolist(),
                              strict=True):
            interval = int(intervals[start])
            if self._open is not None and interval != self._open:
                self._emit()
            self._open = interval
            self.table.add(decoded, idx[start:end])
        self.stats.packets += len(idx)

    def _consume_native(self, batch: Batch, table: NativeFlowTable) -> None:
        """The same counting in C, one call per batch (one more per interval it starts): the
        filter's selection (C too) in, the table updated in place."""
        selected = self._filter.select(batch) if self._filter is not None else None
        position = 0
        while True:
            is_open = self._open is not None
            position, packets, non_ip, opened, stop = table.count(
                batch, selected, position, self.interval_ns,
                self._open if is_open else self._floor, is_open)
            self.stats.packets += packets
            self.stats.non_ip_packets += non_ip
            if opened is not None:
                self._open = opened
            if stop != NEW_INTERVAL:
                return
            self._emit()

    def take_over(self, predecessor: FlowTarget) -> None:
        """Carry on the interval a reload's predecessor (the same Desc, changed) has open, so
        it is sent once, at its end, by this target: not cut in two records for one interval.
        Only when the interval length is the same; otherwise the predecessor sends what it
        has when it closes. Called on the push thread, before the predecessor is closed."""
        if not isinstance(predecessor, FlowTarget) or predecessor.interval_ns != self.interval_ns \
                or predecessor.linktype != self.linktype:
            return  # a pcap target turned into flows (same Desc) has no interval to carry
        self.table, predecessor.table = predecessor.table, type(predecessor.table)(
            predecessor.table.max_flows)
        self._open, predecessor._open = predecessor._open, None
        self._floor = max(self._floor, predecessor._floor)
        # what the predecessor has reported already; the rest is this interval's, still to say
        self.stats.flows_overflowed = predecessor.stats.flows_overflowed
        self.stats.packets_overflowed = predecessor.stats.packets_overflowed

    # --- the interval clock ------------------------------------------------------------------
    def next_tick_ns(self) -> int | None:
        """When a tick can next act (push clock): the open interval's end plus the grace, as
        `tick` sends it; None without an open interval (see TargetLane._read_wait_s)."""
        if self._open is None:
            return None
        return (self._open + 1) * self.interval_ns + int(defaults.FLOW_GRACE_S * 1e9)

    def tick(self, now_ns: int) -> None:
        """Send the open interval once it has ended by the wall clock (quiet links included)."""
        due_ns = self.next_tick_ns()
        if due_ns is not None and now_ns >= due_ns:
            self._emit()

    def close(self, now_ns: int | None = None) -> None:
        """Send the interval in progress (shutdown, end of a replay).

        Records carry the interval's end as `time`; a live caller passes `now_ns` (or built the
        target with `stamp_close_now`) so a partial interval is not stamped in the future.
        """
        if now_ns is None and self.stamp_close_now:
            now_ns = time.time_ns()
        if self._open is not None:
            self._emit(now_ns)
        self.exporter.close()

    def _emit(self, now_ns: int | None = None) -> None:
        """End the open interval for good (`_floor`: no later packet reopens it) and send it."""
        interval = self._open
        self._open = None
        self._floor = interval + 1
        self._sender.send(self.table, (interval + 1) * self.interval_ns, now_ns, self.note_error)
