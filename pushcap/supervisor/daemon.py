"""`pushcap run`: the engine, the status endpoint, reload and one stop path.

SIGTERM, SIGINT and a failure all end in `stop()`: capture stops, rings drain into the targets,
open files are finished, services (triggers, uploads) get a bounded time. SIGHUP (or
`pushcap reload`, through the status endpoint) re-reads the Lua targets; a file that does not
validate is refused and the running targets stay as they are.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Protocol

from pushcap import defaults
from pushcap.config.lua import load_push_config
from pushcap.config.model import ConfigError, DaemonConfig, PushMode, TargetConfig
from pushcap.push.spool_orphans import say_orphaned_queues
from pushcap.supervisor import obs, own_uploads
from pushcap.supervisor.consumers import ConsumerFactory, make_consumer
from pushcap.supervisor.engine import LiveEngine
from pushcap.supervisor.query_server import QueryService
from pushcap.supervisor.status import StatusServer, engine_status

log = logging.getLogger("pushcap.supervisor.daemon")


class Service(Protocol):
    def start(self) -> None: ...
    def stop(self, timeout_s: float) -> object: ...


class Daemon:
    def __init__(self, config: DaemonConfig, targets: tuple[TargetConfig, ...],
                 lua_path: str | Path | None, make: ConsumerFactory = make_consumer,
                 notices: tuple[str, ...] = ()) -> None:
        """`lua_path` None: targets from the command line (`pushcap flows`), nothing to
        reload. `notices`: what the Lua file holds without a meaning, logged once here; a
        reload logs those it did not hold before."""
        self.config = config
        self._notices_said: set[str] = set()
        self._orphans_said: set[Path] = set()
        self._say_notices(notices)
        self.lua_path = Path(lua_path) if lua_path is not None else None
        self.engine = LiveEngine(config, targets, make)
        self.services: dict[str, Service] = {}
        # `pushcap query` answered from the indexes it keeps in memory (query_server.py)
        self.query = QueryService(self.engine, self.lua_path)
        self.services["query"] = self.query
        self.status_server: StatusServer | None = None
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()
        # set with either of the two: the main thread sleeps on it instead of looking at them
        # every 0.2 s (every wake-up of an idle daemon costs CPU; on a VM, a lot)
        self._attention = threading.Event()
        self._reload_lock = threading.Lock()
        self._first_signal_at: float | None = None

    def add_service(self, name: str, service: Service) -> None:
        """A service started after capture (it may read the rings) and stopped before it; its
        `stats()`, if it has one, appears under `name` in the status."""
        self.services[name] = service

    def snapshot(self) -> dict:
        extras = {name: svc.stats for name, svc in self.services.items() if hasattr(svc, "stats")}
        self.engine.refresh_stats()
        return engine_status(self.engine.view(), extras)

    def reload(self) -> tuple[bool, str]:
        """Re-read the Lua targets; the old ones keep running if the new file is refused."""
        if self.lua_path is None:
            log.warning("event=reload_refused reason=no_config_file")
            return False, "these targets come from the command line: nothing to re-read"
        with self._reload_lock:
            try:
                push = load_push_config(self.lua_path, self.config.interface_names())
                targets = push.targets
                self.engine.reload(targets)
                self._say_notices(push.notices)
                obs.add_target_logs(self.config, targets)
            except ConfigError as exc:
                log.error("event=reload_refused file=%s error=%r", self.lua_path, str(exc))
                return False, str(exc)
            except Exception as exc:  # noqa: BLE001 - a reload must never stop the daemon
                log.exception("event=reload_refused file=%s error=%r", self.lua_path,
                              f"{type(exc).__name__}: {exc}")
                return False, f"{type(exc).__name__}: {exc} (unexpected)"
            log.info("event=reload_applied file=%s targets=%d", self.lua_path, len(targets))
            self._say_orphaned_spools(targets)
            return True, f"{len(targets)} targets"

    def _say_orphaned_spools(self, targets) -> None:
        """Queued uploads no rclone target of `targets` owns (push/spool_orphans.py)."""
        spool_dir = (self.config.rclone.spool_dir if self.config.rclone is not None
                     else defaults.SPOOL_DIR)
        owned = {t.desc_file_name for t in targets if t.mode == PushMode.RCLONE}
        say_orphaned_queues(Path(spool_dir), owned, self._orphans_said)

    def _say_notices(self, notices: tuple[str, ...]) -> None:
        """One log line per notice not said before (FMADIO fields without a meaning here)."""
        for notice in notices:
            if notice not in self._notices_said:
                self._notices_said.add(notice)
                log.warning("event=config_notice notice=%r", notice)

    def _on_signal(self, signum: int, _frame) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested.set()
            self._attention.set()
            return
        # A terminal's Ctrl-C reaches `make run` and pushcap together, and make passes it on once
        # more: a repeat within a second is the same request, a later one means "exit now".
        now = time.monotonic()
        first = self._first_signal_at
        if first is not None and now - first > defaults.REPEAT_SIGNAL_S:
            log.warning("event=second_signal action=exit_now")
            os._exit(1)
        if self._first_signal_at is None:
            self._first_signal_at = now
            log.info("event=stopping signal=%s", signal.Signals(signum).name)
        self._stopping.set()
        self._attention.set()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.engine.start()
        try:
            linktypes = {name: ring.linktype for name, ring in self.engine.rings.items()}
            own_uploads.start_check(self.engine.targets, self.config, linktypes)
            self._start_status()
            for name, service in self.services.items():
                service.start()
                log.info("event=service_started service=%s", name)
            log.info("event=started node=%s targets=%d interfaces=%s", self.config.node_name,
                     len(self.engine.targets), ",".join(i.name for i in self.config.interfaces))
            self._say_orphaned_spools(self.engine.targets)
            while not self._stopping.is_set():
                # a signal's handler runs in this thread and ends the wait (it sets _attention)
                self._attention.wait(defaults.DAEMON_IDLE_WAIT_S)
                self._attention.clear()
                if self._reload_requested.is_set() and not self._stopping.is_set():
                    self._reload_requested.clear()
                    self.reload()
        finally:
            clean = self.stop()
        log.info("event=stopped clean=%s", clean)
        return 0 if clean else 1

    def _start_status(self) -> None:
        if not self.config.status_port:
            return
        try:
            self.status_server = StatusServer(self.config.status_host, self.config.status_port,
                                              self.snapshot, self.reload, self.query.handle)
        except OSError as exc:
            log.error("event=status_unavailable address=%s:%d error=%r",
                      self.config.status_host, self.config.status_port, exc.strerror)
            return
        self.status_server.start()

    def stop(self, timeout_s: float = defaults.SHUTDOWN_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        for name, service in reversed(self.services.items()):
            try:
                service.stop(max(1.0, (deadline - time.monotonic()) / 2))
            except Exception as exc:  # noqa: BLE001 - one service must not block the others
                log.error("event=service_stop_failed service=%s error=%r", name, str(exc))
        clean = self.engine.stop(max(1.0, deadline - time.monotonic()))
        if not clean:
            log_thread_stacks()
        if self.status_server is not None:
            self.status_server.shutdown()
        return clean


def log_thread_stacks() -> None:
    """What each thread still running is doing, one log line each: a stop that ran out of time
    (CI once saw one hang, silently; a capture thread that had died left its ring open)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        log.error("event=stop_unfinished thread=%s stack=%r", names.get(ident, ident),
                  "".join(traceback.format_stack(frame, limit=12)))
