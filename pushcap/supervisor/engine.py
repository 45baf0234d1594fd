"""The live engine: sources feed rings, consumers read them.

One capture thread per interface appends batches to that interface's ring (capture/); every
target on an interface reads that ring through its own cursor on a thread of its own (a lane,
target_lane.py) and drives its consumers (pcap series, flow exporters; consumers.py) through the
consumer contract, closing time-split files on the wall clock when the link is quiet. A slow
target falls behind alone and its losses are its own. Reloads and handovers are handover.py's,
closing retired consumers retirements.py's. (Replay drives the same consumers from a file:
replay.py.)
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pushcap import defaults
from pushcap.capture.capture_thread import CaptureStats, capture_until_stopped, update_capture_stats
from pushcap.capture.consumer import Consumer
from pushcap.capture.live import LiveSource
from pushcap.capture.ring import Cursor, Ring
from pushcap.config.desc_names import desc_file_name
from pushcap.config.model import DaemonConfig, TargetConfig
from pushcap.push.mount_guard import MountGuard
from pushcap.supervisor.consumers import (
    ConsumerFactory,
    check_filters,
    interfaces_of,
    make_consumer,
)
from pushcap.supervisor.handover import Bound, TargetSlots
from pushcap.supervisor.retirements import Retirements
from pushcap.supervisor.target_counters import RetiredCounts
from pushcap.supervisor.target_lane import Latch, TargetLane

log = logging.getLogger("pushcap.engine")

Bindings = dict[str, Bound]  # interface -> (target, reads several)


@dataclass(frozen=True)
class EngineView:
    """What status and metrics read of a running engine, taken at once (a thread-safe copy:
    the lanes change their consumer lists while the HTTP thread reads).

    missed: packets each target missed in the ring, by (interface, Desc)."""

    node: str
    reloads: int
    rings: dict[str, Ring]
    capture_stats: dict[str, CaptureStats]
    consumers: dict[str, list[Consumer]]
    retired: RetiredCounts
    missed: dict[tuple[str, str], int] = field(default_factory=dict)


class LiveEngine:
    """Captures every configured interface until stop() is called.

    Without start() (tests) nothing runs on its own: `push_step` drives every lane of an
    interface in turn with the given batches and `close_consumers` closes them."""

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
        self._lanes: dict[str, dict[str, TargetLane]] = {}  # interface -> Desc -> lane
        self._missed: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._live = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._retirements = Retirements()

    @property
    def consumers(self) -> dict[str, list[Consumer]]:
        """Every interface's consumers now (a copy)."""
        with self._lock:
            lanes = {name: list(by_desc.values()) for name, by_desc in self._lanes.items()}
        return {name: [c for lane in group for c in lane.slots.consumers()]
                for name, group in lanes.items()}

    def lanes(self, name: str) -> list[TargetLane]:
        """Interface `name`'s lanes now (a copy)."""
        with self._lock:
            return list(self._lanes[name].values())

    def view(self) -> EngineView:
        consumers = self.consumers
        with self._lock:
            missed = dict(self._missed)
        return EngineView(self.config.node_name, self.reloads, dict(self.rings),
                          dict(self.capture_stats), consumers, self._retirements.counts, missed)

    def _bind(self, targets: tuple[TargetConfig, ...]) -> Bindings:
        bindings: Bindings = {i.name: [] for i in self.config.interfaces}
        for target in targets:
            names = interfaces_of(target, self.config)
            for name in names:
                bindings[name].append((target, len(names) > 1))
        return bindings

    def attach(self, name: str, ring: Ring) -> None:
        """Give interface `name` its ring and start its bound targets (at launch: repair),
        each in a lane reading the ring from its start."""
        self.rings[name] = ring
        self.capture_stats.setdefault(name, CaptureStats())
        self._lanes[name] = {}
        for target, several in self._bindings[name]:
            lane = self._lane(name, target.desc, ring.cursor())
            lane.slots.launch([(target, several)])

    def _lane(self, name: str, desc: str, cursor: Cursor | None) -> TargetLane:
        ring = self.rings[name]

        def make(target: TargetConfig, several: bool) -> Consumer:
            return self._make(target, name, several, ring.linktype, ring.snaplen,
                              self.config.rclone)

        def count_missed(desc: str, packets: int) -> None:
            with self._lock:
                self._missed[name, desc] = self._missed.get((name, desc), 0) + packets
                self.capture_stats[name].missed_by_push += packets

        def guard(output: str) -> MountGuard:
            return MountGuard(output, Path(self.config.fstab_path),
                              Path(self.config.mount_units_dir))

        lane = TargetLane(name, desc, TargetSlots(name, make, self._retirements), cursor,
                          self._retirements, count_missed, guard)
        self._lanes[name][desc] = lane
        return lane

    def start(self) -> None:
        ring_cfg = self.config.ring
        self._live = True
        for iface in self.config.interfaces:
            source = self._open(iface.name)
            check_filters(tuple(t for t, _ in self._bindings[iface.name]), source.linktype,
                          source.snaplen)
            ring = Ring(iface.name, source.linktype, source.snaplen, ring_cfg.max_seconds,
                        ring_cfg.max_bytes)
            self.attach(iface.name, ring)
            self._spawn(f"capture-{iface.name}", self._capture_loop, iface.name, source, ring)
            for lane in self._lanes[iface.name].values():
                self._spawn(f"push-{iface.name}-{desc_file_name(lane.desc)}", lane.run)
            log.info("event=capture_start interface=%s linktype=%d targets=%d ring_max_s=%g "
                     "ring_max_bytes=%d kernel_buffer_bytes=%d", iface.name, source.linktype,
                     len(self._bindings[iface.name]), ring_cfg.max_seconds, ring_cfg.max_bytes,
                     ring_cfg.kernel_buffer_bytes)

    def reload(self, targets: tuple[TargetConfig, ...]) -> None:
        """Hand new targets to every lane (a new Desc gets a new lane reading from now on);
        raises ConfigError and changes nothing if they do not fit this engine (unknown
        interface, filter not valid for a link type)."""
        bindings = self._bind(targets)
        for name, bound in bindings.items():
            ring = self.rings[name]
            check_filters(tuple(t for t, _ in bound), ring.linktype, ring.snaplen)
        with self._lock:
            self.targets = targets
            for name, bound in bindings.items():
                self._post(name, bound)
            self.reloads += 1

    def _post(self, name: str, bound: Bound) -> None:
        """One interface's part of a reload: every existing lane gets its Desc's binding (empty:
        removed); new Descs get lanes whose delivery waits until the others applied it."""
        by_desc: dict[str, Bound] = {}
        for target, several in bound:
            by_desc.setdefault(target.desc, []).append((target, several))
        applied = Latch()
        lanes = self._lanes[name]
        for desc, lane in list(lanes.items()):
            if lane.post(by_desc.get(desc, []), None, applied):
                by_desc.pop(desc, None)
            else:
                del lanes[desc]  # ended (its target was removed earlier)
        for desc, wanted in by_desc.items():
            lane = self._lane(name, desc, self.rings[name].cursor() if self._live else None)
            lane.post(wanted, applied, None)
            if self._live:
                self._spawn(f"push-{name}-{desc_file_name(desc)}", lane.run)
        applied.arrive()

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

    def push_step(self, name: str, batches: list, now_ns: int) -> None:
        """Tests: one turn of every lane of interface `name`, in order, with these batches."""
        lanes = self._lanes[name]
        for desc, lane in list(lanes.items()):
            lane.step(batches, now_ns)
            if lane.end_if_empty():
                del lanes[desc]

    def close_consumers(self, name: str) -> None:
        """Tests: what each lane does when its ring closes (see TargetLane.close)."""
        for lane in list(self._lanes[name].values()):
            lane.close()
        self._retirements.join()  # removed targets' own closing

    def refresh_stats(self) -> None:
        for name, source in self.sources.items():
            update_capture_stats(name, source, self.capture_stats[name])

    def stop(self, timeout_s: float = defaults.SHUTDOWN_TIMEOUT_S) -> bool:
        """Stop capture, let every lane drain its ring into its consumers and finish its files."""
        self._stop.set()
        for source in self.sources.values():
            source.stop()
        deadline = time.monotonic() + timeout_s
        while True:  # a reload during the stop may still add a lane
            with self._lock:
                threads = [t for t in self._threads if t.is_alive()]
            if not threads or time.monotonic() >= deadline:
                # removed targets' closing, which no lane waits for
                retired = self._retirements.join(max(0.0, deadline - time.monotonic()))
                return not threads and retired
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
