"""Logging: one line per event, key=value pairs; to stderr, optionally syslog and per-target files.

Syslog follows pcapdaemon's `[syslog] priority` (facility * 8 + severity, see syslog.h) and `tag`:
every line goes to that facility, at the configured severity or a more severe one when the event
is a warning or an error. `address` (pushcap's addition) is `/dev/log` by default, or
`udp://HOST:PORT` / a unix socket path. With `[general] logdir`, each push target also gets
`push_<Desc>.log` holding the lines about it (FMADIO keeps a log per push target; the Desc in
its file-name form, desc_names.py).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from pathlib import Path

from pushcap.config.desc_names import log_value
from pushcap.config.model import ConfigError

STDERR_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
SYSLOG_FORMAT = "level=%(levelname)s logger=%(name)s %(message)s"
SYSLOG_FAILURE_SAY_S = 60.0  # how often an unreachable syslog is said on stderr
LEVEL_SEVERITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}


def __getattr__(name: str):
    if name == "PrioritySysLogHandler":  # defined on first use, see _priority_handler_class
        return _priority_handler_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _priority_handler_class() -> type[logging.Handler]:
    """PrioritySysLogHandler, defined when first needed: logging.handlers (socket, pickle,
    queue...) only matters with a [syslog] section, and every `pushcap` command imports obs."""
    import logging.handlers

    class PrioritySysLogHandler(logging.handlers.SysLogHandler):
        """Sends every line with the configured facility, never below the configured severity."""

        def __init__(self, address, priority: int, tag: str) -> None:
            super().__init__(address=address, facility=priority >> 3)
            self.severity = priority & 7
            self.ident = f"{tag}[{os.getpid()}]: "

        def mapPriority(self, levelName: str) -> int:  # noqa: N802,N803 - logging's naming
            return min(self.severity, LEVEL_SEVERITY.get(levelName, 6))

        def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
            """A syslog that cannot be reached (no /dev/log on this host, a collector down):
            one line on stderr at most every SYSLOG_FAILURE_SAY_S, with the lines lost since,
            instead of logging's traceback for every line. Capture goes on either way."""
            self.lost = getattr(self, "lost", 0) + 1
            now = time.monotonic()
            if now - getattr(self, "said_at", -SYSLOG_FAILURE_SAY_S) < SYSLOG_FAILURE_SAY_S:
                return
            error = sys.exc_info()[1]
            sys.stderr.write(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} level=WARNING logger=pushcap.obs "
                f"event=syslog_unavailable address={self.address!r} error={str(error)!r} "
                f"lines_not_sent={self.lost}\n")
            self.said_at, self.lost = now, 0

    PrioritySysLogHandler.__qualname__ = "PrioritySysLogHandler"
    return PrioritySysLogHandler


class TargetFilter(logging.Filter):
    """Keeps the lines about one target (they all carry `target=<Desc>`, the Desc as a log
    field: desc_names.log_value)."""

    def __init__(self, desc: str) -> None:
        super().__init__()
        self.needle = f"target={log_value(desc)}"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        at = message.find(self.needle)
        end = at + len(self.needle)
        return at >= 0 and (end == len(message) or message[end] == " ")


def setup_logging(level: str = "info", config=None, targets=()) -> None:
    root = logging.getLogger("pushcap")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(STDERR_FORMAT))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    if config is None:
        return
    if config.syslog is not None:
        root.addHandler(_syslog_handler(config.syslog, config.source_file))
    add_target_logs(config, targets)


def add_target_logs(config, targets) -> None:
    """`push_<Desc>.log` for each target that has none yet (at start and after a reload)."""
    if not config.log_dir:
        return
    root = logging.getLogger("pushcap")
    have = {h.baseFilename for h in root.handlers if isinstance(h, logging.FileHandler)}
    folder = Path(config.log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for target in targets:
        path = folder / f"push_{target.desc_file_name}.log"
        if str(path.resolve()) in have:
            continue
        file_handler = logging.FileHandler(path)
        file_handler.setFormatter(logging.Formatter(STDERR_FORMAT))
        file_handler.addFilter(TargetFilter(target.desc))
        root.addHandler(file_handler)


def _syslog_handler(settings, source: str) -> logging.Handler:
    """A handler for the validated `[syslog]` (config/syslog_settings.py); only opening the
    socket can still fail here (a path that is no socket)."""
    try:
        handler = _priority_handler_class()(settings.address, settings.priority, settings.tag)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source}: [syslog] address {settings.address!r}: {exc}") from exc
    handler.setFormatter(logging.Formatter(SYSLOG_FORMAT))
    return handler
