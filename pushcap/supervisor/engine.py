"""The capture engine: sources feed rings, push consumers read them.

Live: one reader thread per interface appends batches to that interface's ring; one push thread
per interface reads the ring through a cursor and drives that interface's consumers (pcap series,
flow exporters; consumers.py), closing time-split files on the wall clock when the link is quiet.
(Replay drives the same consumers from a file: replay.py.)

Reload swaps an interface's consumers inside its push thread, between two batches, so every
packet goes to exactly one generation of targets: unchanged targets keep running untouched,
removed ones finish their file, changed ones finish their file and restart with the new config.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from pushcap import defaults
from pushcap.capture.capture_thread import CaptureStats, capture_until_stopped, update_capture_stats
from pushcap.capture.live import LiveSource
from pushcap.capture.ring import Ring
from pushcap.config.model import DaemonConfig, TargetConfig
from pushcap.supervisor.consumers import check_filters, interfaces_of, make_consumer
from pushcap.supervisor.target_counters import RetiredCounts

log = logging.getLogger("pushcap.engine")

PUSH_POLL_S = 0.2
ERROR_LOG_INTERVAL_S = 10.0  # a failing target logs at most this often

Bindings = dict[str, list[tuple[TargetConfig, bool]]]  # interface -> (target, reads several)


def _identity(target: TargetConfig) -> TargetConfig:
    """A target without its position in the file, to recognise it across a reload."""
    return dataclasses.replace(target, index=0)


def _output_of(consumer) -> str | None:
    """Where a consumer's files go (its temporary/spool prefix); None for flows."""
    prefix = getattr(consumer, "prefix", None)
    return str(prefix) if prefix is not None else None


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


class LiveEngine:
    """Captures every configured interface until stop() is called."""

    def __init__(self, config: DaemonConfig, targets: tuple[TargetConfig, ...]) -> None:
        self.config = config
        self.targets = targets
        self.rings: dict[str, Ring] = {}
        self.sources: dict[str, LiveSource] = {}
        self.consumers: dict[str, list] = {}
        self.capture_stats: dict[str, CaptureStats] = {}
        self.reloads = 0
        self._bindings = self._bind(targets)
        self._pending: Bindings = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._retirements: dict[str, threading.Thread] = {}  # output -> its latest retirement
        self._retire_lock = threading.Lock()
        self.retired_counts = RetiredCounts()  # what replaced or removed consumers counted

    def _bind(self, targets: tuple[TargetConfig, ...]) -> Bindings:
        bindings: Bindings = {i.name: [] for i in self.config.interfaces}
        for target in targets:
            names = interfaces_of(target, self.config)
            for name in names:
                bindings[name].append((target, len(names) > 1))
        return bindings

    def _consumer(self, name: str, target: TargetConfig, several: bool, repair: bool = True,
                  start: bool = True):
        ring = self.rings[name]
        return make_consumer(target, name, several, ring.linktype, ring.snaplen,
                             self.config.rclone, repair, start)

    def start(self) -> None:
        ring_cfg = self.config.ring
        for iface in self.config.interfaces:
            source = self._open(iface.name)
            check_filters(tuple(t for t, _ in self._bindings[iface.name]), source.linktype,
                          source.snaplen)
            ring = Ring(iface.name, source.linktype, source.snaplen, ring_cfg.max_seconds,
                        ring_cfg.max_bytes)
            self.rings[iface.name] = ring
            self.capture_stats[iface.name] = CaptureStats()
            self.consumers[iface.name] = [self._consumer(iface.name, t, several)
                                          for t, several in self._bindings[iface.name]]
            for target, _ in self._bindings[iface.name]:
                log.info("event=target_start target=%s interface=%s mode=%s", target.desc,
                         iface.name, target.mode.value)
            cursor = ring.cursor()
            self._spawn(f"capture-{iface.name}", self._capture_loop, iface.name, source, ring)
            self._spawn(f"push-{iface.name}", self._push_loop, iface.name, cursor)
            log.info("event=capture_start interface=%s linktype=%d targets=%d ring_max_s=%g "
                     "ring_max_bytes=%d kernel_buffer_bytes=%d", iface.name, source.linktype,
                     len(self.consumers[iface.name]), ring_cfg.max_seconds, ring_cfg.max_bytes,
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

    def _apply_reload(self, name: str) -> None:
        bound = self._pending.pop(name, None)
        if bound is None:
            return
        wanted = [((_identity(t), several), t, several) for t, several in bound]
        wanted_keys = {key for key, _, _ in wanted}
        for pending in [c for c in self.consumers[name] if hasattr(c, "successor")]:
            self._revise_switch(name, pending, wanted, wanted_keys)
        retiring = [c for c in self.consumers[name] if hasattr(c, "successor")]
        # A target is the same target if only its position in the file moved.
        old = {(_identity(c.target), c.several): c for c in self.consumers[name]
               if c not in retiring}
        keep = {key for key in wanted_keys if key in old}
        changed = {c.target.desc: c for key, c in old.items() if key not in keep}
        current = list(retiring)
        switches: list[tuple] = []  # (predecessor or None, successor) switching now
        for key, target, several in wanted:
            if key in keep:
                current.append(old[key])
                continue
            predecessor = changed.pop(target.desc, None)
            waits = predecessor is not None and hasattr(predecessor, "retire") and \
                bool(self._guarded(predecessor, "retire"))
            try:
                successor = self._consumer(name, target, several, repair=False, start=False)
            except Exception as exc:  # noqa: BLE001 - one target must not stop the others
                log.error("event=target_error target=%s interface=%s action=start error=%r",
                          target.desc, name, str(exc))
                successor = None
            if successor is not None:
                if predecessor is not None and hasattr(successor, "take_over"):
                    self._guarded(successor, "take_over", predecessor)  # flows: same interval
                if hasattr(successor, "delivery_open"):
                    successor.delivery_open.clear()  # until the predecessor delivered all
                successor.held = waits
                current.append(successor)
                log.info("event=target_start target=%s interface=%s", target.desc, name)
            if waits:
                # Changed: the old settings finish their current file, then the new ones go on.
                predecessor.successor = successor
                current.insert(0, predecessor)
                log.info("event=target_change target=%s interface=%s switch=next_file",
                         target.desc, name)
            else:
                switches.append((predecessor, successor))
        # Removed ones first, then replacements, then new ones: whatever takes over an output
        # waits for every retirement registered on it before.
        for consumer in changed.values():
            self._retire_async(name, consumer, None)
        for predecessor, successor in sorted(switches, key=lambda pair: pair[0] is None):
            self._retire_async(name, predecessor, successor)
        self.consumers[name] = current

    def _revise_switch(self, name: str, pending, wanted: list, wanted_keys: set) -> None:
        """A switch still waiting for its file boundary, seen by a later reload: cancelled if
        the old settings are wanted again, kept if its successor is still wanted (or can now
        be built), done at once if the target was replaced or removed."""
        successor = pending.successor
        if (_identity(pending.target), pending.several) in wanted_keys:
            pending.retiring = False
            del pending.successor
            if successor is not None:
                self.consumers[name].remove(successor)
                self._retire_async(name, successor, None)
            return
        if successor is None:
            again = [(t, several) for _, t, several in wanted if t.desc == pending.target.desc]
            if not again:
                self._handover(name, pending, None)
                return
            try:
                successor = self._consumer(name, *again[0], repair=False, start=False)
            except Exception as exc:  # noqa: BLE001 - the old settings go on until the boundary
                log.error("event=target_error target=%s interface=%s action=start error=%r",
                          pending.target.desc, name, str(exc))
                return
            if hasattr(successor, "delivery_open"):
                successor.delivery_open.clear()
            successor.held = True
            pending.successor = successor
            self.consumers[name].append(successor)
            return
        if (_identity(successor.target), successor.several) not in wanted_keys:
            self._handover(name, pending, None)

    def _handovers(self, name: str, batch=None, force: bool = False) -> None:
        """Let changed targets that reached their file boundary hand over to their successor:
        the successor takes the rest of this batch from the boundary on, nothing twice."""
        for old in [c for c in self.consumers[name] if hasattr(c, "successor")]:
            if old.retired_at is not None or force:
                self._handover(name, old, batch)

    def _handover(self, name: str, old, batch) -> None:
        successor = old.successor
        del old.successor
        self.consumers[name].remove(old)
        if old.retired_at is None:  # forced (shutdown, or its successor was replaced)
            self._guarded(old, "_finish")
        if successor is not None:
            successor.held = False
            if old.retired_at is not None and hasattr(successor, "continue_after"):
                successor.continue_after(old)
            if batch is not None and old.retired_at is not None:
                self._guarded(successor, "consume", batch.tail(old.retired_at))
        self._retire_async(name, old, successor)

    def _retire_async(self, name: str, old, successor) -> None:
        """Close `old` (finish, deliver, uploads) on a thread of its own, never on the push
        thread; then start `successor` and let it deliver. Everything writing to one output
        (same folder and prefix, or spool) waits for the retirements before it, so a target's
        files are delivered in order and never by two series at once, whatever the reloads."""
        if old is None and successor is None:
            return
        if old is not None:
            self.retired_counts.closing(name, old)
        with self._retire_lock:
            waits_for = {self._retirements.get(_output_of(c)) for c in (old, successor)
                         if c is not None} - {None}
            thread = threading.Thread(target=self._retire, args=(name, old, successor,
                                                                 waits_for),
                                      daemon=True, name=f"retire-{(old or successor).target.desc}")
            for consumer in (old, successor):
                if consumer is not None and _output_of(consumer) is not None:
                    self._retirements[_output_of(consumer)] = thread
            thread.start()  # under the lock: nobody can find it in the map unstarted

    def _retire(self, name: str, old, successor, waits_for: set) -> None:
        try:
            for previous in waits_for:
                previous.join()
            if old is not None:
                self._guarded(old, "close")
                log.info("event=target_stop target=%s interface=%s", old.target.desc, name)
        finally:
            if old is not None:
                self.retired_counts.closed(name, old)
            if successor is not None:
                self._start_successor(successor)

    def _start_successor(self, successor) -> None:
        try:
            if hasattr(successor, "start"):
                self._guarded(successor, "start", False)
        finally:
            if hasattr(successor, "delivery_open"):
                successor.delivery_open.set()

    @staticmethod
    def _guarded(consumer, action: str, *args):
        """Run one consumer step; a failure (disk full, remote error) is logged and counted
        against that target, and never stops the interface's other targets or later batches."""
        try:
            return getattr(consumer, action)(*args)
        except Exception as exc:  # noqa: BLE001 - see above
            consumer.note_error(exc)
            now = time.monotonic()
            if now - getattr(consumer, "_last_error_log", -1e9) >= ERROR_LOG_INTERVAL_S:
                consumer._last_error_log = now
                log.error("event=target_error target=%s action=%s errors=%d error=%r",
                          consumer.target.desc, action, consumer.errors, consumer.last_error)

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
            batches = cursor.read(timeout_s=PUSH_POLL_S)
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
        self._apply_reload(name)
        consumers = self.consumers[name]
        for batch in batches:
            for consumer in consumers:
                if not getattr(consumer, "held", False):
                    self._guarded(consumer, "consume", batch)
            self._handovers(name, batch)
        for consumer in consumers:
            self._guarded(consumer, "tick", now_ns)
        self._handovers(name)

    def close_consumers(self, name: str) -> None:
        """Shutdown of one interface's targets: every open file is queued first (finishers
        work in parallel), then the slow part (uploads) of all targets runs at once, so one
        target's remote cannot use up the others' shutdown time."""
        self._handovers(name, force=True)
        consumers = self.consumers[name]
        for consumer in consumers:
            if hasattr(consumer, "_finish"):
                self._guarded(consumer, "_finish")
        with self._retire_lock:
            retirements = list(self._retirements.values())
        for thread in retirements:
            thread.join()
        for consumer in consumers:
            if hasattr(consumer, "finish"):
                self._guarded(consumer, "finish")
        closers = [threading.Thread(target=self._guarded, args=(c, "close"), daemon=True)
                   for c in consumers]
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
