"""The live engine: sources feed rings, consumers read them.

One capture thread per interface appends batches to that interface's ring (capture/); every
target on an interface reads that ring through its own cursor on a thread of its own (a lane,
target_lane.py) and drives its consumers (pcap series, flow exporters; consumers.py) through the
consumer contract, closing time-split files on the wall clock when the link is quiet. A slow
target falls behind alone and its losses are its own. Reloads and handovers are handover.py's,
closing retired consumers retirements.py's; which targets read which interface, and whether a
reload fits the rings, bindings.py's; the sources and capture threads live_captures.py's; the
threads' join at the stop engine_threads.py's. (Replay drives the same consumers from a file:
replay.py.)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pushcap import defaults
from pushcap.capture.capture_thread import CaptureStats
from pushcap.capture.consumer import Consumer
from pushcap.capture.live import LiveSource
from pushcap.capture.ring import Cursor, Ring
from pushcap.config.desc_names import desc_file_name
from pushcap.config.model import DaemonConfig, TargetConfig
from pushcap.push.mount_guard import MountGuard
from pushcap.supervisor.bindings import (
    Bindings,
    bind,
    check_bindings,
    check_bound,
    group_by_desc,
)
from pushcap.supervisor.consumers import ConsumerFactory, make_consumer
from pushcap.supervisor.engine_threads import EngineThreads
from pushcap.supervisor.handover import Bound, TargetSlots
from pushcap.supervisor.live_captures import LiveCaptures
from pushcap.supervisor.retirements import Retirements
from pushcap.supervisor.target_counters import RetiredCounts
from pushcap.supervisor.target_lane import Latch, TargetLane


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
        self._captures = LiveCaptures(config.ring)
        self.sources: dict[str, LiveSource] = self._captures.sources
        self.capture_stats: dict[str, CaptureStats] = self._captures.stats
        self.reloads = 0
        self._bindings: Bindings = bind(config, targets)
        self._lanes: dict[str, dict[str, TargetLane]] = {}  # interface -> Desc -> lane
        self._missed: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._live = False
        self._threads = EngineThreads(self._lock)
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
        self._live = True
        for iface in self.config.interfaces:
            source = self._captures.open(iface.name)
            check_bound(self._bindings[iface.name], source.linktype, source.snaplen)
            ring = self._captures.ring(iface.name, source)
            self.attach(iface.name, ring)
            self._threads.spawn(f"capture-{iface.name}", self._captures.run, iface.name, source,
                                ring)
            for lane in self._lanes[iface.name].values():
                self._threads.spawn(f"push-{iface.name}-{desc_file_name(lane.desc)}", lane.run)
            self._captures.log_start(iface.name, source, len(self._bindings[iface.name]))

    def reload(self, targets: tuple[TargetConfig, ...]) -> None:
        """Hand new targets to every lane (a new Desc gets a new lane reading from now on);
        raises ConfigError and changes nothing if they do not fit this engine (unknown
        interface, filter not valid for a link type)."""
        bindings = bind(self.config, targets)
        check_bindings(bindings, self.rings)
        with self._lock:
            self.targets = targets
            for name, bound in bindings.items():
                self._post(name, bound)
            self.reloads += 1

    def _post(self, name: str, bound: Bound) -> None:
        """One interface's part of a reload: every existing lane gets its Desc's binding (empty:
        removed); new Descs get lanes whose delivery waits until the others applied it."""
        by_desc = group_by_desc(bound)
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
                self._threads.spawn(f"push-{name}-{desc_file_name(desc)}", lane.run)
        applied.arrive()

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
        self._captures.refresh_stats()

    def stop(self, timeout_s: float = defaults.SHUTDOWN_TIMEOUT_S) -> bool:
        """Stop capture, let every lane drain its ring into its consumers and finish its files."""
        self._captures.stop()
        deadline = time.monotonic() + timeout_s
        ended = self._threads.join_until(deadline)
        # removed targets' closing, which no lane waits for
        retired = self._retirements.join(max(0.0, deadline - time.monotonic()))
        return ended and retired
