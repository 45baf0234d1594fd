"""Logging: one line per event, key=value pairs, to stderr."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    root = logging.getLogger("pushcap")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
