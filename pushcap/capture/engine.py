"""The capture engine: sources feed rings, push series consume them.

Live: one reader thread per interface appends batches to that interface's ring; one push thread
per interface reads the ring through a cursor and drives that interface's series, closing
time-split files on the wall clock when the link is quiet. Replay: the same series are driven
inline from the file, as fast as it reads, with nothing dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pushcap import defaults
from pushcap.capture.ring import Ring
from pushcap.capture.source import LiveSource, SourceError, open_file_source
from pushcap.config.model import ConfigError, DaemonConfig, PushMode, TargetConfig
from pushcap.push.target import Series

log = logging.getLogger("pushcap.engine")

STATS_INTERVAL_S = 10.0
REOPEN_BACKOFF_MAX_S = 30.0


def series_prefix(target: TargetConfig, interface: str, several: bool) -> Path:
    """Output prefix of a target's series: `<Path>` or, when it reads several interfaces,
    `<Path>_<interface>` (a pcap file holds one link type, so each interface has its own)."""
    base = target.path
    if target.mode is PushMode.RCLONE:
        base = target.path.rpartition(":")[2].rstrip("/") or target.desc
    return Path(f"{base}_{interface}" if several else base)


def interfaces_of(target: TargetConfig, config: DaemonConfig) -> tuple[str, ...]:
    if target.interface is None:
        return tuple(i.name for i in config.interfaces)
    names = config.resolve_interface(target.interface)
    if not names:
        known = sorted({i.name for i in config.interfaces} |
                       {a for i in config.interfaces for a in i.aliases})
        raise ConfigError(f'target {target.index} "{target.desc}": Interface '
                          f'"{target.interface}" is not captured (known: {", ".join(known)})')
    return names


@dataclass
class ReplaySummary:
    packets: int = 0
    batches: int = 0
    seconds: float = 0.0
    series: list[Series] = field(default_factory=list)


def replay(path: str | Path, targets: tuple[TargetConfig, ...],
           batch_packets: int = defaults.BATCH_PACKETS, progress=None) -> ReplaySummary:
    """Run the targets over a capture file (every target reads it, whatever its Interface)."""
    source = open_file_source(path, batch_packets)
    series = [Series(t, source.name, series_prefix(t, source.name, False), source.linktype,
                     source.snaplen) for t in targets]
    summary = ReplaySummary(series=series)
    started = time.monotonic()
    try:
        for batch in source.batches():
            for s in series:
                s.consume(batch)
            summary.packets += len(batch)
            summary.batches += 1
            if progress:
                progress(summary.packets)
    finally:
        for s in series:
            s.close()
    summary.seconds = time.monotonic() - started
    return summary


class LiveEngine:
    """Captures every configured interface until stop() is called."""

    def __init__(self, config: DaemonConfig, targets: tuple[TargetConfig, ...]) -> None:
        self.config = config
        self.targets = targets
        self.rings: dict[str, Ring] = {}
        self.sources: dict[str, LiveSource] = {}
        self.series: dict[str, list[Series]] = {}
        self._bindings: dict[str, list[tuple[TargetConfig, bool]]] = {
            i.name: [] for i in config.interfaces}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        for target in targets:
            names = interfaces_of(target, config)
            for name in names:
                self._bindings[name].append((target, len(names) > 1))

    def start(self) -> None:
        for iface in self.config.interfaces:
            source = self._open(iface.name)
            ring = Ring(iface.name, source.linktype, source.snaplen, self.config.ring.max_seconds,
                        self.config.ring.max_bytes)
            self.rings[iface.name] = ring
            self.series[iface.name] = [
                Series(t, iface.name, series_prefix(t, iface.name, several), source.linktype,
                       source.snaplen) for t, several in self._bindings[iface.name]]
            cursor = ring.cursor()
            self._spawn(f"capture-{iface.name}", self._capture_loop, iface.name, source, ring)
            self._spawn(f"push-{iface.name}", self._push_loop, iface.name, cursor)
            log.info("event=capture_start interface=%s linktype=%d targets=%d", iface.name,
                     source.linktype, len(self.series[iface.name]))

    def _open(self, name: str) -> LiveSource:
        ring_cfg = self.config.ring
        source = LiveSource(name, ring_cfg.batch_packets, ring_cfg.poll_timeout_ms)
        self.sources[name] = source
        return source

    def _spawn(self, name: str, func, *args) -> None:
        thread = threading.Thread(target=func, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _capture_loop(self, name: str, source: LiveSource, ring: Ring) -> None:
        backoff_s = 1.0
        last_stats = time.monotonic()
        last_drops = 0
        while not self._stop.is_set():
            try:
                for batch in source.batches():
                    ring.append(batch)
                    if time.monotonic() - last_stats >= STATS_INTERVAL_S:
                        last_stats = time.monotonic()
                        last_drops = self._log_drops(name, source, last_drops)
                    backoff_s = 1.0
            except SourceError as exc:
                log.error("event=capture_error interface=%s error=%r retry_in_s=%g", name,
                          str(exc), backoff_s)
                if self._stop.wait(backoff_s):
                    break
                backoff_s = min(backoff_s * 2, REOPEN_BACKOFF_MAX_S)
                try:
                    source = self._open(name)
                except SourceError as reopen_exc:
                    log.error("event=capture_reopen_failed interface=%s error=%r", name,
                              str(reopen_exc))
        self._log_drops(name, source, last_drops)
        ring.close()

    @staticmethod
    def _log_drops(name: str, source: LiveSource, last_drops: int) -> int:
        try:
            received, dropped, if_dropped = source.stats()
        except Exception:  # noqa: BLE001 - a closed handle has no stats; nothing to report
            return last_drops
        drops = dropped + if_dropped
        level = logging.WARNING if drops > last_drops else logging.DEBUG
        log.log(level, "event=capture_stats interface=%s received=%d kernel_drops=%d "
                "if_drops=%d", name, received, dropped, if_dropped)
        return drops

    def _push_loop(self, name: str, cursor) -> None:
        series = self.series[name]
        reported_missed = 0
        while True:
            for batch in cursor.read(timeout_s=0.2):
                for s in series:
                    s.consume(batch)
            now_ns = time.time_ns()
            for s in series:
                s.tick(now_ns)
            if cursor.missed_packets != reported_missed:
                log.warning("event=push_behind interface=%s missed_packets=%d", name,
                            cursor.missed_packets - reported_missed)
                reported_missed = cursor.missed_packets
            if cursor.closed:
                break
        for s in series:
            s.close()

    def stop(self, timeout_s: float = defaults.SHUTDOWN_TIMEOUT_S) -> bool:
        """Stop capture, drain every ring into its series, finish open files."""
        self._stop.set()
        for source in self.sources.values():
            source.stop()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def wait(self) -> None:
        self._stop.wait()
