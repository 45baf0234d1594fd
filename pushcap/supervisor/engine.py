"""The live engine: sources feed rings, consumers read them.

One capture thread per interface appends batches to that interface's ring (capture/); one push
thread per interface reads the ring through a cursor and drives that interface's consumers (pcap
series, flow exporters; consumers.py) through the consumer contract, closing time-split files
on the wall clock when the link is quiet. Reloads and handovers are handover.py's, closing
retired consumers retirements.py's. (Replay drives the same consumers from a file: replay.py.)
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from pushcap import defaults
from pushcap.capture.capture_thread import CaptureStats, capture_until_stopped, update_capture_stats
from pushcap.capture.consumer import Consumer
from pushcap.capture.live import LiveSource
from pushcap.capture.ring import Ring
from pushcap.config.model import DaemonConfig, TargetConfig
from pushcap.supervisor.consumers import (
    ConsumerFactory,
    check_filters,
    interfaces_of,
    make_consumer,
)
from pushcap.supervisor.handover import Bound, InterfaceTargets
from pushcap.supervisor.retirements import Retirements
from pushcap.supervisor.slots import guarded
from pushcap.supervisor.target_counters import RetiredCounts

log = logging.getLogger("pushcap.engine")

Bindings = dict[str, Bound]  # interface -> (target, reads several)


def push_clock_ns(cursor) -> int:
    """The time a push step's `tick` closes windows by: packet time, carried on by the wall
    clock. While the push thread lags the ring it is the newest packet read (the wall clock would
    close a window whose packets still wait in the ring). Once it has read everything, it is that
    packet's time plus the wall time since the ring got it: a quiet link's window still ends with
    no packet after it, while packets that reached the ring late (a backlog in libpcap's buffer,
    a busy capture thread) or a NIC clock off the system's are not put in a later window's file.
    """
    if cursor.newest_ts_ns is None:
        return time.time_ns()
    if not cursor.caught_up:
        return cursor.newest_ts_ns
    return cursor.newest_ts_ns + max(0, time.time_ns() - cursor.newest_appended_ns)


@dataclass(frozen=True)
class EngineView:
    """What status and metrics read of a running engine, taken at once (a thread-safe copy:
    the push threads change the consumer lists while the HTTP thread reads)."""

    node: str
    reloads: int
    rings: dict[str, Ring]
    capture_stats: dict[str, CaptureStats]
    consumers: dict[str, list[Consumer]]
    retired: RetiredCounts


class LiveEngine:
    """Captures every configured interface until stop() is called."""

    def __init__(self, config: DaemonConfig, targets: tuple[TargetConfig, ...],
                 make: ConsumerFactory = make_consumer) -> None:
        """`make` builds a target's consumer for an interface (`pushcap flows` passes its own,
        with the command line's flow options)."""
        self.config = config
        self._make = make
        self.targets = targets
        self.rings: dict[str, Ring] = {}
        self.sources: dict[str, LiveSource] = {}
        self.capture_stats: dict[str, CaptureStats] = {}
        self.reloads = 0
        self._bindings = self._bind(targets)
        self._pending: Bindings = {}
        self._interfaces: dict[str, InterfaceTargets] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._retirements = Retirements()

    @property
    def consumers(self) -> dict[str, list[Consumer]]:
        """Every interface's consumers now (a copy)."""
        return {name: targets.consumers() for name, targets in self._interfaces.items()}

    def view(self) -> EngineView:
        return EngineView(self.config.node_name, self.reloads, dict(self.rings),
                          dict(self.capture_stats), self.consumers, self._retirements.counts)

    def _bind(self, targets: tuple[TargetConfig, ...]) -> Bindings:
        bindings: Bindings = {i.name: [] for i in self.config.interfaces}
        for target in targets:
            names = interfaces_of(target, self.config)
            for name in names:
                bindings[name].append((target, len(names) > 1))
        return bindings

    def attach(self, name: str, ring: Ring) -> None:
        """Give interface `name` its ring and start its bound targets (at launch: repair)."""
        self.rings[name] = ring
        self.capture_stats.setdefault(name, CaptureStats())

        def make(target: TargetConfig, several: bool) -> Consumer:
            return self._make(target, name, several, ring.linktype, ring.snaplen,
                              self.config.rclone)

        self._interfaces[name] = InterfaceTargets(name, make, self._retirements)
        self._interfaces[name].launch(self._bindings[name])

    def start(self) -> None:
        ring_cfg = self.config.ring
        for iface in self.config.interfaces:
            source = self._open(iface.name)
            check_filters(tuple(t for t, _ in self._bindings[iface.name]), source.linktype,
                          source.snaplen)
            ring = Ring(iface.name, source.linktype, source.snaplen, ring_cfg.max_seconds,
                        ring_cfg.max_bytes)
            self.attach(iface.name, ring)
            cursor = ring.cursor()
            self._spawn(f"capture-{iface.name}", self._capture_loop, iface.name, source, ring)
            self._spawn(f"push-{iface.name}", self._push_loop, iface.name, cursor)
            log.info("event=capture_start interface=%s linktype=%d targets=%d ring_max_s=%g "
                     "ring_max_bytes=%d kernel_buffer_bytes=%d", iface.name, source.linktype,
                     len(self._bindings[iface.name]), ring_cfg.max_seconds, ring_cfg.max_bytes,
                     ring_cfg.kernel_buffer_bytes)

    def reload(self, targets: tuple[TargetConfig, ...]) -> None:
        """Hand new targets to every push thread; raises ConfigError and changes nothing if they
        do not fit this engine (unknown interface, filter not valid for a link type)."""
        bindings = self._bind(targets)
        for name, bound in bindings.items():
            ring = self.rings[name]
            check_filters(tuple(t for t, _ in bound), ring.linktype, ring.snaplen)
        self.targets = targets
        self._pending.update(bindings)
        self.reloads += 1

    def _open(self, name: str) -> LiveSource:
        ring_cfg = self.config.ring
        source = LiveSource(name, ring_cfg.batch_packets, ring_cfg.poll_timeout_ms,
                            buffer_bytes=ring_cfg.kernel_buffer_bytes)
        self.sources[name] = source
        return source

    def _spawn(self, name: str, func, *args) -> None:
        thread = threading.Thread(target=func, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _capture_loop(self, name: str, source: LiveSource, ring: Ring) -> None:
        capture_until_stopped(name, source, ring, self.capture_stats[name],
                              lambda: self._open(name), self._stop)

    def _push_loop(self, name: str, cursor) -> None:
        stats = self.capture_stats[name]
        while True:
            batches = cursor.read(timeout_s=defaults.PUSH_POLL_S)
            self.push_step(name, batches, push_clock_ns(cursor))
            if cursor.missed_packets != stats.missed_by_push:
                log.warning("event=push_behind interface=%s missed_packets=%d", name,
                            cursor.missed_packets - stats.missed_by_push)
                stats.missed_by_push = cursor.missed_packets
            if cursor.closed:
                break
        self.close_consumers(name)

    def push_step(self, name: str, batches: list, now_ns: int) -> None:
        """One turn of an interface's push thread: reload, batches, clock, handovers."""
        targets = self._interfaces[name]
        bound = self._pending.pop(name, None)
        if bound is not None:
            targets.apply(bound)
        for batch in batches:  # targets.slots afresh each time: a handover replaces the list
            for slot in targets.slots:
                if not slot.held:
                    guarded(slot, slot.consumer.consume, batch)
            targets.handovers(batch)
        for slot in targets.slots:
            guarded(slot, slot.consumer.tick, now_ns)
        targets.handovers()

    def close_consumers(self, name: str) -> None:
        """Shutdown of one interface's targets: every open file is queued first (finishers
        work in parallel), then the slow part (uploads) of all targets runs at once, so one
        target's remote cannot use up the others' shutdown time."""
        targets = self._interfaces[name]
        targets.handovers(force=True)
        slots = list(targets.slots)
        for slot in slots:
            guarded(slot, slot.consumer.end_file)
        self._retirements.join()
        for slot in slots:
            guarded(slot, slot.consumer.finish)
        closers = [threading.Thread(target=guarded, args=(s, s.consumer.close), daemon=True)
                   for s in slots]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join()

    def refresh_stats(self) -> None:
        for name, source in self.sources.items():
            update_capture_stats(name, source, self.capture_stats[name])

    def stop(self, timeout_s: float = defaults.SHUTDOWN_TIMEOUT_S) -> bool:
        """Stop capture, drain every ring into its consumers, finish open files."""
        self._stop.set()
        for source in self.sources.values():
            source.stop()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
